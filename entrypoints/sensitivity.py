"""MLflow entry point `sensitivity`: does the P4G user simulator respond to persuasion?

    mlflow run . -e sensitivity --env-manager local --experiment-name ixmcts-p4g \
        -P simulator_run=<sft simulator run id> -P data_dir=../shared/data/p4g -P output_dir=results

The same held-out personas talk with the persuader turns of the corpus dialogues that ended in
the highest donations (replayed) and with an off-task, rude script, under identically seeded
simulator samples, and answer the closing donation question. Logs both mean donations, their
paired difference with a 95% bootstrap CI and a paired permutation p (``sensitivity/*``), the
dialogues, and ``sensitivity.md`` (also written to ``output_dir`` when given). A simulator
without a positive, significant difference cannot show any policy's effect.
"""

import tempfile
from pathlib import Path

import click
from _common import Command, IxmctsError, progress_bar

from ixmcts import tracking
from ixmcts.data import load_conditions, load_dialogues
from ixmcts.evaluate.sensitivity import SensitivityParams, high_donation_scripts, measure_sensitivity, to_markdown
from ixmcts.io import atomic_open, write_jsonl
from ixmcts.llm import make_backends
from ixmcts.llm.models import ModelSpec
from ixmcts.options import build, config_options, profile_option, reports_errors
from ixmcts.profiles import env_data_dir
from ixmcts.scenarios import get_scenario

SCENARIO = "p4g"  # the donation is what the check measures


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--simulator-run", default="",
              help="the SFT simulator: run id or models:/ixmcts-p4g-simulator@sft (or give simulator_model)")
@config_options(SensitivityParams)
@click.option("--output-dir", default="", help="also write sensitivity.md here (empty: only log it)")
@profile_option(default="repro-cpu", help="profile tag recorded on the run", dest="profile")
@reports_errors
def main(simulator_run, output_dir, profile, **settings):
    params = build(SensitivityParams, settings)
    if bool(simulator_run) == bool(params.simulator_model):
        raise IxmctsError("give the simulator: simulator_run (an SFT simulator) or simulator_model (prompted), not both")
    data_dir = params.data_dir or env_data_dir(SCENARIO)
    if not data_dir:
        raise IxmctsError("the check replays corpus dialogues: pass data_dir (or set IXMCTS_P4G_DIR)")
    pool = load_conditions(SCENARIO, params.conditions, params.conditions_offset + params.num_dialogues,
                           data_dir=None if data_dir == "sample" else data_dir, seed=params.seed)
    personas = pool[params.conditions_offset:]
    if len(personas) < 2:
        raise IxmctsError(f"{params.conditions}: {len(personas)} personas after the first {params.conditions_offset}")
    scripts = high_donation_scripts(load_dialogues(SCENARIO, data_dir), len(personas))
    # checked before any work
    simulator = tracking.upstream(simulator_run, "sft", SCENARIO, role="simulator") if simulator_run else None

    sc = get_scenario(SCENARIO)
    with tracking.stage_run("sensitivity", SCENARIO, profile=profile, method="sensitivity") as run, \
            tempfile.TemporaryDirectory(prefix="ixmcts-sensitivity-") as tmp:
        tracking.tag_upstream(simulator=simulator_run)
        spec = tracking.model_spec_of(simulator, tmp) if simulator else ModelSpec(params.simulator_model)
        tracking.log_params({"data_dir_effective": data_dir, "num_personas": len(personas), "base_model": spec.base})
        backend = make_backends({"simulator": spec}, "transformers", threads=params.threads or None)["simulator"]
        with progress_bar(2 * len(personas), "dialogues done (both persuaders)", "dialogue") as progress:
            result = measure_sensitivity(sc, backend, personas, scripts, params.eval_config(), progress=progress)
        summary = result.summary(seed=params.seed)
        for arm, records in result.records.items():
            write_jsonl(Path(tmp) / f"{arm}.jsonl", records)
            tracking.log_artifact(str(Path(tmp) / f"{arm}.jsonl"), artifact_path="sensitivity")
        write_jsonl(Path(tmp) / "conditions.jsonl", (c.to_dict() for c in personas))
        tracking.log_jsonl_dataset(Path(tmp) / "conditions.jsonl", "sensitivity-personas", "evaluation",
                                   json_columns=("attributes",))
        who = f"SFT simulator run `{simulator.info.run_id}`" if simulator else f"prompted `{params.simulator_model}`"
        report = to_markdown(summary, f"Simulator sensitivity (run `{run.info.run_id}`, {who}, "
                                      f"{params.max_turns} utterances, seed {params.seed})")
        (Path(tmp) / "sensitivity.md").write_text(report, encoding="utf-8")
        tracking.log_artifact(str(Path(tmp) / "sensitivity.md"))
        tracking.log_metrics(summary)
        if output_dir:
            with atomic_open(Path(output_dir) / "sensitivity.md", "w") as f:
                f.write(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
