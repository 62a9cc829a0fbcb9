"""Runs: the tracking store, the scenario's experiment, the stage's run, and upstream runs.

Tracking URI: ``$MLFLOW_TRACKING_URI`` or a SQLite store ``mlruns.db`` in the working
folder with artifacts under ``./mlartifacts``. One experiment per scenario
(``ixmcts-esc``, ``ixmcts-p4g``); tags ``ixmcts.stage|scenario|method|reward|profile``.

Multi-process training (``accelerate launch``/``torchrun``): every process runs the entry
point, but only rank 0 starts the stage's run and logs; on the other ranks ``stage_run``
yields a stand-in and every logging helper does nothing.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import mlflow

TAG = "ixmcts."


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (``RANK`` as torchrun/accelerate set it), or a plain run."""
    return int(os.environ.get("RANK", "0")) == 0


def main_process_only(fn):
    """The helper runs on rank 0 only (elsewhere it returns None): one run, logged once."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper


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
        # a local store keeps its artifacts beside it (the container's /runs volume holds both)
        store_dir = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else Path.cwd()
        location = (store_dir / "mlartifacts" / name).as_uri() if uri.startswith(("sqlite:", "file:", "/")) else None
        return mlflow.create_experiment(name, artifact_location=location)
    return exp.experiment_id


@contextmanager
def stage_run(stage: str, scenario: str, profile: str = "cpu", **tags: str):
    """Start (or, under ``mlflow run``, continue) the stage's run with the project's tags.
    Ranks other than 0 get a stand-in with the run id ``mlflow run`` gave (or none)."""
    configure()
    if not is_main_process():
        yield SimpleNamespace(info=SimpleNamespace(run_id=os.environ.get("MLFLOW_RUN_ID", "(rank 0's run)")))
        return
    if not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(experiment_id=ensure_experiment(scenario))
    with mlflow.start_run() as run:
        from ..io import code_fingerprint

        mlflow.set_tags({f"{TAG}stage": stage, f"{TAG}scenario": scenario, f"{TAG}profile": profile,
                         f"{TAG}code": code_fingerprint(), f"{TAG}world_size": os.environ.get("WORLD_SIZE", "1"),
                         **{f"{TAG}{k}": str(v) for k, v in tags.items()}})
        yield run


def upstream(run_id: str, stage: str | tuple[str, ...], scenario: str | None, role: str | None = None):
    """A FINISHED run of ``stage`` (or of any of several stages) for ``scenario`` (any, if None)
    and ``role`` (checked on runs that carry one), or a clear error."""
    from ..errors import IxmctsError

    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    what = " or ".join(stages)
    configure()
    try:
        run = mlflow.get_run(run_id)
    except Exception:  # MLflow raises its own exception types for unknown ids
        raise IxmctsError(f"upstream {what} run {run_id!r} not found in {mlflow.get_tracking_uri()}") from None
    tags = run.data.tags
    if tags.get(f"{TAG}stage") not in stages:
        raise IxmctsError(f"run {run_id} is a {tags.get(f'{TAG}stage', 'untagged')} run, not a {what} run")
    if scenario is not None and tags.get(f"{TAG}scenario") != scenario:
        raise IxmctsError(f"{what} run {run_id} is for scenario {tags.get(f'{TAG}scenario')!r}, not {scenario!r}")
    if role and f"{TAG}role" in tags and tags[f"{TAG}role"] != role:
        raise IxmctsError(f"{what} run {run_id} trained the {tags.get(f'{TAG}role')!r}, not the {role}")
    if run.info.status != "FINISHED":
        raise IxmctsError(f"{what} run {run_id} is {run.info.status}, not FINISHED")
    return run


def download(run_id: str, path: str, dst: str) -> str:
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=dst)


def record_error(message: str) -> None:
    """Tag the stage's run ``ixmcts.error`` with why the entry point stopped, so the UI shows
    it: the run ``mlflow run`` created before the entry point started (a refusal leaves it
    FAILED), or the one this process opened. Nothing without a run; never raises, since the
    error being reported matters more than its tag."""
    if not is_main_process():
        return
    try:
        run_id = os.environ.get("MLFLOW_RUN_ID")
        if not run_id:
            last = mlflow.last_active_run()
            run_id = last.info.run_id if last else None
        if run_id:
            configure()
            mlflow.MlflowClient().set_tag(run_id, f"{TAG}error", message[:5000])  # MLflow caps tag values at 8,000
    except Exception:  # noqa: BLE001
        pass
