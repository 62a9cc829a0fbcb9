"""`ixmcts plan`: every stage's resolved parameters, as `main` runs them.

The `cpu` and `repro-cpu` tables below were written from what `main` passed to each stage
before the settings moved into the stage Configs (commit 7446e45): the MLproject defaults,
the profiles' blocks and the entry points' own defaults. The refactor must not change them
(the demo and results/ depend on them); `repro-cpu` has since been resized for issue 17 (the
changes are marked in `repro_cpu`). The `paper` table is the paper's (§4.6, appendix A;
DESIGN.md §3).
"""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from ixmcts.errors import IxmctsError

LORA = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_targets": "all-linear"}

CPU = {
    "sft": {"base_model": "smollm2-135m-instruct", "data": "sample", "language": "en", "lr": 2e-4, "epochs": 1.0,
            "max_steps": 30, "batch_size": 4, "max_length": 768, "max_examples": 240, "seed": 0, **LORA},
    "search": {"policy_model": "smollm2-135m-instruct", "simulator_model": "", "conditions": "sample", "num_conditions": 4,
               "data_dir": "", "language": "en", "K": 4, "e": 2, "T": 4, "c": math.sqrt(2), "gamma": 0.9, "budget": 0,
               "parallel": 1, "closing": True, "seed": 0, "max_new_tokens": 40, "pair_margin": 0.0, "shard": 0,
               "num_shards": 1, "threads": 0, "batch_size": 16, "backend": "transformers", "checkpoint_dir": ""},
    "reward": {"base_model": "", "lr": 1e-4, "epochs": 10.0, "max_steps": 0, "batch_size": 4, "max_length": 768,
               "val_fraction": 0.2, "seed": 0, **LORA},
    "preference": {"num_contexts": 12, "n": 3, "margin": 0.0, "max_new_tokens": 40, "threads": 0, "seed": 0},
    "align": {"beta": 0.1, "loss_type": "sigmoid", "lr": 5e-5, "epochs": 2.0, "max_steps": 0, "batch_size": 4,
              "max_length": 768, "seed": 0, **LORA},
    "evaluate": {"n": 3, "simulator_model": "", "advisor_model": "", "conditions": "sample", "conditions_offset": 16,
                 "num_interactions": 8, "data_dir": "", "max_turns": 12, "closing": True, "max_new_tokens": 40,
                 "language": "en", "threads": 0, "backend": "transformers", "seed": 0, "kl_dialogues": 32},
}
# main trains the simulator and evaluates BoN with the stage's settings unless a profile says otherwise
CPU["sft_simulator"], CPU["evaluate_bon"] = CPU["sft"], CPU["evaluate"]


def repro_cpu(data_dir: str) -> dict:
    """cpu with the repro-cpu profile's blocks and its `pipeline` block as they were."""
    changes = {
        "sft": {"data": data_dir, "max_steps": 40, "max_examples": 480},
        # issue 17: a search large enough that half of D_p gives the reward model >= 50 held-out
        # pairs (64 personas gave 73 pairs), and 128 paired evaluation dialogues (the paper's count)
        "search": {"conditions": "synth", "data_dir": data_dir, "num_conditions": 112},
        "reward": {"epochs": 4.0, "val_fraction": 0.5},
        "preference": {"num_contexts": 24},
        "evaluate": {"conditions": "synth", "data_dir": data_dir, "conditions_offset": 112, "num_interactions": 128},
    }
    resolved = {stage: {**params, **changes.get(stage, {})} for stage, params in CPU.items()}
    # issue 17: the simulator trains on every example (the end examples teach the donation
    # decision) for 160 steps, the settings at which results/sensitivity.md found it responds;
    # BoN, three times the generation per turn, on the first 32 of the evaluation personas
    resolved["sft_simulator"] = {**resolved["sft"], "max_steps": 160, "max_examples": 0}
    resolved["evaluate_bon"] = {**resolved["evaluate"], "num_interactions": 32}
    return resolved


def plan(*args, **kwargs):
    from ixmcts.profiles import plan as build

    return build(*args, **kwargs)


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_cpu_plan_is_what_main_ran_before(scenario):
    assert plan(scenario, "cpu") == CPU


