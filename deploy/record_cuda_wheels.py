"""Record the Requires-Dist of the image's CUDA wheels (torch, torchvision, vLLM) in deploy/cuda-wheels.json.

    python deploy/record_cuda_wheels.py

PyPI serves no separate metadata for these wheels, so this reads each wheel's METADATA with HTTP
range requests (the zip's central directory and one member: a few hundred kB, not the GB wheel).
tests/test_docker.py checks the recorded requirements against the Dockerfile's CUDA base and pins
offline; scripts/image_smoke.sh checks the installed ones inside the built image. Rerun after
changing the torch or vLLM pin (the test names what is stale).
"""

import json
import tomllib
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "deploy" / "cuda-wheels.json"
# the image's Python (Ubuntu 24.04: 3.12) on x86-64; vLLM ships one abi3 wheel
PLATFORM = "manylinux_2_28_x86_64"
TAGS = ("cp312-cp312", "cp38-abi3")


class RangeFile:
    """A read-only, seekable file over HTTP range requests (enough for zipfile)."""

    def __init__(self, url: str):
        self.url, self.pos = url, 0
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as r:
            self.size = int(r.headers["Content-Length"])

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def read(self, n=-1):
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end <= self.pos:
            return b""
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={self.pos}-{end - 1}"})
        with urllib.request.urlopen(req) as r:
            data = r.read()
        self.pos += len(data)
        return data


def wheel(name: str, version: str) -> dict:
    req = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req) as r:
        files = json.load(r)["files"]
    prefix = f"{name.replace('-', '_')}-{version}-"
    (entry,) = [f for f in files if f["filename"].startswith(prefix) and f["filename"].endswith(f"{PLATFORM}.whl")
                and any(t in f["filename"] for t in TAGS)]
    with zipfile.ZipFile(RangeFile(entry["url"])) as z:
        (member,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(z.read(member).decode())
    requires = [r for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r]
    return {"name": name, "version": version, "filename": entry["filename"], "sha256": entry["hashes"]["sha256"],
            "requires_dist": requires}


def main():
    dockerfile = (ROOT / "Dockerfile").read_text()
    torch = dockerfile.split("ARG TORCH_VERSION=", 1)[1].split()[0]
    (vllm_pin,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    vllm = wheel("vllm", vllm_pin.split("==")[1])
    (torchvision,) = [r.split("==")[1] for r in vllm["requires_dist"] if r.startswith("torchvision==")]
    record = {"platform": PLATFORM, "wheels": [wheel("torch", torch), wheel("torchvision", torchvision), vllm]}
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
