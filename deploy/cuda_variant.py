"""One CUDA variant in the image: the CUDA major each wheel is built for, read from its Requires-Dist.

    python deploy/cuda_variant.py            # inside the image: the installed wheels and torch agree
                                             # with each other and with deploy/cuda-wheels.json

PyPI's CUDA wheels name their CUDA in their requirements: ``cuda-toolkit[…]==13.0.3``,
``nvidia-cudnn-cu13``, ``nvidia-cutlass-dsl[cu13]``. A wheel that requires none of them (torchvision)
is tied to one torch build by its ``torch==`` pin, and that pin also accepts a PyTorch-index build
such as ``2.13.0+cu128``: so torch itself must come from where the others were built against.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

RECORD = Path(__file__).resolve().parent / "cuda-wheels.json"
_PATTERNS = (
    re.compile(r"^cuda-toolkit(?:\[[^\]]*\])?\s*(?:==|~=|>=)\s*(\d+)\."),  # cuda-toolkit[…]==13.0.3
    re.compile(r"^cuda-bindings\b[^;]*>=\s*(\d+)\."),  # cuda-bindings<14,>=13.0.3
    re.compile(r"^[A-Za-z0-9_.-]+-cu(\d+)\b"),  # nvidia-cudnn-cu13
    re.compile(r"^[A-Za-z0-9_.-]+\[(?:[^\]]*,)?cu(\d+)(?:,[^\]]*)?\]"),  # nvidia-cutlass-dsl[cu13]
)


def cuda_majors(requires: list[str]) -> set[int]:
    """The CUDA majors a wheel's Requires-Dist names (empty: the wheel names no CUDA package)."""
    majors = set()
    for requirement in requires:
        for pattern in _PATTERNS:
            if m := pattern.search(requirement.strip()):
                majors.add(int(m.group(1)))
    return majors


def base_cuda_major(base_image: str) -> int | None:
    """The CUDA major of an nvidia/cuda base image tag (nvidia/cuda:13.0.2-runtime-ubuntu24.04 -> 13)."""
    m = re.search(r"nvidia/cuda:(\d+)\.", base_image)
    return int(m.group(1)) if m else None


def check_installed() -> list[str]:
    """Inside the image: the installed torch, torchvision and vLLM are the recorded wheels, and
    their CUDA majors and torch's own CUDA agree. Returns the problems (empty: consistent)."""
    from importlib.metadata import requires, version

    import torch

    problems, majors = [], {}
    for wheel in json.loads(RECORD.read_text())["wheels"]:
        name = wheel["name"]
        if version(name) != wheel["version"]:
            problems.append(f"{name} {version(name)} is installed, {wheel['version']} is recorded")
        installed = [r for r in requires(name) or [] if "extra ==" not in r]
        if cuda_majors(installed) != cuda_majors(wheel["requires_dist"]):
            problems.append(f"{name}: installed requirements name CUDA {sorted(cuda_majors(installed))}, "
                            f"the recorded wheel CUDA {sorted(cuda_majors(wheel['requires_dist']))}")
        majors[name] = cuda_majors(installed)
    torch_cuda = int(torch.version.cuda.split(".")[0]) if torch.version.cuda else None
    named = set().union(*majors.values())
    if torch_cuda is None or named != {torch_cuda}:
        problems.append(f"torch {torch.__version__} is built for CUDA {torch.version.cuda}; "
                        f"the wheels' requirements name CUDA {sorted(named)}")
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}); requirements name CUDA "
          + ", ".join(f"{k} {sorted(v) or '(via torch==)'}" for k, v in majors.items()))
    return problems


if __name__ == "__main__":
    found = check_installed()
    for problem in found:
        print("CUDA variant mismatch:", problem, file=sys.stderr)
    sys.exit(1 if found else 0)
