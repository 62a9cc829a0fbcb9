"""Run profiles and the plan: every stage's resolved parameters, as ``main`` runs them.

Each stage's Config dataclass holds its parameters with the paper's defaults (``STAGES``);
the paper's settings that differ by scenario (backbone, prompt language, depth T, the
interaction cap, the data each stage reads) come from :func:`paper_settings`. A profile
holds only its differences from the paper:

``paper``: none (Table 2's setup: §4.6, appendix A, DESIGN.md §3).
``cpu``: the embedded model, the bundled samples and budgets that finish each stage in minutes on 2 cores.
``repro-cpu``: the small-scale CPU reproduction of Table 2 (P4G only): SmolLM2-135M trained on
the real Persuasion for Good corpus, searched and evaluated on personas synthesized from it,
sized so that ``main`` finishes in about 2.5 hours on 2 cores (stage times measured in
results/README.md).

A parameter resolves to, in order: the value given (an empty one does not count), the
profile's, the paper's for the scenario, the Config's default. ``{data_dir}`` in a value is
the corpus folder (``-P data_dir=…``, or ``$IXMCTS_P4G_DIR`` / ``$IXMCTS_ESC_DIR``).
Evaluation is held out: its conditions never overlap the search's.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import IxmctsError
from .options import build, cast, flat_fields

PAPER_MODELS = {"esc": "Qwen/Qwen2.5-7B-Instruct", "p4g": "meta-llama/Llama-3.2-3B-Instruct"}

DATA_DIR = "{data_dir}"
# What the paper reads (§4.6): SFT on Persuasion for Good / PsyDTCorpus with the help-seeker
# states `annotate` adds (appendix A.1); the search on ~700 personas synthesized from the P4G
# persuadees / 4,000 PsyQA descriptions; evaluation on the next conditions of the same pool.
PSYQA, PSYDT_ANNOTATED = "PsyQA_full.json", "PsyDTCorpus_train_mulit_turn_packing_annotated.json"
PAPER_DATA = {
    "p4g": {"sft": {"data": DATA_DIR},
            "search": {"conditions": "synth", "data_dir": DATA_DIR, "num_conditions": 700},
            "evaluate": {"conditions": "synth", "data_dir": DATA_DIR, "conditions_offset": 700}},
    "esc": {"sft": {"data": f"{DATA_DIR}/{PSYDT_ANNOTATED}"},
            "search": {"conditions": f"{DATA_DIR}/{PSYQA}", "num_conditions": 4000},
            "evaluate": {"conditions": f"{DATA_DIR}/{PSYQA}", "conditions_offset": 4000}},
}
P4G_FILES = ("full_dialog.csv", "full_info.csv")

SMOLLM2 = "smollm2-135m-instruct"
_CPU_DATA = {"data_dir": "", "conditions": "sample"}
PROFILES: dict[str, dict] = {
    "paper": {"scenarios": ("esc", "p4g"), "stages": {}},
    "cpu": {
        "scenarios": ("esc", "p4g"),
        "stages": {
            "sft": {"base_model": SMOLLM2, "language": "en", "data": "sample", "lr": 2e-4, "epochs": 1.0, "max_steps": 30,
                    "max_length": 768, "max_examples": 240},
            "search": {"policy_model": SMOLLM2, "language": "en", **_CPU_DATA, "num_conditions": 4, "K": 4, "e": 2, "T": 4,
                       "closing": True, "max_new_tokens": 40},
            "reward": {"max_length": 768},
            "preference": {"num_contexts": 12, "n": 3, "max_new_tokens": 40},
            "align": {"lr": 5e-5, "max_length": 768},
            "evaluate": {"language": "en", **_CPU_DATA, "conditions_offset": 16, "num_interactions": 8, "max_turns": 12,
                         "closing": True, "max_new_tokens": 40},
        },
    },
}
# personas the repro-cpu search reads; its evaluation starts right after them (held out)
REPRO_SEARCHED = 112
PROFILES["repro-cpu"] = {
    "scenarios": ("p4g",),
    "stages": {
        **PROFILES["cpu"]["stages"],
        "sft": {**PROFILES["cpu"]["stages"]["sft"], "data": DATA_DIR, "max_steps": 40, "max_examples": 480},
        # the simulator needs every end example (dialogue + donation) and more steps to answer the
        # donation question from the conversation: at 40 steps on 480 examples it does not
        # (results/sensitivity.md: +$0.34, p = 0.002 with these; no difference without)
        "sft_simulator": {"max_steps": 160, "max_examples": 0},
        # 112 personas searched, so that half of D_p holds >= 50 pairs to measure the reward model
        # on (64 gave 73 pairs, 36 held out, once the policy's SFT kept the persona: results/);
        # SFT and Aligned evaluated on the next 128 personas of the same synthesized pool (the
        # paper's count), BoN on the first 32 of them (issue 17)
        "search": {**PROFILES["cpu"]["stages"]["search"], "conditions": "synth", "data_dir": DATA_DIR, "num_conditions": REPRO_SEARCHED},
        "reward": {**PROFILES["cpu"]["stages"]["reward"], "epochs": 4.0, "val_fraction": 0.5},
        "preference": {**PROFILES["cpu"]["stages"]["preference"], "num_contexts": 24},
        "evaluate": {**PROFILES["cpu"]["stages"]["evaluate"], "conditions": "synth", "data_dir": DATA_DIR,
                     "conditions_offset": REPRO_SEARCHED, "num_interactions": 128},
        "evaluate_bon": {"num_interactions": 32},
    },
}

COMMON = ("scenario",)  # pipeline-wide parameters that a stage Config may carry, not stage settings
# Plan steps that run a stage's entry point for one variant with settings of their own: main
# trains the policy and the simulator with `sft` (variant: the role) and evaluates SFT, BoN
# and Aligned with `evaluate` (variant: the method). A block named after the stage (profile or
# overrides) applies to every variant; "sft_simulator" / "evaluate_bon" hold only that
# variant's differences and win over the profile's stage block, not over an override's.
VARIANT_STEPS = {"sft_simulator": ("sft", "simulator"), "evaluate_bon": ("evaluate", "bon")}


def variant_key(stage: str, variant: str) -> str | None:
    """The plan key of ``stage`` run for ``variant`` (None: the stage's own key applies)."""
    return next((key for key, step in VARIANT_STEPS.items() if step == (stage, variant)), None)


def stages() -> dict[str, type]:
    """The stages ``main`` runs, in order, each with its Config dataclass (one name per stage:
    the entry point, the profile key and the plan's key; ``aligned`` names the method in tables)."""
    from .evaluate.params import EvaluateParams
    from .search.run import SearchParams
    from .train.dpo import DPOStageConfig
    from .train.preference import PreferenceStageConfig
    from .train.reward import RewardStageConfig
    from .train.sft import SFTStageConfig

    return {"sft": SFTStageConfig, "search": SearchParams, "reward": RewardStageConfig,
            "preference": PreferenceStageConfig, "align": DPOStageConfig, "evaluate": EvaluateParams}


def profile(name: str) -> dict:
    if name not in PROFILES:
        raise IxmctsError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def paper_settings(scenario: str) -> dict[str, dict]:
    """The paper's settings that depend on the scenario; the scenario's own facts (T, the
    interaction cap, the prompt language) come from its class."""
    from .scenarios import get_scenario

    sc = get_scenario(scenario)  # builds prompts only: no model is loaded
    model, language, data = PAPER_MODELS[scenario], getattr(sc, "language", "en"), PAPER_DATA[scenario]
    return {"sft": {"base_model": model, "language": language, **data["sft"]},
            "search": {"policy_model": model, "language": language, "T": sc.max_depth, **data["search"]},
            "evaluate": {"language": language, "max_turns": sc.max_turns, **data["evaluate"]}}


def is_profiled(stage: str, name: str) -> bool:
    """Whether a profile or the scenario can change this parameter: its entry-point option is
    then empty by default (the profile's value) rather than the Config's default."""
    keys = [stage] + [key for key, (of, _) in VARIANT_STEPS.items() if of == stage]
    blocks = [p["stages"].get(k, {}) for p in PROFILES.values() for k in keys]
    blocks += [paper_settings(s).get(stage, {}) for s in PAPER_MODELS]
    return any(name in block for block in blocks)


def env_data_dir(scenario: str) -> str:
    return os.environ.get(f"IXMCTS_{scenario.upper()}_DIR", "")


def resolve_stage(name: str, scenario: str, stage: str, given: dict | None = None, data_dir: str = "",
                  require_data: bool = True, variant: str = "") -> dict:
    """Stage ``stage``'s parameters under profile ``name``: flat (``lora_r``), typed, with
    ``{data_dir}`` filled in (or left as it is when ``require_data`` is false and there is none).
    ``variant``: the sft role or the evaluated method, whose profile block (``sft_simulator``,
    ``evaluate_bon``) applies over the stage's."""
    prof = profile(name)
    if scenario not in PAPER_MODELS:
        raise IxmctsError(f"unknown scenario {scenario!r}; choose one of: {', '.join(PAPER_MODELS)}")
    if scenario not in prof["scenarios"]:
        raise IxmctsError(f"profile {name!r} is defined for {', '.join(prof['scenarios'])} only, not {scenario!r}")
    configs = stages()
    if stage not in configs:
        raise IxmctsError(f"unknown stage {stage!r}; the stages are: {', '.join(configs)}")
    fields = {k: v for k, v in flat_fields(configs[stage]).items() if k not in COMMON}
    given = {k: v for k, v in (given or {}).items() if k not in COMMON and v not in (None, "")}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise IxmctsError(f"{stage} has no parameter {unknown[0]!r}; its parameters are: {', '.join(fields)}")
    values = {k: default for k, (_, default, _) in fields.items()}
    values.update(paper_settings(scenario).get(stage, {}))
    values.update(prof["stages"].get(stage, {}))
    values.update(prof["stages"].get(variant_key(stage, variant) or stage, {}))
    values.update(given)
    values = {k: cast(fields[k][0], k, v) for k, v in values.items()}
    data_dir = data_dir or given.get("data_dir", "") or env_data_dir(scenario)
    return _fill_data_dir(values, name, scenario, data_dir, require_data)


def _fill_data_dir(values: dict, name: str, scenario: str, data_dir: str, require_data: bool) -> dict:
    needs = sorted({v.replace(DATA_DIR, "").lstrip("/") for v in values.values() if isinstance(v, str) and DATA_DIR in v})
    if not needs:
        return values
    if not data_dir:
        if require_data:
            where = ", ".join(k for k, v in values.items() if isinstance(v, str) and DATA_DIR in v)
            raise IxmctsError(f"profile {name!r} reads the {scenario} corpus ({where}): pass -P data_dir=PATH "
                              f"(e.g. ../shared/data/p4g for P4G), give {where} itself, or set IXMCTS_{scenario.upper()}_DIR")
        return values
    folder = Path(data_dir)
    wanted = [f for need in needs for f in ((P4G_FILES if scenario == "p4g" else ()) if need == "" else (need,))]
    missing = [f for f in wanted if not (folder / f).is_file()]
    if missing:
        if scenario == "p4g":
            raise IxmctsError(f"{data_dir}: not a P4G corpus folder (missing {', '.join(missing)})")
        raise IxmctsError(f"{data_dir}: missing {', '.join(missing)} (the ESC data folder holds {PSYQA} from `prepare` "
                          f"and {PSYDT_ANNOTATED} from `annotate`)")
    absolute = str(folder.resolve())  # stages run from the project folder
    return {k: v.replace(DATA_DIR, absolute) if isinstance(v, str) else v for k, v in values.items()}


def check_held_out(search: dict, evaluate: dict) -> None:
    """Evaluation conditions must be disjoint from the searched ones (the paper's held-out
    conditions); both pools are read from the start, so the search covers 0..num_conditions."""
    same_pool = (search["conditions"] == evaluate["conditions"] and search["data_dir"] == evaluate["data_dir"]
                 and (search["conditions"] != "synth" or search["seed"] == evaluate["seed"]))
    if not same_pool:
        return
    searched = search["num_conditions"]
    start, end = evaluate["conditions_offset"], evaluate["conditions_offset"] + evaluate["num_interactions"]
    if start < searched:
        raise IxmctsError(f"evaluation conditions {start}..{end} of {evaluate['conditions']!r} overlap the search's "
                          f"conditions 0..{searched}: evaluation must be held out, so set evaluate's conditions_offset "
                          f"to at least {searched} or search fewer conditions")


def plan(scenario: str, name: str, data_dir: str = "", overrides: dict | None = None, require_data: bool = False) -> dict:
    """``{stage: {param: value}}`` for every stage ``main`` runs (no model is loaded).
    ``overrides``: ``{stage: {param: value}}`` on top of the profile."""
    overrides = overrides or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise IxmctsError('overrides must be a JSON object of stages, e.g. {"sft": {"max_steps": 6}}')
    keys = [*stages(), *VARIANT_STEPS]
    unknown = sorted(set(overrides) - set(keys))
    if unknown:
        raise IxmctsError(f"overrides name unknown stage(s): {', '.join(unknown)}; the stages are: {', '.join(keys)}")
    data_dir = data_dir or env_data_dir(scenario)
    resolved = {stage: resolve_stage(name, scenario, stage, overrides.get(stage), data_dir, require_data) for stage in stages()}
    for key, (stage, variant) in VARIANT_STEPS.items():  # the stage's overrides apply to every variant, the variant's on top
        given = {**overrides.get(stage, {}), **overrides.get(key, {})}
        resolved[key] = resolve_stage(name, scenario, stage, given, data_dir, require_data, variant=variant)
    for key, params in resolved.items():  # each Config checks its own values (the backend: where the stage runs)
        cls = stages()[VARIANT_STEPS[key][0] if key in VARIANT_STEPS else key]
        build(cls, {**params, "scenario": scenario, **({"backend": "transformers"} if "backend" in params else {})})
    for key in ("evaluate", "evaluate_bon"):
        check_held_out(resolved["search"], resolved[key])
    return resolved
