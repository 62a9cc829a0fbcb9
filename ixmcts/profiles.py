"""Run profiles, chosen with one parameter and recorded in the ``ixmcts.profile`` tag.

``cpu``: the embedded model and budgets that finish each stage in minutes on 2 cores.
``repro-cpu``: the small-scale CPU reproduction of Table 2 (P4G only): SmolLM2-135M trained
on the real Persuasion for Good corpus, searched and evaluated on personas synthesized from
it, sized so that ``main`` finishes in under about 2 hours on 2 cores.
``paper``: the paper's backbones and hyperparameters (DESIGN.md §3).

An entry-point parameter left empty takes the profile's value. A profile's ``pipeline``
block holds the extra parameters ``main`` passes to each stage; ``{data_dir}`` in them is
the corpus folder given to ``main`` (``-P data_dir=…`` or ``$IXMCTS_P4G_DIR``).
"""

from __future__ import annotations

from pathlib import Path

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
    "repro-cpu": {
        "base_model": {"p4g": "smollm2-135m-instruct"},
        "language": "en",
        "sft": {"lr": 2e-4, "epochs": 1.0, "max_steps": 40, "batch_size": 4, "max_length": 768, "max_examples": 480},
        "reward": {"lr": 1e-4, "epochs": 4.0, "max_steps": 0, "batch_size": 4, "max_length": 768},
        "preference": {"num_contexts": 24, "n": 3, "max_new_tokens": 40},
        "dpo": {"lr": 5e-5, "epochs": 2.0, "max_steps": 0, "batch_size": 4, "max_length": 768, "beta": 0.1},
        "pipeline": {"p4g": {
            "sft": {"data": "{data_dir}"},
            # 16 personas searched; evaluation holds out the next 32 of the same synthesized pool
            "search": {"conditions": "synth", "data_dir": "{data_dir}", "num_conditions": 16, "K": 4, "e": 2, "T": 4},
            "evaluate": {"conditions": "synth", "data_dir": "{data_dir}", "conditions_offset": 16,
                         "num_interactions": 32, "max_turns": 12},
        }},
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
    models = profile(name)["base_model"]
    if not override and scenario not in models:
        raise IxmctsError(f"profile {name!r} is defined for {', '.join(models)} only, not {scenario!r}")
    return override or models[scenario]


def pipeline_params(name: str, scenario: str, data_dir: str = "") -> dict[str, dict]:
    """The extra parameters ``main`` passes to each stage under profile ``name`` (may be empty)."""
    prof = profile(name)
    if scenario not in prof["base_model"]:
        raise IxmctsError(f"profile {name!r} is defined for {', '.join(prof['base_model'])} only, not {scenario!r}")
    blocks = prof.get("pipeline", {}).get(scenario, {})
    needs_data = any(v == "{data_dir}" for block in blocks.values() for v in block.values())
    if needs_data:
        if not data_dir:
            raise IxmctsError(f"profile {name!r} runs on the real corpus: pass -P data_dir=PATH "
                              "(e.g. ../shared/data/p4g) or set IXMCTS_P4G_DIR")
        from .data.p4g import DIALOG_CSV, INFO_CSV

        missing = [f for f in (DIALOG_CSV, INFO_CSV) if not (Path(data_dir) / f).is_file()]
        if missing:
            raise IxmctsError(f"{data_dir}: not a P4G corpus folder (missing {', '.join(missing)})")
        data_dir = str(Path(data_dir).resolve())  # stages run from the project folder
    return {stage: {k: (data_dir if v == "{data_dir}" else v) for k, v in block.items()} for stage, block in blocks.items()}
