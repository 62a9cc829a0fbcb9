"""The ``ixmcts`` command line. Library commands only (no MLflow); the MLproject entry
points in ``entrypoints/`` build the same options from the stage Configs and add tracking."""

from __future__ import annotations

import json

import click

from .errors import IxmctsError
from .human.study import HELP as STUDY_HELP
from .human.study import StudyParams
from .human.study import CHOICES as STUDY_CHOICES
from .options import Group, config_options, dataclass_options, profile_option, reports_errors, scenario_option
from .search.run import SearchParams

__all__ = ["main", "reports_errors"]


@click.group(cls=Group)
@click.version_option(package_name="ixmcts", prog_name="ixmcts")
def main():
    """i×MCTS: search simulated conversations, extract preference pairs, align the policy."""


@main.command()
@scenario_option()
@profile_option()
@config_options(SearchParams, profiled=lambda name: True, skip=("scenario",))
@click.option("--output-dir", default="search-output", show_default=True, help="where D_p and the trees are written")
@reports_errors
def search(scenario, profile_name, output_dir, **settings):
    """Run i×MCTS and write D_p (dp.jsonl) and the trees (trees.jsonl.gz). An empty option
    takes the profile's value, as in `ixmcts plan`."""
    from .options import build
    from .profiles import resolve_stage
    from .search.run import run_search

    params = build(SearchParams, {**resolve_stage(profile_name, scenario, "search", settings), "scenario": scenario})
    outcome = run_search(params, output_dir)
    click.echo(json.dumps({"output_dir": str(outcome.output_dir), **outcome.metrics}, indent=2))


@main.command()
@scenario_option()
@profile_option()
@click.option("--data-dir", default="", help="the corpus folder (default: $IXMCTS_P4G_DIR / $IXMCTS_ESC_DIR)")
@click.option("--overrides", default="{}", help='JSON: parameters per stage on top of the profile, e.g. {"search": {"K": 9}}')
@reports_errors
def plan(scenario, profile_name, data_dir, overrides):
    """Print every stage's resolved parameters, as `mlflow run . -e main` would run them
    (JSON {stage: {param: value}}; no model is loaded). Read it before spending GPU hours."""
    from .profiles import DATA_DIR, plan as build_plan

    resolved = build_plan(scenario, profile_name, data_dir, parse_overrides(overrides))
    if any(isinstance(v, str) and DATA_DIR in v for params in resolved.values() for v in params.values()):
        click.echo(f"note: {DATA_DIR} is the corpus folder: pass --data-dir (main: -P data_dir=…) or set "
                   f"IXMCTS_{scenario.upper()}_DIR", err=True)
    click.echo(json.dumps(resolved, indent=2, ensure_ascii=False))


def parse_overrides(text: str) -> dict:
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise IxmctsError(f"overrides is not JSON: {exc.msg}") from None


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
@click.option("--baseline", default="SFT", show_default=True, help="the arm --model is compared against")
@click.option("--output-dir", default="results/human", show_default=True, help="where table5.md and figure3.png are written")
@reports_errors
def human_eval_report(ratings, annotations, model, baseline, output_dir):
    """Table 5 (means, 95% bootstrap CIs, ±1 rating-noise test), Figure 3 (win rates) and kappa."""
    from .human.report import write_report

    result = write_report(ratings, annotations or None, model, baseline, output_dir)
    table5_md, figure3 = result["files"]
    click.echo(table5_md.read_text(encoding="utf-8") + f"written: {table5_md}, {figure3}")


@human_eval.command("serve")
@dataclass_options(StudyParams, STUDY_HELP, STUDY_CHOICES)
@click.option("--model-a", required=True, help="first model: a registry name, local folder or hub id (e.g. a merged SFT policy)")
@click.option("--model-b", required=True, help="second model: a registry name, local folder or hub id (e.g. a merged aligned policy)")
@click.option("--name-a", default="SFT", show_default=True, help="the first model's name in ratings.csv (never shown to raters)")
@click.option("--name-b", default="Aligned", show_default=True, help="the second model's name in ratings.csv (never shown to raters)")
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
@click.option("--output-dir", default="results/human", show_default=True,
              help="where ratings.csv, annotations.csv and conversations.jsonl are written")
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
