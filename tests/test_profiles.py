"""Profiles and the entry points' parameter handling."""

import sys

import pytest

from conftest import ROOT
from ixmcts.errors import IxmctsError
from ixmcts.profiles import PAPER_MODELS, base_model, profile, stage_settings
from ixmcts.train.dpo import DPOStageConfig
from ixmcts.train.reward import RewardStageConfig
from ixmcts.train.sft import SFTStageConfig

sys.path.insert(0, str(ROOT / "entrypoints"))
from _common import config_params, typed  # noqa: E402


def test_paper_profile_has_the_paper_hyperparameters():
    p = profile("paper")
    assert p["sft"]["lr"] == 5e-5
    assert (p["reward"]["lr"], p["reward"]["epochs"]) == (1e-4, 10.0)
    assert (p["dpo"]["lr"], p["dpo"]["epochs"], p["dpo"]["beta"]) == (5e-6, 2.0, 0.1)
    assert base_model("paper", "esc") == PAPER_MODELS["esc"] == "Qwen/Qwen2.5-7B-Instruct"
    assert base_model("paper", "p4g") == "meta-llama/Llama-3.2-3B-Instruct"
    assert base_model("cpu", "p4g") == "smollm2-135m-instruct" and base_model("cpu", "p4g", "tiny") == "tiny"
    # the library's own defaults are the paper's too
    assert (SFTStageConfig().lr, RewardStageConfig().lr, DPOStageConfig().beta, DPOStageConfig().lr) == (5e-5, 1e-4, 0.1, 5e-6)
    assert SFTStageConfig().lora.r == 8 and DPOStageConfig().loss_type == "sigmoid"


def test_empty_parameters_take_the_profile_and_strings_are_cast():
    settings = stage_settings("cpu", "dpo", {"beta": "0.3", "lr": "", "max_steps": "4"})
    config = typed(DPOStageConfig, settings, seed=2)
    assert (config.beta, config.lr, config.max_steps, config.seed) == (0.3, 5e-5, 4, 2)
    assert config_params(config)["lora_r"] == 8 and "lora" not in config_params(config)
    with pytest.raises(IxmctsError, match="max_steps must be a whole number"):
        typed(DPOStageConfig, {"max_steps": "2.5"})
    with pytest.raises(IxmctsError, match="unknown profile 'gpu'"):
        stage_settings("gpu", "sft", {})


def test_repro_cpu_profile_points_every_stage_at_the_corpus_and_holds_out_the_search_personas(tmp_path):
    from ixmcts.profiles import pipeline_params

    for name in ("full_dialog.csv", "full_info.csv"):
        (tmp_path / name).write_text("")
    params = pipeline_params("repro-cpu", "p4g", str(tmp_path))
    assert params["sft"]["data"] == params["search"]["data_dir"] == params["evaluate"]["data_dir"] == str(tmp_path.resolve())
    assert params["search"]["conditions"] == params["evaluate"]["conditions"] == "synth"
    # evaluation starts where the search's personas end: the two never share a user
    assert params["evaluate"]["conditions_offset"] == params["search"]["num_conditions"]
    assert stage_settings("repro-cpu", "sft", {})["max_steps"] > stage_settings("cpu", "sft", {})["max_steps"]
    assert pipeline_params("cpu", "p4g") == {}  # the embedded default needs no corpus


def test_repro_cpu_profile_refuses_a_missing_corpus_and_other_scenarios(tmp_path):
    from ixmcts.profiles import pipeline_params

    with pytest.raises(IxmctsError, match="runs on the real corpus: pass -P data_dir"):
        pipeline_params("repro-cpu", "p4g", "")
    with pytest.raises(IxmctsError, match="not a P4G corpus folder .missing full_dialog.csv, full_info.csv"):
        pipeline_params("repro-cpu", "p4g", str(tmp_path))
    with pytest.raises(IxmctsError, match="defined for p4g only, not 'esc'"):
        pipeline_params("repro-cpu", "esc", str(tmp_path))
    with pytest.raises(IxmctsError, match="defined for p4g only, not 'esc'"):
        base_model("repro-cpu", "esc")


@pytest.mark.parametrize("name", ["cpu", "repro-cpu", "paper"])
def test_every_profile_builds_every_stage_config(name):
    from ixmcts.profiles import PROFILES

    for stage, cls in (("sft", SFTStageConfig), ("reward", RewardStageConfig), ("dpo", DPOStageConfig)):
        config = typed(cls, stage_settings(name, stage, {}))
        assert config.lr > 0 and config.batch_size >= 1
    for scenario in PROFILES[name]["base_model"]:
        assert base_model(name, scenario)
    assert set(stage_settings(name, "preference", {})) == {"num_contexts", "n", "max_new_tokens"}
