"""Logging into the active stage run: parameters, metrics, curves, tags, artifacts.
Every helper runs on rank 0 only (see ``runs.main_process_only``)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from .runs import TAG, main_process_only


@main_process_only
def log_params(params: dict) -> None:
    """Log parameters. ``mlflow run`` has already logged the entry point's own (re-logging
    one with another value fails), so a value that differs from the logged one — an empty
    parameter filled from the profile — goes in as ``<name>_effective``."""
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params
    new = {}
    for k, v in params.items():
        if k not in existing:
            new[k] = v
        elif existing[k] != str(v) and f"{k}_effective" not in existing:
            new[f"{k}_effective"] = v
    if new:
        mlflow.log_params(new)


@main_process_only
def tag_upstream(**runs: str) -> None:
    mlflow.set_tags({f"{TAG}upstream.{name}": run_id for name, run_id in runs.items() if run_id})


@main_process_only
def log_metrics(metrics: dict) -> None:
    mlflow.log_metrics(metrics)


@main_process_only
def log_artifact(path: str, artifact_path: str | None = None) -> None:
    """A file, or a folder's contents, under ``artifact_path``."""
    (mlflow.log_artifacts if Path(path).is_dir() else mlflow.log_artifact)(str(path), artifact_path=artifact_path)


@main_process_only
def set_tags(tags: dict) -> None:
    mlflow.set_tags({k if k.startswith(TAG) else f"{TAG}{k}": str(v) for k, v in tags.items()})


@main_process_only
def log_curve(name: str, points: list[tuple[int, float]]) -> None:
    for step, value in points:
        mlflow.log_metric(name, value, step=step)
    if points:
        mlflow.log_metric(f"{name}_final", points[-1][1])