def test_repro_cpu_plan_is_what_main_ran_before(tmp_path):
    for name in ("full_dialog.csv", "full_info.csv"):
        (tmp_path / name).write_text("")
    assert plan("p4g", "repro-cpu", str(tmp_path)) == repro_cpu(str(tmp_path.resolve()))


# The paper's settings (§4.6 and appendix A; DESIGN.md §3): what a GPU run must use.
PAPER = {
    "p4g": {
        "sft": {"base_model": "meta-llama/Llama-3.2-3B-Instruct", "lr": 5e-5, "epochs": 3.0, "lora_r": 8, "language": "en"},
        "search": {"policy_model": "meta-llama/Llama-3.2-3B-Instruct", "K": 81, "e": 3, "T": 15, "c": math.sqrt(2),
                   "closing": False, "max_new_tokens": 512, "conditions": "synth", "num_conditions": 700},
        "reward": {"lr": 1e-4, "lora_r": 8},
        "preference": {"num_contexts": 1000, "n": 4},
        "align": {"lr": 5e-6, "beta": 0.1, "loss_type": "sigmoid", "epochs": 2.0, "lora_r": 8},
        "evaluate": {"num_interactions": 128, "max_turns": 30, "closing": False, "n": 3},
    },
    "esc": {
        "sft": {"base_model": "Qwen/Qwen2.5-7B-Instruct", "lr": 5e-5, "epochs": 3.0, "language": "zh"},
        "search": {"policy_model": "Qwen/Qwen2.5-7B-Instruct", "K": 81, "e": 3, "T": 25, "c": math.sqrt(2),
                   "closing": False, "max_new_tokens": 512, "language": "zh", "num_conditions": 4000},
        "reward": {"lr": 1e-4},
        "preference": {"num_contexts": 1000, "n": 4},
        "align": {"lr": 5e-6, "beta": 0.1},
        "evaluate": {"num_interactions": 128, "max_turns": 50, "closing": False, "language": "zh", "n": 3},
    },
}


def p4g_data(folder):
    """A folder with the two CSVs a P4G corpus has (the plan checks they are there; no stage runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("full_dialog.csv", "full_info.csv"):
        (folder / name).write_text("")
    return folder


def esc_data(folder):
    """A folder as `prepare`/`annotate` leave it: PsyQA and the annotated PsyDTCorpus."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("PsyQA_full.json", "PsyDTCorpus_train_mulit_turn_packing_annotated.json"):
        (folder / name).write_text("[]")
    return folder


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_paper_plan_has_the_papers_settings(scenario, tmp_path):
    data = str(p4g_data(tmp_path) if scenario == "p4g" else esc_data(tmp_path))
    resolved = plan(scenario, "paper", data)
    for stage, expected in PAPER[scenario].items():
        assert {k: resolved[stage][k] for k in expected} == expected, stage
    search, evaluate = resolved["search"], resolved["evaluate"]
    if scenario == "p4g":  # ~700 personas synthesized from the corpus's persuadees (§4.6)
        assert search["data_dir"] == evaluate["data_dir"] == str(tmp_path.resolve()) == resolved["sft"]["data"]
        assert evaluate["conditions"] == "synth"
    else:  # PsyQA descriptions; SFT on PsyDTCorpus with the annotated help-seeker states (appendix A.1)
        assert search["conditions"] == evaluate["conditions"] == str(tmp_path.resolve() / "PsyQA_full.json")
        assert resolved["sft"]["data"].endswith("PsyDTCorpus_train_mulit_turn_packing_annotated.json")
    # held out: evaluation starts after the searched conditions
    assert evaluate["conditions_offset"] >= search["num_conditions"]


def test_the_paper_profile_holds_no_differences():
    from ixmcts.profiles import PROFILES

    assert all(not block for block in PROFILES["paper"]["stages"].values())


