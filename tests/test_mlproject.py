"""The MLproject: every stage of DESIGN.md is declared, and each command matches its script."""

import re
import sys
from pathlib import Path

import pytest
from mlflow.projects._project_spec import load_project

from conftest import ROOT

STAGES = ["main", "search", "sft", "reward", "preference", "align", "evaluate", "compare", "merge", "annotate",
          "prepare", "human-eval", "sensitivity"]


def test_every_stage_is_an_entry_point():
    project = load_project(str(ROOT))
    assert project.env_config_path.endswith("python_env.yaml")  # what a bare `mlflow run` builds
    for stage in STAGES:
        assert project.get_entry_point(stage) is not None


def test_search_command_renders_with_defaults_and_overrides(tmp_path):
    ep = load_project(str(ROOT)).get_entry_point("search")
    cmd = ep.compute_command({"scenario": "esc", "K": "81"}, str(tmp_path))
    assert re.search(r"search(\.py)? --scenario esc", cmd), cmd
    # an empty parameter takes the profile's value (the entry point resolves it)
    assert "--K 81" in cmd and "--policy-model ''" in cmd and "--simulator-model ''" in cmd


@pytest.mark.parametrize("stage", STAGES)
def test_mlproject_params_match_the_entry_point_options(stage):
    """Every option of a built entry point is an MLproject parameter and vice versa, and the
    command passes each one through."""
    import importlib

    import click

    sys.path.insert(0, str(ROOT / "entrypoints"))
    entry = importlib.import_module(stage.replace("-", "_"))
    options = {p.name: p for p in entry.main.params if isinstance(p, click.Option)}
    ep = load_project(str(ROOT)).get_entry_point(stage)
    names = {p.opts[0].lstrip("-").replace("-", "_") for p in options.values()}
    assert names == set(ep.parameters)
    for p in options.values():
        assert f"{p.opts[0]} {{" in ep.command, f"{stage}: {p.opts[0]} missing from the command"


PLANNED = ["sft", "search", "reward", "preference", "align", "evaluate"]


def disagreements(stage: str, project: Path) -> list[str]:
    """Where the MLproject at ``project``, the entry point's options and the stage's Config
    differ on a parameter's name, type or default (empty where a profile or the scenario sets
    it: the profile's value)."""
    import importlib

    import click

    from ixmcts.options import cast, flat_fields, option_type
    from ixmcts.profiles import COMMON, is_profiled, stages

    sys.path.insert(0, str(ROOT / "entrypoints"))
    options = {p.name: p for p in importlib.import_module(stage).main.params if isinstance(p, click.Option)}
    declared = load_project(str(project)).get_entry_point(stage).parameters
    found = []
    for name, (kind, default, help) in flat_fields(stages()[stage]).items():
        if name in COMMON:
            continue
        if name not in declared or name not in options:
            found.append(f"{name}: missing from the {'MLproject' if name not in declared else 'CLI'}")
            continue
        param, option = declared[name], options[name]
        if param.type != ("float" if kind in (int, float) else "string") or option_type(option) is not kind:
            found.append(f"{name}: type {param.type} / {option_type(option).__name__}, Config {kind.__name__}")
        if is_profiled(stage, name):
            if param.default != "" or option.default not in ("", None):  # None: a flag left out
                found.append(f"{name}: default {param.default!r} / {option.default!r}, should be empty (the profile's)")
        elif param.default is None or not cast(kind, name, param.default) == default == option.default:
            found.append(f"{name}: default {param.default!r} / {option.default!r}, Config {default!r}")
        if not help:
            found.append(f"{name}: no help on its Config field")
    return found


@pytest.mark.parametrize("stage", PLANNED)
def test_mlproject_cli_and_config_agree_on_names_types_and_defaults(stage):
    """The stage's Config is the one home of its parameters."""
    assert disagreements(stage, ROOT) == []


def test_a_drift_between_the_config_and_the_mlproject_is_caught(tmp_path):
    import shutil

    for f in ROOT.iterdir():
        if f.suffix in (".yaml", ".yml"):
            shutil.copy(f, tmp_path)
    text = (ROOT / "MLproject").read_text()
    drifted = text.replace("      beta: {type: float, default: 0.1}", "      beta: {type: float, default: 0.2}")
    drifted = drifted.replace("      K: {type: float, default: \"\"}", "      K: {type: float, default: 81}")
    assert drifted.count("default: 0.2}") == text.count("default: 0.2}") + 1
    (tmp_path / "MLproject").write_text(drifted)
    assert disagreements("align", tmp_path) == ["beta: default 0.2 / 0.1, Config 0.1"]
    assert disagreements("search", tmp_path) == ["K: default 81 / '', should be empty (the profile's)"]


def test_pins_agree_between_pyproject_and_conda():
    import tomllib

    import yaml

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert set(deps) <= set(pip)
    assert "torch==2.13.0" in pip and all("==" in d for d in deps)
    python_env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    assert python_env["dependencies"] == ["torch==2.13.0", *deps]


@pytest.mark.parametrize("stage", STAGES)
def test_every_entry_point_command_renders_with_its_defaults(stage, tmp_path):
    """MLflow can build each command from the defaults (a required parameter gets a placeholder)."""
    ep = load_project(str(ROOT)).get_entry_point(stage)
    required = {name: "RUN_ID" for name, p in ep.parameters.items() if p.default is None}
    cmd = ep.compute_command(required, str(tmp_path))
    assert cmd.startswith("python -m ixmcts.launch ")  # one executable: runs in exec form too
    assert not re.search(r"\{[a-z_]+\}", cmd), cmd  # no parameter left unrendered
    script = f"entrypoints/{cmd.split()[3]}.py"
    assert (ROOT / script).is_file()
