"""The ``ixmcts`` command line. Library commands only (no MLflow); the MLproject entry
points in ``entrypoints/`` reuse these options and add tracking."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys

import click

from .errors import IxmctsError
from .human.study import HELP as STUDY_HELP
from .human.study import StudyParams
from .search.run import SearchParams

SEARCH_HELP = {
    "scenario": "esc (emotional support) or p4g (persuasion for good)",
    "policy_model": "policy LLM: smollm2-135m-instruct (embedded default), tiny, a local folder or a hub id",
    "simulator_model": "user simulator LLM (empty: the policy model, prompted as the user)",
    "conditions": "user conditions: sample | p4g: synth, corpus | a PsyQA .json or conditions .jsonl path",
    "num_conditions": "number of user conditions (trees) to search",
    "data_dir": "P4G corpus folder (full_dialog.csv, full_info.csv) for conditions=synth|corpus",
    "language": "ESC prompt language: en, or zh (the paper's)",
    "K": "K: live model nodes kept per depth per tree (paper 81)",
    "e": "e: policy samples per expansion (paper 3)",
    "T": "T: maximum depth in policy turns; 0 = the scenario's (ESC 25, P4G 15)",
    "c": "c: UCB exploration constant (paper √2)",
    "gamma": "γ: discount of P4G's accumulated sentiment pruning score",
    "budget": "trajectories (iterations) per tree; 0 = K",
    "parallel": "trajectories in flight per tree (virtual loss)",
    "closing": "at depth T ask the scenario's closing question (P4G: the donation; ESC: what is left unexpressed) instead of rewarding 0",
    "seed": "random seed (same seed + inputs → same trees on CPU)",
    "max_new_tokens": "max new tokens per generated turn (paper 512)",
    "pair_margin": "minimum |Q/N| difference for a preference pair",
    "shard": "this run's shard index: it searches conditions shard, shard+num_shards, … of the num_conditions",
    "num_shards": "number of shards the conditions are split into",
    "threads": "torch CPU threads (0 = torch's default)",
    "batch_size": "prompts per generate() batch",
    "backend": "generation backend: transformers (any machine) | vllm (CUDA, prefix caching, LoRA)",
    "checkpoint_dir": "checkpoint folder (empty: a cache folder keyed by the settings)",
}


def dataclass_options(cls, help: dict[str, str]):
    """Click options for every field of a parameter dataclass (one definition, two front ends)."""

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            default = f.default
            fn = click.option(f"--{f.name.replace('_', '-')}" if not f.name[0].isupper() and len(f.name) > 1 else f"--{f.name}",
                              f.name, type=type(default), default=default, show_default=True, help=help.get(f.name, ""))(fn)
        return fn

    return decorate


def reports_errors(fn):
    """Turn an ``IxmctsError`` into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IxmctsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
def main():
    """i×MCTS: search simulated conversations, extract preference pairs, align the policy."""


@main.command()
@dataclass_options(SearchParams, SEARCH_HELP)
@click.option("--output-dir", default="search-output", show_default=True, help="where D_p and the trees are written")
@reports_errors
def search(output_dir, **params):
    """Run i×MCTS and write D_p (dp.jsonl) and the trees (trees.jsonl.gz)."""
    from .search.run import run_search

    outcome = run_search(SearchParams(**params), output_dir)
    click.echo(json.dumps({"output_dir": str(outcome.output_dir), **outcome.metrics}, indent=2))


@main.command("prepare-model")
@click.argument("name", default="smollm2-135m-instruct")
@reports_errors
def prepare_model(name):
    """Resolve a registry model (converting the embedded default once); print its folder."""
    from .llm.registry import resolve_model

    click.echo(resolve_model(name))


@main.command("init-tracking")
def init_tracking():
    """Create the per-scenario experiments (ixmcts-esc, ixmcts-p4g) in the tracking store."""
    from . import tracking

    for scenario in ("esc", "p4g"):
        tracking.ensure_experiment(scenario)
    click.echo(f"tracking store: {tracking.configure()}")


@main.group("human-eval")
def human_eval():
    """Human evaluation: the blind A/B app, its export, and the report (Table 5, Figure 3, Fleiss' kappa)."""


@human_eval.command("report")
@click.option("--ratings", required=True, help="ratings.csv: session_id, rater_id, model, supportiveness, willingness")
@click.option("--annotations", default="", help="annotations.csv: pair_id, annotator, label (a1|a2|tie); imcts = the ranking")
@click.option("--model", default="Aligned", show_default=True, help="the arm compared against --baseline")
@click.option("--baseline", default="SFT", show_default=True)
@click.option("--output-dir", default="results/human", show_default=True)
@reports_errors
def human_eval_report(ratings, annotations, model, baseline, output_dir):
    """Table 5 (means, 95% bootstrap CIs, ±1 rating-noise test), Figure 3 (win rates) and kappa."""
    from .human.report import write_report

    result = write_report(ratings, annotations or None, model, baseline, output_dir)
    table5_md, figure3 = result["files"]
    click.echo(table5_md.read_text(encoding="utf-8") + f"written: {table5_md}, {figure3}")


@human_eval.command("serve")
@dataclass_options(StudyParams, STUDY_HELP)
@click.option("--model-a", required=True, help="first model: a registry name, local folder or hub id (e.g. a merged SFT policy)")
@click.option("--model-b", required=True, help="second model")
@click.option("--name-a", default="SFT", show_default=True, help="the first model's name in ratings.csv (never shown to raters)")
@click.option("--name-b", default="Aligned", show_default=True)
@click.option("--pairs", default="", help="D_p (dp.jsonl) to sample annotation pairs from")
@reports_errors
def human_eval_serve(model_a, model_b, name_a, name_b, pairs, **params):
    """The blind A/B chat app with ratings, and pair annotation (local models; the `human-eval`
    entry point takes tracked runs and logs the data to MLflow)."""
    from .human.study import build_study, serve
    from .io import read_jsonl
    from .llm.models import ModelSpec

    if name_a == name_b:
        raise IxmctsError("the two models need different names")
    p = StudyParams(**params)
    study = build_study(p, {name_a: (model_a, ModelSpec(model_a)), name_b: (model_b, ModelSpec(model_b))},
                        read_jsonl(pairs) if pairs else None, pairs_source=pairs)
    serve(study, p)


@human_eval.command("export")
@click.option("--db", required=True, help="the study's SQLite database")
@click.option("--output-dir", default="results/human", show_default=True)
@reports_errors
def human_eval_export(db, output_dir):
    """ratings.csv, annotations.csv (with the i×MCTS ranking as annotator `imcts`) and conversations.jsonl."""
    from pathlib import Path

    from .human.store import Store

    if not Path(db).is_file():
        raise IxmctsError(f"{db}: no such database")
    files = Store(db).export(output_dir)
    click.echo("written: " + ", ".join(str(f) for f in files.values()))


if __name__ == "__main__":
    main()
