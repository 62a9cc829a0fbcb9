"""Small file helpers: every output is written to a temporary file and renamed,
so an interrupted or failed run never leaves a half-written file behind."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
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
    return [rec for _, rec in read_jsonl_lines(path)]


def read_jsonl_lines(path: str | os.PathLike) -> list[tuple[int, object]]:
    """``(line number, value)`` for each non-blank line (gzip when the name ends in .gz); a
    malformed line, text that is not UTF-8 or a damaged gzip file is an error naming the file."""
    path = Path(path)
    if not path.exists():
        raise IxmctsError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    lineno = 0
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    out.append((lineno, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise IxmctsError(f"{path}:{lineno}: malformed JSON line ({exc.msg})") from None
    except UnicodeDecodeError:
        raise IxmctsError(f"{path}: not UTF-8 text (line {lineno + 1})") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise IxmctsError(f"{path}: damaged gzip file ({exc})") from None
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
    except UnicodeDecodeError as exc:
        raise IxmctsError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def code_fingerprint() -> str:
    """A hash of the library's Python sources: a checkpoint is resumed only by the same code."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """The project's cache (converted models, search checkpoints): $IXMCTS_CACHE or ~/.cache/ixmcts."""
    return Path(os.environ.get("IXMCTS_CACHE") or Path.home() / ".cache" / "ixmcts")


def cache_dir(*parts: str, create: bool = True) -> Path:
    """A folder in the cache, created unless ``create`` is false (then only checked writable)."""
    root = cache_root()
    path = root.joinpath(*parts)
    require_writable(path, "the cache, $IXMCTS_CACHE")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def require_writable(path: str | os.PathLike, what: str) -> None:
    """Check before any work that ``path`` (a file or a folder, existing or not) can be
    written: the folder it is in (or the nearest one that exists) and an existing folder
    itself get a probe file, removed at once; an existing file is opened for writing
    without changing it. Creates nothing. Not writable: an error naming the path."""
    path = Path(path).absolute()
    folders = [path] if path.is_dir() else []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    folders.append(parent)
    try:
        if path.is_file():
            with open(path, "r+b"):
                pass
        for folder in folders:
            if not folder.is_dir():
                raise IxmctsError(f"{path} ({what}): {folder} is not a folder")
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as exc:
        raise IxmctsError(f"{path} ({what}): {exc.filename or path} is not writable ({exc.strerror})") from None


def check_output_folder(path: str | os.PathLike, outputs: set[str]) -> None:
    """Before any work: a folder that ``atomic_folder`` will replace as a whole may hold only
    ``outputs`` (a previous run's), and it and its parent must be writable."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise IxmctsError(f"{path}: the output folder is a file")
        others = sorted(p.name for p in path.iterdir() if p.name not in outputs)
        if others:
            raise IxmctsError(f"{path}: the output folder holds files that are not a run's outputs "
                              f"({', '.join(others[:5])}); choose a new or empty folder")
    require_writable(path, "output folder")
    require_writable(path.parent, "output folder")


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder beside ``path``; on success it replaces ``path`` as a whole,
    so a reader finds the previous outputs or the new ones, never a mix. On failure the
    staging folder is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.incomplete-", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp creates 0700
        if not path.exists():
            os.rename(staging, path)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old)  # a folder may replace an empty one
        try:
            os.rename(staging, path)
        except BaseException:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
