"""Logging into the active stage run: parameters, metrics, curves, tags, artifacts.
Every helper runs on rank 0 only (see ``runs.main_process_only``)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from .runs import MODEL_URI, TAG, main_process_only, run_id_of


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
def tag_upstream(**refs: str) -> None:
    """Tag each upstream run's id (``ixmcts.upstream.<name>``), and the model URI it was
    given as, if any (``ixmcts.upstream.<name>_model``)."""
    tags = {f"{TAG}upstream.{name}": run_id_of(ref) for name, ref in refs.items() if ref}
    tags.update({f"{TAG}upstream.{name}_model": ref for name, ref in refs.items() if ref and ref.startswith(MODEL_URI)})
    mlflow.set_tags(tags)


@main_process_only
def log_metrics(metrics: dict, model_id: str | None = None) -> None:
    """Log scalars; with ``model_id`` they are also the metrics of that LoggedModel (its page
    shows them). A NaN (an undefined statistic) stays missing rather than logged."""
    mlflow.log_metrics({k: v for k, v in metrics.items() if v == v}, model_id=model_id)


@main_process_only
def log_training_step(logs: dict, step: int) -> None:
    """One logging step of a trainer, as ``train/<name>`` at ``step`` (while training runs)."""
    numbers = {f"train/{k.replace('/', '_')}": float(v) for k, v in logs.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        mlflow.log_metrics(numbers, step=step)


@main_process_only
def log_finals(curves: dict, prefix: str = "train/") -> None:
    """The last value of each curve ``{name: [(step, value), ...]}`` as ``<prefix><name>_final``."""
    finals = {f"{prefix}{k.replace('/', '_')}_final": points[-1][1] for k, points in curves.items() if points}
    if finals:
        mlflow.log_metrics(finals)


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
