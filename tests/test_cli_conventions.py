"""CLI conventions (issue 15 item 8): a version, and entry points that explain themselves."""

import subprocess
import sys
import tomllib

import click
import pytest

from conftest import ROOT

ENTRY_POINTS = sorted(p.stem for p in (ROOT / "entrypoints").glob("*.py") if not p.stem.startswith("_"))


def test_ixmcts_version_is_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    proc = subprocess.run([sys.executable, "-m", "ixmcts.cli", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ixmcts, version {version}"


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_has_a_description_and_help_on_every_option(name, monkeypatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "entrypoints"))
    spec = importlib.util.spec_from_file_location(f"entrypoint_{name}", ROOT / "entrypoints" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    command = module.main
    assert isinstance(command, click.Command)
    assert (command.help or "").strip(), f"{name}: no description under --help"
    missing = [p.name for p in command.params if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, f"{name}: options without help: {missing}"


def _entry_point(name):
    import importlib.util

    sys.path.insert(0, str(ROOT / "entrypoints"))
    spec = importlib.util.spec_from_file_location(f"entrypoint_{name}", ROOT / "entrypoints" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _ixmcts_commands(group=None, prefix="ixmcts"):
    from ixmcts.cli import main

    group = group or main
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _ixmcts_commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def _every_command():
    yield from ((f"entrypoints/{n}.py", _entry_point(n)) for n in ENTRY_POINTS)
    yield from _ixmcts_commands()


def _options(command):
    return [p for p in command.params if isinstance(p, click.Option) and p.name not in ("help", "version")]


def test_every_ixmcts_command_explains_itself():
    for name, command in _ixmcts_commands():
        assert (command.help or "").strip(), f"{name}: no description under --help"
        missing = [p.name for p in _options(command) if not (p.help or "").strip()]
        assert not missing, f"{name}: options without help: {missing}"


# The enumerations a user can mistype (issue 15 item 8: click.Choice for enumerations).
ENUMERATIONS = {"scenario": {"esc", "p4g"}, "profile": {"paper", "cpu", "repro-cpu"}, "role": {"policy", "simulator"},
                "method": {"sft", "bon", "aligned"}, "reward": {"engagement", "strategy", "knowledge"},
                "language": {"zh", "en"}, "backend": {"transformers", "vllm"}, "corpus": {"p4g", "psyqa", "psydt"}}


def test_enumerations_are_choices_booleans_are_flags_and_output_folders_are_output_dir():
    seen = set()
    for where, command in _every_command():
        for option in _options(command):
            name = option.opts[0].lstrip("-").replace("-", "_")
            if name in ENUMERATIONS:
                seen.add(name)
                assert isinstance(option.type, click.Choice), f"{where}: --{name} is not a click.Choice"
                assert set(option.type.choices) == ENUMERATIONS[name], f"{where}: --{name} {option.type.choices}"
            if option.is_bool_flag or option.type is click.BOOL:
                assert option.is_flag and option.secondary_opts == [f"--no-{option.opts[0][2:]}"], \
                    f"{where}: {option.opts[0]} is not a --x/--no-x flag"
            assert name not in ("dest", "out", "out_dir", "output_folder"), f"{where}: --{name}; the name is --output-dir"
    assert seen == set(ENUMERATIONS)  # every enumeration was found somewhere (the table is not stale)


def test_a_typo_in_an_enumeration_is_one_error_line_naming_the_choices(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ixmcts.launch", "evaluate", "--method", "aligend"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == \
        "error: Invalid value for '--method': 'aligend' is not one of 'sft', 'bon', 'aligned'."


@pytest.mark.parametrize("given,expected", [({}, None), ({"closing": "true"}, True), ({"closing": "false"}, False),
                                            ({"closing": "True"}, True)])
def test_mlproject_words_for_a_flag_read_as_the_flag(given, expected, tmp_path):
    """An MLproject command cannot drop a word: `-P closing=true` renders `--closing true`, the
    default renders `--closing ''`. The flag reads them as --closing, --no-closing, or neither
    (the profile's value)."""
    import shlex

    from mlflow.projects._project_spec import load_project

    cmd = load_project(str(ROOT)).get_entry_point("search").compute_command(given, str(tmp_path))
    args = shlex.split(cmd)[4:]  # past `python -m ixmcts.launch search`
    ctx = _entry_point("search").make_context("search", args)
    assert ctx.params["closing"] is expected


def test_a_flag_is_a_flag_on_the_command_line():
    from ixmcts.cli import main

    ctx = main.commands["search"].make_context("search", ["--closing", "--K", "3"])
    assert ctx.params["closing"] is True and ctx.params["K"] == 3
    assert main.commands["search"].make_context("search", ["--no-closing"]).params["closing"] is False
    assert main.commands["search"].make_context("search", []).params["closing"] is None  # the profile's
