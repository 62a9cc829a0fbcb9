#!/usr/bin/env bash
# Build the real Dockerfile and run a stage in the image, without a Docker daemon (buildah).
#
#   sudo scripts/image_smoke.sh            # Debian/Ubuntu: apt-get install buildah podman debootstrap
#
# Only the base image is substituted, by a build argument: BASE_IMAGE (default: a local Debian
# bookworm made with debootstrap, for machines that cannot pull nvidia/cuda). The PyPI wheels are
# the image's own (torch, torchvision and vLLM built for CUDA 13); on a CPU machine they run on CPU.
# Steps: build -> the installed CUDA wheels agree (deploy/cuda_variant.py) -> as uid 10001 with
# /runs mounted (see in_image below), `mlflow run . -e search` (the CPU default settings, P4G) -> on the host,
# a FINISHED search run with pairs in the experiment ixmcts-p4g and its artifacts on the /runs volume.
#
# Settings (environment): BASE_IMAGE, IMAGE (tag, default localhost/ixmcts:smoke), CA_BUNDLE (PEM
# passed to pip as the build secret `ca`, default /etc/ssl/certs/ca-certificates.crt when present),
# WORK (folder for the volumes, default a new temporary folder), PYTHON (the host interpreter with
# MLflow, for the final check; default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-localhost/ixmcts:smoke}"
WORK="${WORK:-$(mktemp -d /tmp/ixmcts-image-smoke.XXXXXX)}"
PYTHON="${PYTHON:-.venv/bin/python}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
for tool in buildah podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "image_smoke: $tool not found (apt-get install buildah podman debootstrap)" >&2; exit 2; }
done
# rootful buildah here: no cgroup limits to set for `buildah run`
mkdir -p "$WORK"
export CONTAINERS_CONF="$WORK/containers.conf"
printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"

if [[ -z "${BASE_IMAGE:-}" ]]; then
  BASE_IMAGE=localhost/ixmcts-base:bookworm
  if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "== base: debootstrap bookworm (minbase) -> $BASE_IMAGE"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    tar -C "$WORK/rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
    rm -rf "$WORK/rootfs"
  fi
fi

secret=()
[[ -s "$CA_BUNDLE" ]] && secret=(--secret "id=ca,src=$CA_BUNDLE")
echo "== build: BASE_IMAGE=$BASE_IMAGE -> $IMAGE"
start=$(date +%s)
buildah bud --layers --isolation chroot --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" "${secret[@]}" \
  -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
build_s=$(( $(date +%s) - start ))
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "build: ${build_s}s (cached layers count as done), image size: $(( size / 1000000 )) MB"

# the volumes, as Docker initialises named volumes from the image: owned by uid 10001
mkdir -p "$WORK/runs"
chown 10001:10001 "$WORK/runs"
ctr=$(buildah from "$IMAGE")
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
# Only /runs is bind-mounted: with two -v binds, buildah 1.28 (Debian bookworm, chroot isolation)
# loses every write to both (observed: the files stay in the container). /hf is the image's own
# folder here (the converted model is not kept); `docker run -v ixmcts-hf:/hf` keeps it.
in_image() {
  buildah run --isolation chroot --network host --user 10001:10001 -v "$WORK/runs:/runs" \
    --env HF_HUB_OFFLINE=1 --env OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$ctr" -- "$@"
}

echo "== the installed CUDA wheels (torch, torchvision, vLLM) are one variant"
in_image python deploy/cuda_variant.py

echo "== in the image, uid 10001: mlflow run . -e search (CPU defaults, P4G)"
start=$(date +%s)
in_image mlflow run . -e search --env-manager local --experiment-name ixmcts-p4g -P scenario=p4g | tee "$WORK/run.log"
run_s=$(( $(date +%s) - start ))

echo "== on the host: the run, its experiment and its artifacts on the volume"
"$PYTHON" - "$WORK/runs" "$build_s" "$run_s" "$size" <<'PY'
import sys
from pathlib import Path
from mlflow.tracking import MlflowClient

runs, build_s, run_s, size = Path(sys.argv[1]), *sys.argv[2:]
client = MlflowClient(f"sqlite:///{runs / 'mlruns.db'}")
exp = client.get_experiment_by_name("ixmcts-p4g")
assert exp is not None, "no experiment ixmcts-p4g in the volume's store"
(run,) = client.search_runs([exp.experiment_id])
assert run.info.status == "FINISHED", run.info.status
assert run.data.tags["ixmcts.stage"] == "search" and run.data.metrics["search/pairs"] > 0, run.data.metrics
uri = run.info.artifact_uri
path = uri.removeprefix("file://")  # MLflow records a plain path or a file: URI
assert path.startswith("/runs/"), f"artifacts outside the volume: {uri}"
on_host = runs / path.removeprefix("/runs/")
files = sorted(str(p.relative_to(on_host)) for p in on_host.rglob("*") if p.is_file())
assert files, f"no artifacts in {on_host}"
owners = {p.stat().st_uid for p in on_host.rglob("*")}
assert owners == {10001}, f"artifacts owned by {owners}"
m = run.data.metrics
print(f"image_smoke OK: build {build_s}s, image {int(size) // 1000000} MB, run {run.info.run_id} FINISHED in "
      f"experiment ixmcts-p4g ({run_s}s in the container): {m['search/pairs']:.0f} pairs, "
      f"{m['search/trees']:.0f} trees; artifacts on the volume ({uri}): {', '.join(files)}")
PY
