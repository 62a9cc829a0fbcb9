"""Profiles hold only their differences from the paper; each stage's Config holds the paper's defaults."""

import sys

import pytest

from conftest import ROOT
from ixmcts.errors import IxmctsError
from ixmcts.options import build, flatten
from ixmcts.profiles import PAPER_MODELS, PROFILES, VARIANT_STEPS, paper_settings, resolve_stage, stages
from ixmcts.train.dpo import DPOStageConfig
from ixmcts.train.preference import PreferenceStageConfig
from ixmcts.train.reward import RewardStageConfig
from ixmcts.train.sft import SFTStageConfig

sys.path.insert(0, str(ROOT / "entrypoints"))


def test_the_configs_defaults_are_the_papers():
    """§4.6 and appendix A (DESIGN.md §3): LoRA r 8; SFT lr 5e-5, 3 epochs; reward lr 1e-4;
    D_t 1,000 contexts × 4 samples; DPO lr 5e-6, β 0.1, sigmoid loss, 2 epochs."""
    assert (SFTStageConfig().lr, SFTStageConfig().epochs, SFTStageConfig().lora.r) == (5e-5, 3.0, 8)
    assert (RewardStageConfig().lr, RewardStageConfig().epochs) == (1e-4, 10.0)
    assert (PreferenceStageConfig().num_contexts, PreferenceStageConfig().n) == (1000, 4)
    d = DPOStageConfig()
    assert (d.lr, d.beta, d.loss_type, d.epochs, d.lora.r) == (5e-6, 0.1, "sigmoid", 2.0, 8)
    assert PAPER_MODELS == {"esc": "Qwen/Qwen2.5-7B-Instruct", "p4g": "meta-llama/Llama-3.2-3B-Instruct"}
    assert paper_settings("esc")["search"]["T"] == 25 and paper_settings("p4g")["search"]["T"] == 15
    assert paper_settings("esc")["evaluate"]["max_turns"] == 50 and paper_settings("p4g")["evaluate"]["max_turns"] == 30


def test_a_profile_names_only_stages_and_parameters_that_exist():
    for name, prof in PROFILES.items():
        for key, block in prof["stages"].items():
            stage, variant = VARIANT_STEPS.get(key, (key, ""))  # sft_simulator: the sft stage's simulator block
            resolved = resolve_stage(name, prof["scenarios"][0], stage, require_data=False, variant=variant)
            assert stage in stages(), (name, stage)
            assert set(block) <= set(resolved), (name, key)


def test_empty_parameters_take_the_profile_and_strings_are_cast():
    values = resolve_stage("cpu", "p4g", "align", {"beta": "0.3", "lr": "", "max_steps": "4", "seed": "2"})
    config = build(DPOStageConfig, values)
    assert (config.beta, config.lr, config.max_steps, config.seed) == (0.3, 5e-5, 4, 2)
    assert flatten(config)["lora_r"] == 8 and "lora" not in flatten(config)
    assert build(DPOStageConfig, resolve_stage("cpu", "p4g", "align", {"lora_r": "16"})).lora.r == 16
    with pytest.raises(IxmctsError, match="max_steps must be a whole number, got '2.5'"):
        resolve_stage("cpu", "p4g", "align", {"max_steps": "2.5"})
    with pytest.raises(IxmctsError, match="closing must be true or false, got 'maybe'"):
        resolve_stage("cpu", "p4g", "search", {"closing": "maybe"})
    with pytest.raises(IxmctsError, match="unknown profile 'gpu'"):
        resolve_stage("gpu", "p4g", "sft")
    with pytest.raises(IxmctsError, match="unknown stage 'dpo'"):
        resolve_stage("cpu", "p4g", "dpo")


def test_repro_cpu_reads_the_corpus_in_every_stage_and_holds_out_the_searched_personas(tmp_path):
    for name in ("full_dialog.csv", "full_info.csv"):
        (tmp_path / name).write_text("")
    sft, search, evaluate = (resolve_stage("repro-cpu", "p4g", s, data_dir=str(tmp_path)) for s in ("sft", "search", "evaluate"))
    assert sft["data"] == search["data_dir"] == evaluate["data_dir"] == str(tmp_path.resolve())
    assert search["conditions"] == evaluate["conditions"] == "synth"
    assert evaluate["conditions_offset"] == search["num_conditions"]  # the next personas: no user is shared
    assert sft["max_steps"] > resolve_stage("cpu", "p4g", "sft")["max_steps"]
    # a stage run on its own takes the folder from its own data_dir parameter
    assert resolve_stage("repro-cpu", "p4g", "search", {"data_dir": str(tmp_path)})["data_dir"] == str(tmp_path.resolve())


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_builds_every_stage_config(name, tmp_path):
    for file in ("full_dialog.csv", "full_info.csv", "PsyQA_full.json", "PsyDTCorpus_train_mulit_turn_packing_annotated.json"):
        (tmp_path / file).write_text("")
    for scenario in PROFILES[name]["scenarios"]:
        for stage, cls in stages().items():
            config = build(cls, {**resolve_stage(name, scenario, stage, data_dir=str(tmp_path)), "scenario": scenario})
            assert isinstance(config, cls)
