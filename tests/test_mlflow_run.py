"""`mlflow run . -e search --env-manager local` through the MLproject, as the README shows."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT


def mlflow_run(tmp_path, uri, scenario, *params):
    # `mlflow run --env-manager local` runs `python entrypoints/search.py`: this interpreter first on PATH
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    subprocess.run([sys.executable, "-m", "ixmcts.cli", "init-tracking"], env=env, check=True, cwd=tmp_path, capture_output=True)
    args = [str(Path(bindir) / "mlflow"), "run", str(ROOT), "-e", "search", "--env-manager", "local", "--experiment-name", f"ixmcts-{scenario}",
            "-P", f"scenario={scenario}", "-P", f"checkpoint_dir={tmp_path / 'ckpt'}"]
    for p in params:
        args += ["-P", p]
    return subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_mlflow_run_search_on_the_tiny_model(scenario, tmp_path, tiny_model):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    proc = mlflow_run(tmp_path, uri, scenario, "policy_model=tiny", "max_new_tokens=16", "threads=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "preference pairs" in proc.stdout
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(f"ixmcts-{scenario}").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics["search/pairs"] > 0
    assert run.data.params["K"] == "4" and run.data.tags["ixmcts.stage"] == "search"


@pytest.mark.slow
def test_mlflow_run_search_on_the_embedded_default(tmp_path):
    """The demo's path on SmolLM2-135M-Instruct, smaller (2 trees, depth 2)."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    proc = mlflow_run(tmp_path, uri, "p4g", "num_conditions=2", "T=2", "max_new_tokens=24", "threads=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ixmcts-p4g").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["policy_model"] == "smollm2-135m-instruct"
    assert run.data.metrics["search/trajectories"] == 8 and run.data.metrics["search/generated_tokens"] > 0
