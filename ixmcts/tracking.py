"""MLflow helpers: the only module of the library that imports MLflow (DESIGN.md §6).

Tracking URI: ``$MLFLOW_TRACKING_URI`` or a SQLite store ``mlruns.db`` in the working
folder with artifacts under ``./mlartifacts``. One experiment per scenario
(``ixmcts-esc``, ``ixmcts-p4g``); tags ``ixmcts.stage|scenario|method|reward|profile``.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import mlflow

TAG = "ixmcts."


def configure() -> str:
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlruns.db'}")
    return mlflow.get_tracking_uri()


def experiment_name(scenario: str) -> str:
    return f"ixmcts-{scenario}"


def ensure_experiment(scenario: str) -> str:
    """Create the scenario's experiment (artifacts under ./mlartifacts for a local store)."""
    configure()
    name = experiment_name(scenario)
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        uri = mlflow.get_tracking_uri()
        location = (Path.cwd() / "mlartifacts" / name).as_uri() if uri.startswith(("sqlite:", "file:", "/")) else None
        return mlflow.create_experiment(name, artifact_location=location)
    return exp.experiment_id


@contextmanager
def stage_run(stage: str, scenario: str, profile: str = "cpu", **tags: str):
    """Start (or, under ``mlflow run``, continue) the stage's run with the project's tags."""
    configure()
    if not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(experiment_id=ensure_experiment(scenario))
    with mlflow.start_run() as run:
        mlflow.set_tags({f"{TAG}stage": stage, f"{TAG}scenario": scenario, f"{TAG}profile": profile,
                         **{f"{TAG}{k}": str(v) for k, v in tags.items()}})
        yield run


def log_params(params: dict) -> None:
    """Log parameters not already logged (``mlflow run`` logs entry-point params itself,
    and re-logging one with another type fails)."""
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params
    new = {k: v for k, v in params.items() if k not in existing}
    if new:
        mlflow.log_params(new)


def log_jsonl_dataset(path: Path, name: str, context: str, json_columns: tuple[str, ...] = ()) -> None:
    """Log a JSONL file as a dataset input (nested columns as JSON text) and as an artifact."""
    import pandas as pd

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        for col in json_columns:
            if col in row:
                row[col] = json.dumps(row[col], ensure_ascii=False)
    df = pd.DataFrame(rows)
    with warnings.catch_warnings():  # MLflow's source-type and integer-schema hints are noise here
        warnings.simplefilter("ignore", UserWarning)
        mlflow.log_input(mlflow.data.from_pandas(df, source=str(path), name=name), context=context)
    mlflow.log_artifact(str(path), artifact_path="data")


def log_search(params: dict, outcome) -> None:
    from .search.run import CONDITIONS_FILE, DP_FILE, SUMMARY_FILE, TREES_FILE

    out = Path(outcome.output_dir)
    log_params(params)
    log_params({"T_effective": outcome.config.T, "budget_effective": outcome.config.trajectories})
    mlflow.log_metrics(outcome.metrics)
    log_jsonl_dataset(out / CONDITIONS_FILE, "conditions", "search.conditions", json_columns=("attributes",))
    if outcome.pairs:
        log_jsonl_dataset(out / DP_FILE, "D_p", "search.pairs", json_columns=("context",))
    else:
        mlflow.log_artifact(str(out / DP_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / TREES_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / SUMMARY_FILE))
