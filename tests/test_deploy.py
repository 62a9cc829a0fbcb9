"""The container and Kubernetes ways in, checked with MLflow's own functions (no cluster, no Docker).

deploy/docker/MLproject is the root MLproject's entry points with a docker_env; MLflow's Kubernetes
backend puts an entry point's command into the job in exec form (no shell), and the test below runs
exactly that list with subprocess and no shell.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.projects import _parse_kubernetes_config
from mlflow.projects import kubernetes as kb
from mlflow.projects._project_spec import load_project
from mlflow.projects.utils import get_entry_point_command, get_or_create_run, get_run_env_vars
from mlflow.tracking import MlflowClient

from conftest import ROOT

DOCKER = ROOT / "deploy" / "docker"
K8S = ROOT / "deploy" / "kubernetes"


def _job_container(monkeypatch, command, env_vars):
    """The job's container as MLflow's Kubernetes backend writes it from our backend config."""
    monkeypatch.chdir(ROOT)  # the config names the template relative to the repository root
    config = _parse_kubernetes_config(json.loads((K8S / "backend-config.json").read_text()))
    job = kb._get_kubernetes_job_definition("ixmcts", "registry/ixmcts:abc", "sha256:0", command, env_vars,
                                            config["kube-job-template"])
    return job, job["spec"]["template"]["spec"]["containers"][0]


def test_backend_config_and_job_template_pass_mlflows_checks(monkeypatch):
    job, container = _job_container(monkeypatch, ["python", "x.py"], {"MLFLOW_RUN_ID": "r1"})
    assert container["image"] == "registry/ixmcts:abc@sha256:0" and container["command"] == ["python", "x.py"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_RUN_ID"] == "r1" and env["HF_HOME"] == "/hf" and env["IXMCTS_ARGV_QUOTED"] == "shell"
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] != 0


def test_the_docker_mlproject_is_the_root_entry_points_with_a_docker_env():
    """One list of entry points: the committed file is what the renderer writes from the root MLproject."""
    sys.path.insert(0, str(DOCKER))
    from render_mlproject import render

    assert (DOCKER / "MLproject").read_text() == render(), \
        "deploy/docker/MLproject is stale: run python deploy/docker/render_mlproject.py"
    docker, root = load_project(str(DOCKER)), load_project(str(ROOT))
    assert docker.docker_env["image"].startswith("ghcr.io/") and "ixmcts-hf:/hf" in docker.docker_env["volumes"]
    assert docker.docker_env["environment"] == ["HF_TOKEN"]
    assert sorted(docker._entry_points) == sorted(root._entry_points)
    for name, ep in root._entry_points.items():
        assert docker.get_entry_point(name).command == ep.command
        assert {k: (p.type, p.default) for k, p in docker.get_entry_point(name).parameters.items()} == \
            {k: (p.type, p.default) for k, p in ep.parameters.items()}


@pytest.mark.parametrize("stage", sorted(load_project(str(ROOT))._entry_points))
def test_every_command_is_one_executable_and_its_words(stage, tmp_path):
    """No shell syntax: the first word is an executable, no `cd`, `&&`, `eval`, `;`, pipes or redirections."""
    ep = load_project(str(DOCKER)).get_entry_point(stage)
    required = {k: "x" for k, p in ep.parameters.items() if p.default is None}
    words = kb._get_run_command(get_entry_point_command(load_project(str(DOCKER)), stage, required, str(tmp_path)))
    assert words[:4] == ["python", "-m", "ixmcts.launch", stage.replace("-", "_")]
    assert not {"cd", "&&", "'&&'", "eval", ";", "|", ">", "<"} & set(words)


def test_the_launcher_undoes_exactly_the_quoting_mlflows_kubernetes_backend_adds(tmp_path):
    from ixmcts.launch import unquote_words

    project = load_project(str(DOCKER))
    params = {"scenario": "p4g", "overrides": '{"search": {"K": 81, "backend": "vllm"}}', "data_dir": "",
              "output_dir": str(tmp_path / "it's here")}
    (command,) = get_entry_point_command(project, "main", params, str(tmp_path))
    exec_form = kb._get_run_command([command])
    assert "''" in exec_form  # what the pod would otherwise get for data_dir
    assert unquote_words(exec_form) == shlex.split(command)  # what a shell would have given


@pytest.mark.slow
def test_the_kubernetes_job_command_runs_without_a_shell(tmp_path, monkeypatch, tiny_model):
    """The job's command and environment as MLflow builds them, executed as a list (shell=False):
    a FINISHED search run, and a parameter with a space and an empty one arrive intact."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("ixmcts-p4g", artifact_location=(tmp_path / "artifacts").as_uri())
    checkpoint = tmp_path / "ckpt dir"
    # a tiny-model search (the settings of tests/test_mlflow_run.py), in exec form
    params = {"scenario": "p4g", "policy_model": "tiny", "max_new_tokens": "16", "threads": "1",
              "checkpoint_dir": str(checkpoint)}
    project = load_project(str(DOCKER))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run = get_or_create_run(None, str(DOCKER), experiment_id, str(DOCKER), None, "search", params)
    command = kb._get_run_command(get_entry_point_command(project, "search", params, str(tmp_path)))
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", uri)
    _, container = _job_container(monkeypatch, command,
                                  get_run_env_vars(run_id=run.info.run_id, experiment_id=experiment_id))
    job_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # the image's folders (/hf) are not on this machine: the session's cache stands in for them
    job_env = {k: v for k, v in job_env.items() if k not in ("HF_HOME", "IXMCTS_CACHE")}
    bindir = str(Path(sys.executable).parent)  # the image's PATH puts its venv's python first
    env = {**os.environ, **job_env, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    proc = subprocess.run(container["command"], shell=False, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags["ixmcts.stage"] == "search"
    assert finished.data.metrics["search/trees"] == 4 and finished.data.metrics["search/trajectories"] > 0
    # (MLflow logs the quoted values itself; what the stage received shows on disk) the path with a
    # space is one argument, unquoted: no folder named after a quote character
    assert checkpoint.is_dir() and not [p.name for p in tmp_path.iterdir() if p.name.startswith("'")]


def test_kubernetes_files_are_valid_yaml_and_json():
    assert yaml.safe_load((K8S / "job-template.yaml").read_text())["kind"] == "Job"
    config = json.loads((K8S / "backend-config.json").read_text())
    assert config["kube-job-template-path"] == "deploy/kubernetes/job-template.yaml"
