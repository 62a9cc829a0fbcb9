"""deploy/kubernetes checked with MLflow's own Kubernetes-backend code (no cluster needed)."""

import json
import subprocess

import yaml
from mlflow.projects import _parse_kubernetes_config
from mlflow.projects._project_spec import load_project
from mlflow.projects.kubernetes import _get_kubernetes_job_definition

from conftest import ROOT

K8S = ROOT / "deploy" / "kubernetes"


def _argv(command: str) -> list[str]:
    """The argv the pod's shell gives python for a rendered command."""
    assert command.startswith("cd /opt/ixmcts && ")
    script = "python() { printf '%s\\n' \"$@\"; }; " + command.removeprefix("cd /opt/ixmcts && ")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()


def test_backend_config_and_job_template_pass_mlflows_checks(monkeypatch):
    monkeypatch.chdir(ROOT)  # the config names the template relative to the repository root
    config = _parse_kubernetes_config(json.loads((K8S / "backend-config.json").read_text()))
    job = _get_kubernetes_job_definition("ixmcts-k8s", "registry/ixmcts-k8s:abc", "sha256:0", ["python", "x.py"],
                                         {"MLFLOW_RUN_ID": "r1"}, config["kube-job-template"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry/ixmcts-k8s:abc@sha256:0" and container["command"] == ["python", "x.py"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_RUN_ID"] == "r1" and env["HF_HOME"] == "/hf"
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] != 0


def test_kubernetes_project_runs_the_baked_in_code_with_vllm_shards(tmp_path):
    project = load_project(str(K8S))
    assert project.docker_env["image"].startswith("ghcr.io/")
    search = project.get_entry_point("search").compute_command(
        {"shard": "3", "num_shards": "8", "args": "--scenario esc --K 81"}, str(tmp_path))
    merge = project.get_entry_point("stage").compute_command({"name": "merge", "args": "--runs a,b"}, str(tmp_path))
    assert _argv(search) == ["entrypoints/search.py", "--backend", "vllm", "--shard", "3", "--num-shards", "8",
                             "--scenario", "esc", "--K", "81"]
    assert _argv(merge) == ["entrypoints/merge.py", "--runs", "a,b"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "WORKDIR /opt/ixmcts" in dockerfile  # where the commands above find the code
    assert yaml.safe_load((K8S / "job-template.yaml").read_text())["kind"] == "Job"
