"""Datasets: JSONL files logged as a run's artifacts and as MLflow dataset inputs.

A dataset's source is where it stays: the artifact location of the run that produced it
(never a temporary folder). The producing run logs it with context ``output``; a run that
consumes it logs the same dataset (same name, digest and source) with the context it is used
in — ``training``, ``evaluation`` or ``input`` — so the UI links D_p → reward → D → align.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mlflow

from .logging import log_metrics, log_params
from .runs import main_process_only, run_id_of

OUTPUT = "output"


def _frame(path: Path, json_columns: tuple[str, ...]):
    """The JSONL rows as a DataFrame, nested columns as JSON text."""
    import pandas as pd

    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        for col in json_columns:
            if col in row:
                row[col] = json.dumps(row[col], ensure_ascii=False)
    return pd.DataFrame(rows)


def _log_input(path: Path, source: str, name: str, context: str, json_columns: tuple[str, ...]) -> None:
    with warnings.catch_warnings():  # MLflow's integer-schema hints are noise here
        warnings.simplefilter("ignore", UserWarning)
        mlflow.log_input(mlflow.data.from_pandas(_frame(path, json_columns), source=source, name=name), context=context)


@main_process_only
def log_jsonl_dataset(path: Path, name: str, context: str = OUTPUT, json_columns: tuple[str, ...] = ()) -> None:
    """Log a JSONL file this run wrote as the artifact ``data/<file>`` and as a dataset whose
    source is that artifact."""
    mlflow.log_artifact(str(path), artifact_path="data")
    _log_input(Path(path), mlflow.get_artifact_uri(f"data/{Path(path).name}"), name, context, json_columns)


@main_process_only
def log_upstream_dataset(path: Path, ref: str, artifact_path: str, name: str, context: str,
                         json_columns: tuple[str, ...] = ()) -> None:
    """Log a dataset this run consumes: ``path`` is the local copy of ``artifact_path`` of the
    upstream run ``ref`` (run id or ``models:/`` reference), which stays its source."""
    source = mlflow.get_run(run_id_of(ref)).info.artifact_uri.rstrip("/") + "/" + artifact_path
    _log_input(Path(path), source, name, context, json_columns)


@main_process_only
def log_search(params: dict, outcome) -> None:
    from ..search.run import CONDITIONS_FILE, DP_FILE, SUMMARY_FILE, TREES_FILE

    out = Path(outcome.output_dir)
    log_params(params)
    log_params({"T_effective": outcome.config.T, "budget_effective": outcome.config.trajectories})
    log_metrics(outcome.metrics)
    log_jsonl_dataset(out / CONDITIONS_FILE, "conditions", "search", json_columns=("attributes",))
    if outcome.pairs:
        log_jsonl_dataset(out / DP_FILE, "D_p", OUTPUT, json_columns=("context",))
    else:
        mlflow.log_artifact(str(out / DP_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / TREES_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / SUMMARY_FILE))
