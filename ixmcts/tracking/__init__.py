"""MLflow helpers: the only part of the library that imports MLflow (DESIGN.md §6).

Tracking URI: ``$MLFLOW_TRACKING_URI`` or a SQLite store ``mlruns.db`` in the working
folder with artifacts under ``./mlartifacts``. One experiment per scenario
(``ixmcts-esc``, ``ixmcts-p4g``); tags ``ixmcts.stage|scenario|method|reward|profile``.

Multi-process training (``accelerate launch``/``torchrun``): every process runs the entry
point, but only rank 0 starts the stage's run and logs; on the other ranks ``stage_run``
yields a stand-in and every logging helper here does nothing. Entry points log only through
these helpers, so no rank but 0 ever opens a run.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
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
        location = (Path.cwd() / "mlartifacts" / name).as_uri() if uri.startswith(("sqlite:", "file:", "/")) else None
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
    mlflow.log_metrics(outcome.metrics)
    log_jsonl_dataset(out / CONDITIONS_FILE, "conditions", "search.conditions", json_columns=("attributes",))
    if outcome.pairs:
        log_jsonl_dataset(out / DP_FILE, "D_p", "search.pairs", json_columns=("context",))
    else:
        mlflow.log_artifact(str(out / DP_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / TREES_FILE), artifact_path="data")
    mlflow.log_artifact(str(out / SUMMARY_FILE))


# upstream runs -------------------------------------------------------------------------

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


def model_spec_of(run, dst: str):
    """The ModelSpec a training run produced: its base model and its adapters, downloaded."""
    from ..llm.models import ModelSpec

    n = int(run.data.params.get("num_adapters") or run.data.tags.get(f"{TAG}num_adapters", "1"))
    adapters = tuple(download(run.info.run_id, f"adapters/{i}", f"{dst}/{run.info.run_id}") for i in range(n))
    return ModelSpec(run.data.tags[f"{TAG}base_model"], adapters)


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


# models ------------------------------------------------------------------------------

@main_process_only
def log_adapters_and_model(spec, max_new_tokens: int = 128) -> None:
    """Log a ModelSpec's adapters (``adapters/<i>``) and a loadable pyfunc ``model``."""
    for i, adapter in enumerate(spec.adapters):
        mlflow.log_artifacts(adapter, artifact_path=f"adapters/{i}")
    mlflow.set_tags({f"{TAG}base_model": spec.base, f"{TAG}num_adapters": str(len(spec.adapters))})
    from importlib.metadata import version

    reqs = [f"{p}=={version(p)}" for p in ("torch", "transformers", "peft", "accelerate", "mlflow")]
    # Models from code: chat_model.py is copied into the model and run on load.
    mlflow.pyfunc.log_model(
        name="model", python_model=str(Path(__file__).with_name("chat_model.py")), pip_requirements=reqs,
        artifacts={f"adapter_{i}": a for i, a in enumerate(spec.adapters)},
        model_config={"base": spec.base, "num_adapters": len(spec.adapters), "max_new_tokens": max_new_tokens},
    )