def test_overrides_apply_and_unknown_names_fail():
    assert plan("p4g", "cpu", overrides={"search": {"K": 9}, "align": {"beta": 0.3}})["search"]["K"] == 9
    with pytest.raises(IxmctsError, match="unknown stage.*dpo"):
        plan("p4g", "cpu", overrides={"dpo": {"beta": 0.3}})
    with pytest.raises(IxmctsError, match="search has no parameter 'k'"):
        plan("p4g", "cpu", overrides={"search": {"k": 9}})
    with pytest.raises(IxmctsError, match="K must be a whole number, got '2.5'"):
        plan("p4g", "cpu", overrides={"search": {"K": "2.5"}})


def test_an_evaluation_that_overlaps_the_search_names_both_ranges():
    with pytest.raises(IxmctsError, match=r"evaluation conditions 2\.\.10 .*overlap the search's conditions 0\.\.4"):
        plan("p4g", "cpu", overrides={"evaluate": {"conditions_offset": 2}})
    with pytest.raises(IxmctsError, match=r"evaluation conditions 16\.\.24 .*overlap the search's conditions 0\.\.20"):
        plan("p4g", "cpu", overrides={"search": {"num_conditions": 20}})
    with pytest.raises(IxmctsError, match="num_interactions must be at least 1, got 0"):  # each Config checks its values
        plan("p4g", "cpu", overrides={"evaluate": {"num_interactions": 0}})
    # another source is another pool: nothing to hold out
    assert plan("p4g", "cpu", overrides={"evaluate": {"conditions_offset": 0, "conditions": "corpus"}})


def test_a_profile_on_the_corpus_needs_the_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("IXMCTS_P4G_DIR", raising=False)
    with pytest.raises(IxmctsError, match="pass -P data_dir"):
        plan("p4g", "repro-cpu", "", require_data=True)
    with pytest.raises(IxmctsError, match="not a P4G corpus folder .missing full_dialog.csv, full_info.csv"):
        plan("p4g", "repro-cpu", str(tmp_path))
    with pytest.raises(IxmctsError, match="missing PsyDTCorpus_train_mulit_turn_packing_annotated.json .the ESC data"):
        plan("esc", "paper", str(tmp_path))
    with pytest.raises(IxmctsError, match="defined for p4g only, not 'esc'"):
        plan("esc", "repro-cpu", str(tmp_path))


