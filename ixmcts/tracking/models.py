"""Models: a training run's adapters and its loadable MLflow model, and the ModelSpec
an upstream training run produced."""

from __future__ import annotations

from pathlib import Path

import mlflow

from .runs import TAG, download, main_process_only


def model_spec_of(run, dst: str):
    """The ModelSpec a training run produced: its base model and its adapters, downloaded."""
    from ..llm.models import ModelSpec

    n = int(run.data.params.get("num_adapters") or run.data.tags.get(f"{TAG}num_adapters", "1"))
    adapters = tuple(download(run.info.run_id, f"adapters/{i}", f"{dst}/{run.info.run_id}") for i in range(n))
    return ModelSpec(run.data.tags[f"{TAG}base_model"], adapters)


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
