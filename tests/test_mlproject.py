"""The MLproject: every stage of DESIGN.md is declared, and each command matches its script."""

import re
import sys

import pytest
from mlflow.projects._project_spec import load_project

from conftest import ROOT

STAGES = ["main", "search", "sft", "reward", "preference", "align", "evaluate", "compare", "merge", "annotate",
          "prepare", "human-eval"]


def test_every_stage_is_an_entry_point():
    project = load_project(str(ROOT))
    assert project.env_config_path.endswith("conda.yaml")
    for stage in STAGES:
        assert project.get_entry_point(stage) is not None


def test_search_command_renders_with_defaults_and_overrides(tmp_path):
    ep = load_project(str(ROOT)).get_entry_point("search")
    cmd = ep.compute_command({"scenario": "esc", "K": "81"}, str(tmp_path))
    assert cmd.startswith("python entrypoints/search.py --scenario esc")
    assert "--K 81" in cmd and "--policy-model smollm2-135m-instruct" in cmd and "--simulator-model ''" in cmd


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


def test_pins_agree_between_pyproject_and_conda():
    import tomllib

    import yaml

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert set(deps) <= set(pip)
    assert "torch==2.13.0" in pip and all("==" in d for d in deps)


@pytest.mark.parametrize("stage", STAGES)
def test_every_entry_point_command_renders_with_its_defaults(stage, tmp_path):
    """MLflow can build each command from the defaults (a required parameter gets a placeholder)."""
    ep = load_project(str(ROOT)).get_entry_point(stage)
    required = {name: "RUN_ID" for name, p in ep.parameters.items() if p.default is None}
    cmd = ep.compute_command(required, str(tmp_path))
    assert cmd.startswith("python entrypoints/")
    assert not re.search(r"\{[a-z_]+\}", cmd), cmd  # no parameter left unrendered
    script = cmd.split()[1]
    assert (ROOT / script).is_file()
