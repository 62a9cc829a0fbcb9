"""Where the corpora come from, and the checksums they must have.

``prepare`` downloads a corpus (or takes a local folder), checks every file's SHA-256 where
it is pinned here, and parses it with the project's loader, so a truncated or altered file
fails before any training. PsyDTCorpus has no published checksums: its files are hashed on
download and the hashes recorded in ``SOURCES.json`` beside them (and on the MLflow run),
so later runs can tell if the files changed. PsyQA's full set needs the authors' agreement:
only a local path is accepted.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import IxmctsError
from ..io import atomic_open


@dataclass(frozen=True)
class CorpusFile:
    name: str
    url: str | None  # None: no public download
    sha256: str | None  # None: not published upstream


CORPORA: dict[str, tuple[CorpusFile, ...]] = {
    # persuasionforgood (Apache-2.0), data/FullData/ — the hashes of the files as published
    "p4g": (
        CorpusFile("full_dialog.csv", "https://raw.githubusercontent.com/ohyj1002/persuasionforgood/master/data/FullData/full_dialog.csv",
                   "3ecaa3e9f0577170b91c3306d2439c910150cf010b76e7637ef3bab724075a9f"),
        CorpusFile("full_info.csv", "https://raw.githubusercontent.com/ohyj1002/persuasionforgood/master/data/FullData/full_info.csv",
                   "93be6f62d41f4925e8be21534c23cd75444e1a5d5384abe13b15eda2b37838b4"),
    ),
    # ModelScope YIRONGCHEN/PsyDTCorpus ("mulit" is upstream's spelling)
    "psydt": (
        CorpusFile("PsyDTCorpus_train_mulit_turn_packing.json",
                   "https://modelscope.cn/datasets/YIRONGCHEN/PsyDTCorpus/resolve/master/PsyDTCorpus_train_mulit_turn_packing.json", None),
        CorpusFile("PsyDTCorpus_test_single_turn_split.json",
                   "https://modelscope.cn/datasets/YIRONGCHEN/PsyDTCorpus/resolve/master/PsyDTCorpus_test_single_turn_split.json", None),
    ),
    "psyqa": (CorpusFile("PsyQA_full.json", None, None),),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, timeout: float = 120.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_open(dest, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, TimeoutError) as exc:
        raise IxmctsError(f"{url}: download failed ({getattr(exc, 'reason', exc)})") from None


def prepare_corpus(name: str, output_dir: str | Path, path: str | Path = "", mirror: str = "") -> dict:
    """Verify a corpus in ``path`` (a local folder) or download it into ``output_dir`` (from
    upstream, or from ``mirror``: a URL prefix holding the same file names). Returns the
    folder and each file's hash; raises on a missing file, a checksum mismatch or a file
    the loader cannot parse."""
    if name not in CORPORA:
        raise IxmctsError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}")
    files = CORPORA[name]
    folder = Path(path) if path else Path(output_dir) / name
    if not path:
        for f in files:
            url = f"{mirror.rstrip('/')}/{f.name}" if mirror else f.url
            if url is None:
                raise IxmctsError(f"{name} has no public download (the authors' agreement is needed): pass path=<folder with {f.name}>")
            if not (folder / f.name).exists():
                _download(url, folder / f.name)
    hashes = {}
    for f in files:
        local = folder / f.name
        if not local.is_file():
            raise IxmctsError(f"{local}: missing (a {name} folder holds {', '.join(x.name for x in files)})")
        hashes[f.name] = sha256_of(local)
        if f.sha256 and hashes[f.name] != f.sha256:
            if not path:
                local.unlink()  # a bad download is not kept: the next run fetches it again
            raise IxmctsError(f"{local}: SHA-256 {hashes[f.name][:12]}… is not the published {f.sha256[:12]}… "
                              "(a truncated or altered file)")
    counts = _parse(name, folder, files)
    if not path:
        with atomic_open(folder / "SOURCES.json") as out:
            json.dump({"corpus": name, "sha256": hashes, "counts": counts}, out, indent=2)
    return {"folder": str(folder.resolve()), "sha256": hashes, "counts": counts}


def _parse(name: str, folder: Path, files: tuple[CorpusFile, ...]) -> dict:
    """Load every file with the project's loader (a format error fails here)."""
    if name == "p4g":
        from .p4g import load_p4g

        dialogues = load_p4g(folder)
        return {"dialogues": len(dialogues)}
    if name == "psydt":
        from .esc import load_psydt

        return {f.name: len(load_psydt(folder / f.name)) for f in files}
    from .esc import load_psyqa

    return {"questions": len(load_psyqa(folder / files[0].name))}
