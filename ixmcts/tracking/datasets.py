"""Datasets: JSONL files logged as dataset inputs of a run and as its artifacts."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mlflow

from .logging import log_metrics, log_params
from .runs import main_process_only


@main_process_only
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


@main_process_only
def log_search(params: dict, outcome) -> None:
    from ..search.run import CONDITIONS_FILE, DP_FILE, SUMMARY_FILE, TREES_FILE

    out = Path(outcome.output_dir)
    log_params(params)
    log_params({"T_effective": outcome.config.T, "budget_effective": outcome.config.trajectories})
    log_metrics(outcome.metrics)
    log_jsonl_dataset(out / CONDITIONS_FILE, "conditions", "search.conditions", json_columns=("attributes",))
    if outcome.pairs:
        log_jsonl_dataset(out / DP_FILE, "D_p", "search.pairs", json_columns=("context",))
    else:
        mlflow.log_artifact(str(out / DP_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / TREES_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / SUMMARY_FILE))
