"""Resolve a scenario's user conditions and dialogues from a named source or a path."""

from __future__ import annotations

from pathlib import Path

from ..errors import IxmctsError
from ..io import read_jsonl, read_jsonl_lines
from . import samples
from .esc import load_psydt, load_psyqa
from .p4g import load_p4g, read_info, synthesize_personas
from .schema import Condition, Dialogue

CONDITION_SOURCES = {
    "p4g": "sample | synth (personas sampled from the corpus at data_dir) | corpus (the real persuadees) | PATH.jsonl",
    "esc": "sample | PATH.json (PsyQA) | PATH.jsonl (normalized conditions)",
}


def _check(scenario: str) -> None:
    if scenario not in CONDITION_SOURCES:
        raise IxmctsError(f"unknown scenario {scenario!r}; choose one of: {', '.join(CONDITION_SOURCES)}")


def load_conditions(scenario: str, source: str = "sample", count: int | None = None, *,
                    data_dir: str | None = None, seed: int = 0) -> list[Condition]:
    """The first ``count`` user conditions from ``source`` (see ``CONDITION_SOURCES``)."""
    _check(scenario)
    if count is not None and count <= 0:
        raise IxmctsError(f"conditions count must be positive, got {count}")
    p4g_dir, files = (data_dir, {}) if data_dir else (samples.P4G_DIR, samples.P4G_FILES)
    if source == "sample":
        conditions = [Condition.from_dict(d) for d in read_jsonl(samples.P4G_CONDITIONS)] if scenario == "p4g" else load_psyqa(samples.PSYQA)
    elif scenario == "p4g" and source == "synth":
        conditions = synthesize_personas(read_info(p4g_dir, files.get("info_csv", "full_info.csv")), count=count or 700, seed=seed)
    elif scenario == "p4g" and source == "corpus":
        conditions = [d.condition for d in load_p4g(p4g_dir, **files)]
    elif source.endswith(".jsonl"):
        return _checked(source, scenario, count, _conditions_jsonl(source, scenario))
    elif scenario == "esc" and source.endswith(".json"):
        conditions = load_psyqa(source)
    else:
        raise IxmctsError(f"unknown {scenario} conditions source {source!r}; use {CONDITION_SOURCES[scenario]}")
    return _checked(source, scenario, count, [(f"record {i}", c) for i, c in enumerate(conditions)])


def _conditions_jsonl(source: str, scenario: str) -> list[tuple[str, Condition]]:
    out = []
    for lineno, rec in read_jsonl_lines(source):
        where = f"line {lineno}"
        if not isinstance(rec, dict):
            raise IxmctsError(f"{source}: {where}: not a JSON object (got {type(rec).__name__})")
        missing = [k for k in ("id", "description") if k not in rec]
        if missing:
            raise IxmctsError(f"{source}: {where}: missing field(s) {', '.join(missing)}")
        attributes = rec.get("attributes", {})
        if not isinstance(attributes, dict):
            raise IxmctsError(f"{source}: {where}: attributes must be a JSON object, got {type(attributes).__name__}")
        out.append((where, Condition(id=str(rec["id"]), scenario=scenario, description=rec["description"],
                                     attributes=attributes)))
    return out


def _checked(source: str, scenario: str, count: int | None, located: list[tuple[str, Condition]]) -> list[Condition]:
    """Every condition has a text description and an id of its own (a tree is named by it)."""
    if not located:
        raise IxmctsError(f"{source}: no user conditions")
    seen: set[str] = set()
    for where, c in located:
        if not isinstance(c.description, str) or not c.description.strip():
            raise IxmctsError(f"{source}: {where}: description must be non-empty text, got {c.description!r}"[:300])
        if c.id in seen:
            raise IxmctsError(f"{source}: {where}: duplicate condition id {c.id!r}")
        seen.add(c.id)
    conditions = [c for _, c in located]
    bad = [c.id for c in conditions if c.scenario != scenario]
    if bad:
        raise IxmctsError(f"{source}: conditions {bad[:3]} belong to scenario {conditions[0].scenario!r}, not {scenario!r}")
    return conditions[:count] if count else conditions


def load_dialogues(scenario: str, source: str = "sample") -> list[Dialogue]:
    """Normalized dialogues: P4G from a folder with the two CSVs, ESC from a PsyDTCorpus JSON."""
    _check(scenario)
    if scenario == "p4g":
        return load_p4g(samples.P4G_DIR, **samples.P4G_FILES) if source == "sample" else load_p4g(Path(source))
    return load_psydt(samples.PSYDT if source == "sample" else Path(source))