def cli(*args, env=None):
    """The command a user types, in a fresh interpreter that must not import a model library."""
    code = ("import sys; from ixmcts.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'vllm', 'mlflow') if m in sys.modules)\n"
            "print('IMPORTED', heavy, file=sys.stderr); sys.exit(code)")
    return subprocess.run([sys.executable, "-c", code, "plan", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_ixmcts_plan_prints_the_paper_plan_without_loading_a_model(tmp_path):
    corpus = p4g_data(tmp_path / "p4g")
    proc = cli("--scenario", "p4g", "--profile", "paper", "--data-dir", str(corpus))
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED []" in proc.stderr
    printed = json.loads(proc.stdout)
    assert printed == plan("p4g", "paper", str(corpus))
    assert printed["search"]["K"] == 81 and printed["evaluate"]["num_interactions"] == 128

    esc = cli("--scenario", "esc", "--profile", "paper", "--data-dir", str(esc_data(tmp_path / "esc")),
              "--overrides", '{"search": {"backend": "vllm"}}')
    assert esc.returncode == 0, esc.stderr
    assert json.loads(esc.stdout)["search"]["backend"] == "vllm" and json.loads(esc.stdout)["search"]["T"] == 25


def test_ixmcts_plan_without_the_corpus_folder_shows_where_it_goes(monkeypatch):
    proc = cli("--scenario", "p4g", "--profile", "paper", env={"IXMCTS_P4G_DIR": ""})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["search"]["data_dir"] == "{data_dir}"
    assert "--data-dir" in proc.stderr
    bad = cli("--scenario", "p4g", "--profile", "gpu")
    assert bad.returncode == 2 and "'gpu' is not one of 'paper', 'cpu', 'repro-cpu'" in bad.stderr


def test_main_refuses_an_overlapping_evaluation_before_any_run(tracking_env, tmp_path):
    from conftest import run_count, run_entrypoint

    proc = run_entrypoint("main", "--scenario", "p4g", "--profile", "cpu",
                          "--overrides", '{"evaluate": {"conditions_offset": 2}}', cwd=tmp_path)
    assert proc.returncode == 2
    assert "evaluation conditions 2..10 of 'sample' overlap the search's conditions 0..4" in proc.stderr
    assert run_count(tracking_env) == 0


def test_main_logs_plan_json_then_passes_each_stage_its_plan(tracking_env, monkeypatch):
    """The pipeline's first act is the plan artifact; the first stage gets its plan's values."""
    import mlflow
    from click.testing import CliRunner

    sys.path.insert(0, str(ROOT / "entrypoints"))
    import main as pipeline

    calls = []

    def first_stage_only(label, entry_point, params, experiment_id, force, code):
        calls.append((entry_point, params))
        raise IxmctsError("stopped after the first stage (test)")

    monkeypatch.setattr(pipeline, "run_stage", first_stage_only)
    result = CliRunner().invoke(pipeline.main, ["--scenario", "p4g", "--profile", "cpu",
                                                "--overrides", '{"sft": {"max_steps": 6}}'])
    assert result.exit_code == 2
    expected = plan("p4g", "cpu", overrides={"sft": {"max_steps": 6}})
    [(entry_point, params)] = calls
    assert entry_point == "sft" and params == {"scenario": "p4g", "profile": "cpu", **expected["sft"], "role": "policy"}
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/plan.json")
    assert logged == json.loads(json.dumps(expected))


def entry_point_config(*args, **kwargs):
    """The Config an entry point builds from its options (entrypoints/_common.py)."""
    sys.path.insert(0, str(ROOT / "entrypoints"))
    import _common

    return _common.stage_config(*args, **kwargs)


def stage_calls(monkeypatch, data: str, overrides: str, stop_at: str) -> list[tuple[str, dict]]:
    """What `main -P profile=repro-cpu` passes each stage (as `mlflow run` gets them: strings),
    up to the first run of ``stop_at``, which stops it."""
    from click.testing import CliRunner

    sys.path.insert(0, str(ROOT / "entrypoints"))
    import main as pipeline

    calls = []

    def record(label, entry_point, params, experiment_id, force, code):
        if entry_point == stop_at:
            raise IxmctsError(f"stopped at {stop_at} (test)")
        calls.append((entry_point, {k: str(v) for k, v in params.items()}))
        return "RUN"

    monkeypatch.setattr(pipeline, "run_stage", record)
    result = CliRunner().invoke(pipeline.main, ["--scenario", "p4g", "--profile", "repro-cpu", "--data-dir", data,
                                                "--overrides", overrides])
    assert result.exit_code == 2, result.output
    return calls


def test_main_trains_the_simulator_with_its_own_sft_block_and_the_sft_entry_point_agrees(tracking_env, monkeypatch, tmp_path):
    """Issue 17: repro-cpu trains the simulator 160 steps on every example, the policy 40 on 480.
    An override's "sft" block applies to both roles (beating the profile's simulator block), an
    "sft_simulator" block to the simulator alone; `mlflow run . -e sft -P role=simulator` resolves
    exactly what main passes."""
    data = str(p4g_data(tmp_path))

    def sft_calls(overrides: str) -> dict:
        return {params["role"]: params for _, params in stage_calls(monkeypatch, data, overrides, stop_at="search")}

    calls = sft_calls("{}")
    assert (calls["policy"]["max_steps"], calls["policy"]["max_examples"]) == ("40", "480")
    assert (calls["simulator"]["max_steps"], calls["simulator"]["max_examples"]) == ("160", "0")
    for role, params in calls.items():  # the entry point, given nothing, resolves the same settings
        config = entry_point_config("sft", "p4g", "repro-cpu", {"data": data}, variant=role)
        assert (str(config.max_steps), str(config.max_examples)) == (params["max_steps"], params["max_examples"]), role
    calls = sft_calls('{"sft": {"max_steps": 6}}')
    assert calls["policy"]["max_steps"] == calls["simulator"]["max_steps"] == "6"
    assert calls["simulator"]["max_examples"] == "0"  # the profile's simulator block still holds what the override leaves
    calls = sft_calls('{"sft": {"max_steps": 6}, "sft_simulator": {"max_steps": 9}}')
    assert (calls["policy"]["max_steps"], calls["simulator"]["max_steps"]) == ("6", "9")


def test_main_evaluates_bon_with_its_own_block_and_the_evaluate_entry_point_agrees(tracking_env, monkeypatch, tmp_path):
    """Issue 17: repro-cpu evaluates SFT and Aligned on 128 held-out dialogues and BoN (three
    candidates per turn) on the first 32 of them; `mlflow run . -e evaluate -P method=bon`
    resolves the same, and an "evaluate" override reaches every method."""
    data = str(p4g_data(tmp_path))

    def evaluations(overrides: str) -> list[dict]:
        return [params for ep, params in stage_calls(monkeypatch, data, overrides, stop_at="compare") if ep == "evaluate"]

    counts = [(c["method"], c["num_interactions"], c["conditions_offset"]) for c in evaluations("{}")]
    assert counts == [("sft", "128", "112"), ("bon", "32", "112"), ("bon", "32", "112"), ("bon", "32", "112"), ("aligned", "128", "112")]
    for method, expected in (("sft", 128), ("bon", 32), ("aligned", 128)):
        config = entry_point_config("evaluate", "p4g", "repro-cpu", {"data_dir": data}, variant=method)
        assert config.num_interactions == expected, method
    assert {c["num_interactions"] for c in evaluations('{"evaluate": {"num_interactions": 8}}')} == {"8"}
    with pytest.raises(IxmctsError, match="overlap the search"):  # BoN's block is held out like the others
        plan("p4g", "repro-cpu", data, overrides={"evaluate_bon": {"conditions_offset": 0}})


def test_options_are_documented_from_the_config_with_the_papers_symbol_and_section():
    from click.testing import CliRunner

    from ixmcts.cli import main as ixmcts_cli

    sys.path.insert(0, str(ROOT / "entrypoints"))
    import search as search_entry_point

    for command, args in ((ixmcts_cli, ["search", "--help"]), (search_entry_point.main, ["--help"])):
        text = " ".join(CliRunner().invoke(command, args).output.split())
        assert "K: live model nodes kept per depth per tree (paper 81, §4.6)" in text
        assert "e: policy samples per expansion (paper 3, §4.6)" in text


@pytest.mark.parametrize("profile_name", ["cpu", "paper"])
def test_each_stage_reads_back_exactly_the_plan_main_passes_through_the_mlproject(profile_name, tmp_path):
    """main → `mlflow run` (the MLproject renders the command) → the entry point's options →
    the stage's Config: every value arrives unchanged (strings, booleans, √2 included)."""
    import importlib
    import shlex

    from mlflow.projects._project_spec import load_project

    from ixmcts.options import build, flatten
    from ixmcts.profiles import resolve_stage, stages

    sys.path.insert(0, str(ROOT / "entrypoints"))
    resolved = plan("p4g", profile_name, str(p4g_data(tmp_path)))
    project = load_project(str(ROOT))
    wiring = {"sft": {"role": "policy"}, "search": {"policy_run": "RUN", "simulator_run": "RUN"}, "reward": {"search_run": "RUN"},
              "preference": {"policy_run": "RUN", "reward_run": "RUN"}, "align": {"policy_run": "RUN", "preference_run": "RUN"},
              "evaluate": {"method": "sft", "policy_run": "RUN", "simulator_run": "RUN"}}
    for stage, cls in stages().items():
        params = {k: str(v) for k, v in {"scenario": "p4g", "profile": profile_name, **resolved[stage], **wiring[stage]}.items()}
        argv = shlex.split(project.get_entry_point(stage).compute_command(params, str(tmp_path)))
        args = argv[argv.index(next(a for a in argv if a.startswith("--"))):]
        command = importlib.import_module(stage).main
        given = command.make_context(stage, args).params
        settings = {k: v for k, v in given.items() if k in resolved[stage]}
        config = build(cls, {**resolve_stage(profile_name, "p4g", stage, settings), "scenario": "p4g"})
        assert {k: v for k, v in flatten(config).items() if k != "scenario"} == resolved[stage], stage
