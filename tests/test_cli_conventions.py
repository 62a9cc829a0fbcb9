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
