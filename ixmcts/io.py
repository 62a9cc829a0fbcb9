"""Small file helpers: every output is written to a temporary file and renamed,
so an interrupted or failed run never leaves a half-written file behind."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import IxmctsError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", compress: bool = False) -> Iterator:
    """Open a temp file beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if compress:
            fh = gzip.open(tmp, mode if "b" in mode else mode + "t", encoding=None if "b" in mode else "utf-8")
        else:
            fh = open(tmp, mode, encoding=None if "b" in mode else "utf-8")
        with fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records as JSON lines (gzip when the name ends in .gz); return the count."""
    n = 0
    with atomic_open(path, compress=str(path).endswith(".gz")) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines; a malformed line raises an error naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise IxmctsError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IxmctsError(f"{path}:{lineno}: malformed JSON line ({exc.msg})") from None
    return out


def read_json(path: str | os.PathLike):
    """Read one JSON document; malformed JSON raises an error naming the file and position."""
    path = Path(path)
    if not path.exists():
        raise IxmctsError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise IxmctsError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None


def code_fingerprint() -> str:
    """A hash of the library's Python sources: a checkpoint is resumed only by the same code."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def cache_dir(*parts: str) -> Path:
    """The project's cache (converted models, search checkpoints): $IXMCTS_CACHE or ~/.cache/ixmcts."""
    root = Path(os.environ.get("IXMCTS_CACHE") or Path.home() / ".cache" / "ixmcts")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
