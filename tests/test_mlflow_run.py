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
    m = run.data.metrics
    assert run.info.status == "FINISHED" and m["search/conversations"] > 0  # the closing question ends them at T
    if scenario == "p4g":  # the tiny model's P4G closing answers differ between branches (its ESC ones rarely do)
        assert m["search/engaged_trajectories"] > 0 and m["search/pairs"] > 0
    # K is empty in the MLproject (the cpu profile's 4): the value used is logged as K_effective
    assert run.data.params["K_effective"] == "4" and run.data.tags["ixmcts.stage"] == "search"


@pytest.mark.slow
def test_mlflow_run_search_on_the_embedded_default(tmp_path):
    """The demo's path on SmolLM2-135M-Instruct, smaller (2 trees, depth 2)."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    proc = mlflow_run(tmp_path, uri, "p4g", "num_conditions=2", "T=2", "max_new_tokens=24", "threads=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ixmcts-p4g").experiment_id])
    assert run.info.status == "FINISHED"
    # the MLproject leaves policy_model empty (the profile's): the value used is logged beside it
    assert run.data.params["policy_model_effective"] == "smollm2-135m-instruct"
    assert run.data.metrics["search/trajectories"] == 8 and run.data.metrics["search/generated_tokens"] > 0


# The search seed is one under which the tiny models' search finds pairs (reward refuses an empty D_p);
# the tiny models are noise, so it is chosen, and rechosen when their training data changes
# (41aeb6f fitted over-long SFT examples by turns: seed 2 then found none; 11 finds 6).
TINY_OVERRIDES = {
    "sft": {"base_model": "tiny", "max_steps": 6, "lr": 0.002, "max_length": 384},
    "search": {"K": 4, "e": 2, "T": 3, "num_conditions": 3, "max_new_tokens": 16, "threads": 1, "seed": 11},
    "reward": {"max_steps": 4, "lr": 0.002, "max_length": 384},
    "preference": {"num_contexts": 3, "n": 3, "max_new_tokens": 12},
    "align": {"max_steps": 4, "lr": 0.002, "max_length": 384},
    "evaluate": {"num_interactions": 3, "max_turns": 6, "max_new_tokens": 12, "threads": 1},
}


@pytest.mark.slow
def test_pipeline_runs_every_stage_then_reuses_every_child(tmp_path, tiny_model):
    import json
    import time

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    subprocess.run([sys.executable, "-m", "ixmcts.cli", "init-tracking"], env=env, check=True, cwd=tmp_path, capture_output=True)
    out = tmp_path / "results"
    args = [str(Path(bindir) / "mlflow"), "run", str(ROOT), "-e", "main", "--env-manager", "local", "--experiment-name",
            "ixmcts-p4g", "-P", "scenario=p4g", "-P", f"overrides={json.dumps(TINY_OVERRIDES)}", "-P", f"output_dir={out}"]
    first = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-4000:]
    assert first.stdout.count("[main]") == 13 and "reusing" not in first.stdout  # 12 stages + the summary
    table = (out / "table2.md").read_text()
    assert "| Aligned | Engagement |" in table and (out / "table2.png").exists()

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ixmcts-p4g").experiment_id
    parent = client.search_runs([exp], filter_string="tags.`ixmcts.stage` = 'main'")[0]
    children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    stages = sorted(r.data.tags["ixmcts.stage"] for r in children)
    assert stages == sorted(["sft", "sft", "search", "reward", "preference", "align", "compare"] + ["evaluate"] * 5)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "results")} >= {"results/table2.md", "results/table2.png"}

    start = time.time()
    again = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stdout.count("reusing finished run") == 12  # every child: 2 sft, search, reward, preference, align, 5 evaluate, compare
    assert time.time() - start < 120
