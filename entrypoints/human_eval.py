"""MLflow entry point `human-eval`: the blind A/B chat app on two tracked policies, and pair
annotation on a search run's D_p. Serves until Ctrl-C (or SIGTERM), then logs the data.

    mlflow run . -e human-eval --env-manager local -P model_a_run=<sft id> -P model_b_run=<align id> \
        -P pairs_run=<search id>

On stop the run gets human/ratings.csv, human/annotations.csv, human/conversations.jsonl and,
once ratings exist, Table 5 and Figure 3 (human/table5.md, human/figure3.png) with their
means as metrics. Reopening the same database (``db``) resumes the study.
"""

import os
import tempfile
from pathlib import Path

import click
from _common import IxmctsError

from ixmcts import tracking
from ixmcts.human import report
from ixmcts.human.study import CHOICES as STUDY_CHOICES
from ixmcts.human.study import HELP as STUDY_HELP
from ixmcts.human.study import StudyParams, build_study, serve
from ixmcts.io import read_jsonl
from ixmcts.options import Command, dataclass_options, profile_option, reports_errors
from ixmcts.tracking import finish_guard


def log_study_data(store, name_a: str, name_b: str) -> dict[str, int]:
    """Export the database into the run; Table 5, Figure 3 and kappa once there are ratings."""
    with tempfile.TemporaryDirectory(prefix="ixmcts-human-") as tmp:
        files = store.export(tmp)
        counts = store.counts()
        tracking.log_metrics({f"human/{k}": v for k, v in counts.items()})
        if counts["ratings"]:
            result = report.write_report(files["ratings"], files["annotations"], name_b, name_a, tmp)
            files.update(zip(("table5", "figure3"), result["files"]))
            for row in result["table"]:
                for dim in report.DIMENSIONS:
                    tracking.log_metrics({f"human/{row['model']}_{dim}": row[dim]})
            for dim, w in result["wins"].items():
                tracking.log_metrics({f"human/win_rate_{dim}": w["win"]})
            for name, (kappa, _) in result["kappas"].items():
                tracking.log_metrics({"human/kappa_with_imcts" if "MCTS" in name else "human/kappa": kappa})
        for f in files.values():
            tracking.log_artifact(str(f), artifact_path="human")
    return counts


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@dataclass_options(StudyParams, STUDY_HELP, STUDY_CHOICES)
@click.option("--model-a-run", default="", help="the first policy: an SFT (policy) or align run id")
@click.option("--model-b-run", default="", help="the second policy: an SFT (policy) or align run id")
@click.option("--name-a", default="SFT", show_default=True, help="the first policy's name in the data (never shown to raters)")
@click.option("--name-b", default="Aligned", show_default=True, help="the second model's name in ratings.csv (never shown to raters)")
@click.option("--pairs-run", default="", help="search (or merge) run whose D_p annotators label (empty: no annotation)")
@profile_option(help="profile tag recorded on the run", dest="profile")
@reports_errors
def main(model_a_run, model_b_run, name_a, name_b, pairs_run, profile, **params):
    launcher = os.getppid() if os.environ.get("MLFLOW_RUN_ID") else None  # `mlflow run`'s process, while it is alive
    p = StudyParams(**params)  # checks the address and the backend too
    if not model_a_run or not model_b_run:
        raise IxmctsError("human-eval needs model_a_run and model_b_run (SFT policy or align runs)")
    if name_a == name_b:
        raise IxmctsError("name_a and name_b must differ")
    # Upstream runs are checked before the run starts or a model loads.
    runs = {name: tracking.upstream(rid, ("sft", "align"), p.scenario, role="policy")
            for name, rid in ((name_a, model_a_run), (name_b, model_b_run))}
    pairs_parent = tracking.upstream(pairs_run, "search", p.scenario) if pairs_run else None
    with tracking.stage_run("human-eval", p.scenario, profile=profile, method="human-eval") as run, \
            tempfile.TemporaryDirectory(prefix="ixmcts-human-") as tmp:
        tracking.tag_upstream(model_a=model_a_run, model_b=model_b_run, pairs=pairs_run)
        arms = {name: (r.info.run_id, tracking.model_spec_of(r, tmp)) for name, r in runs.items()}
        pairs = read_jsonl(tracking.download(pairs_run, "data/dp.jsonl", f"{tmp}/pairs")) if pairs_parent else None
        study = build_study(p, arms, pairs, pairs_source=f"run {pairs_run}" if pairs_run else "")
        tracking.log_params({"db_path": str(Path(p.db).resolve()), "num_problems_effective": len(study.problems),
                             "num_pairs_effective": study.store.counts()["pairs"]})
        try:
            serve(study, p)  # from a stop signal on, further ones are ignored: this export and the run's end complete
        finally:  # whatever stopped the server, what was collected reaches the run
            counts = log_study_data(study.store, name_a, name_b)
    finish_guard.start(run.info.run_id, launcher)  # an interrupted `mlflow run` would mark it FAILED after we exit
    print(f"\nhuman-eval run {run.info.run_id}: {counts['ratings'] // 2} rated sessions, {counts['annotations']} pair labels "
          f"logged under human/ (database {p.db})")


if __name__ == "__main__":
    main()
