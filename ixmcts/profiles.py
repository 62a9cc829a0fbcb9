"""Run profiles, chosen with one parameter and recorded in the ``ixmcts.profile`` tag.

``cpu``: the embedded model and budgets that finish each stage in minutes on 2 cores.
``paper``: the paper's backbones and hyperparameters (DESIGN.md §3). An entry-point
parameter left empty takes the profile's value.
"""

from __future__ import annotations

from .errors import IxmctsError

PAPER_MODELS = {"esc": "Qwen/Qwen2.5-7B-Instruct", "p4g": "meta-llama/Llama-3.2-3B-Instruct"}

PROFILES: dict[str, dict] = {
    "cpu": {
        "base_model": {"esc": "smollm2-135m-instruct", "p4g": "smollm2-135m-instruct"},
        "language": "en",
        "sft": {"lr": 2e-4, "epochs": 1.0, "max_steps": 30, "batch_size": 4, "max_length": 768, "max_examples": 240},
        "reward": {"lr": 1e-4, "epochs": 10.0, "max_steps": 0, "batch_size": 4, "max_length": 768},
        "preference": {"num_contexts": 12, "n": 3, "max_new_tokens": 40},
        "dpo": {"lr": 5e-5, "epochs": 2.0, "max_steps": 0, "batch_size": 4, "max_length": 768, "beta": 0.1},
    },
    "paper": {
        "base_model": PAPER_MODELS,
        "language": "zh",
        "sft": {"lr": 5e-5, "epochs": 3.0, "max_steps": 0, "batch_size": 4, "max_length": 4096, "max_examples": 0},
        "reward": {"lr": 1e-4, "epochs": 10.0, "max_steps": 0, "batch_size": 4, "max_length": 4096},
        "preference": {"num_contexts": 1000, "n": 4, "max_new_tokens": 512},
        "dpo": {"lr": 5e-6, "epochs": 2.0, "max_steps": 0, "batch_size": 4, "max_length": 4096, "beta": 0.1},
    },
}


def profile(name: str) -> dict:
    if name not in PROFILES:
        raise IxmctsError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def stage_settings(name: str, stage: str, overrides: dict) -> dict:
    """The profile's settings for ``stage`` with every non-empty override applied."""
    settings = dict(profile(name)[stage])
    settings.update({k: v for k, v in overrides.items() if v not in (None, "")})
    return settings


def base_model(name: str, scenario: str, override: str = "") -> str:
    return override or profile(name)["base_model"][scenario]
