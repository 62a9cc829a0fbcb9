#!/usr/bin/env bash
# GPU smoke test (inside the image, or a CUDA checkout with `pip install -e '.[vllm]'`):
# the search throughput with the vLLM backend, then the whole P4G pipeline on the embedded
# SmolLM2-135M-Instruct with vLLM for search and evaluation. About 10 minutes on one GPU.
#   docker run --gpus all --ipc=host ixmcts bash scripts/gpu_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$PWD/gpu-smoke.db}"
MODEL="${MODEL:-smollm2-135m-instruct}"

python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this smoke test is for GPU machines"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
# torch, torchvision and vLLM are one CUDA build (their Requires-Dist and torch.version.cuda)
python deploy/cuda_variant.py
python -m ixmcts.cli prepare-model "$MODEL"

echo "== search throughput: one call per node (transformers) vs the engine on vLLM =="
python bench/search_throughput.py --model "$MODEL" --backend vllm --trees 8

echo "== pipeline: P4G, cpu-profile budgets, vLLM for search and evaluation =="
start=$(date +%s)
mlflow run . -e main --env-manager local --experiment-name ixmcts-gpu-smoke -P scenario=p4g \
  -P output_dir=gpu-smoke-results \
  -P overrides='{"search": {"backend": "vllm"}, "evaluate": {"backend": "vllm"}}'
echo "pipeline wall: $(( $(date +%s) - start )) s"
