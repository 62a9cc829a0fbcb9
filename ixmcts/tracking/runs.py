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
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` (or the local default), also after an earlier
    ``mlflow.set_tracking_uri`` in the same process pointed it elsewhere."""
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlruns.db'}")
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
def stage_run(stage: str, scenario: str, profile: str = "cpu", system_metrics: bool = False, **tags: str):
    """Start (or, under ``mlflow run``, continue) the stage's run with the project's tags.
    ``system_metrics``: sample CPU, memory (and GPU, where MLflow can read it) while the run
    lasts — for the training stages. Ranks other than 0 get a stand-in with the run id
    ``mlflow run`` gave (or none)."""
    configure()
    if not is_main_process():
        yield SimpleNamespace(info=SimpleNamespace(run_id=os.environ.get("MLFLOW_RUN_ID", "(rank 0's run)")))
        return
    if not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(experiment_id=ensure_experiment(scenario))
    with mlflow.start_run(log_system_metrics=system_metrics or None) as run:
        from ..io import code_fingerprint

        mlflow.set_tags({f"{TAG}stage": stage, f"{TAG}scenario": scenario, f"{TAG}profile": profile,
                         f"{TAG}code": code_fingerprint(), f"{TAG}world_size": os.environ.get("WORLD_SIZE", "1"),
                         **{f"{TAG}{k}": str(v) for k, v in tags.items()}})
        yield run


MODEL_URI = "models:/"


def run_id_of(ref: str) -> str:
    """The run behind an upstream reference: a run id as is, or the run that logged a model
    given as ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``models:/<model id>``."""
    from mlflow.exceptions import MlflowException

    from ..errors import IxmctsError

    if not ref.startswith(MODEL_URI):
        return ref
    configure()
    client = mlflow.MlflowClient()
    body = ref[len(MODEL_URI):]
    try:
        if "@" in body:
            version = client.get_model_version_by_alias(*body.split("@", 1))
        elif "/" in body:
            version = client.get_model_version(*body.rsplit("/", 1))
        else:
            return mlflow.get_logged_model(body).source_run_id
    except MlflowException:
        raise IxmctsError(f"model {ref!r} not found in the registry of {mlflow.get_tracking_uri()}") from None
    if not version.run_id:
        raise IxmctsError(f"model {ref!r} was not logged by a run of this project (it names no run)")
    return version.run_id


def upstream(ref: str, stage: str | tuple[str, ...], scenario: str | None, role: str | None = None):
    """A FINISHED run of ``stage`` (or of any of several stages) for ``scenario`` (any, if None)
    and ``role`` (checked on runs that carry one), or a clear error. ``ref`` is a run id or a
    registered model (``models:/ixmcts-p4g-policy@sft``); the returned run is the one behind it."""
    from ..errors import IxmctsError

    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    what = " or ".join(stages)
    configure()
    run_id = run_id_of(ref)
    try:
        run = mlflow.get_run(run_id)
    except Exception:  # MLflow raises its own exception types for unknown ids
        raise IxmctsError(f"upstream {what} run {ref!r} not found in {mlflow.get_tracking_uri()}") from None
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


def download(ref: str, path: str, dst: str) -> str:
    """An artifact of an upstream run (a run id or a ``models:/`` reference) into ``dst``."""
    return mlflow.artifacts.download_artifacts(run_id=run_id_of(ref), artifact_path=path, dst_path=dst)


def find_runs(filter_string: str, *, scenario: str | None = None, experiment_id: str | None = None,
              order_by: str = "start_time DESC", max_results: int | None = None) -> list:
    """Runs matching an MLflow filter in the scenario's experiment (none while it does not
    exist) or in the experiment ``experiment_id``."""
    configure()
    if experiment_id is None:
        exp = mlflow.get_experiment_by_name(experiment_name(scenario))
        if exp is None:
            return []
        experiment_id = exp.experiment_id
    kwargs = {"max_results": max_results} if max_results else {}
    return mlflow.search_runs([experiment_id], filter_string=filter_string, order_by=[order_by], output_format="list",
                              **kwargs)


def run_entry_point(project: str, entry_point: str, params: dict, experiment_id: str) -> str:
    """Run an entry point of the project as a child of the active run (``mlflow run``, local env)."""
    submitted = mlflow.projects.run(project, entry_point=entry_point, parameters=params, env_manager="local",
                                    experiment_id=experiment_id, synchronous=True)
    return submitted.run_id


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
