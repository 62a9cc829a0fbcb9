"""Emotional-support corpora in their real formats.

PsyDTCorpus: a JSON list of ``{"id", "normalizedTag", "messages": [{"role", "content"}]}``
(``user`` = help-seeker, ``assistant`` = supporter). PsyQA: a JSON list of
``{"questionID", "question", "description", "keywords", "answers"}``; its ``description``
is the help-seeker's user condition for the search.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import IxmctsError
from ..io import read_json
from .schema import MODEL, USER, Condition, Dialogue, Turn

ROLE = {"user": USER, "assistant": MODEL}


def _records(path: Path, required: tuple[str, ...], what: str) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, list):
        raise IxmctsError(f"{path}: expected a JSON list of {what} records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        missing = [k for k in required if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise IxmctsError(f"{path}: record {i}: missing field(s) {', '.join(missing)}")
    return data


DESCRIPTION_CHARS = 300  # about a PsyQA description's length


def seeker_description(record: dict, turns: list[Turn]) -> str:
    """The user condition a PsyDT dialogue trains the simulator with. The search and the
    evaluation condition the simulator on PsyQA descriptions (§4.4: the help-seeker's
    troubles, feelings and thoughts in their own words), so training uses the same kind of
    text: the record's ``description`` when it has one, else the help-seeker's own
    utterances from the start of the dialogue, up to about a description's length."""
    if str(record.get("description") or "").strip():
        return str(record["description"]).strip()
    words: list[str] = []
    for t in turns:
        if t.role != USER:
            continue
        if words and sum(map(len, words)) + len(t.text) > DESCRIPTION_CHARS:
            break
        words.append(t.text)
    return " ".join(words)


def load_psydt(path: str | Path) -> list[Dialogue]:
    """PsyDTCorpus dialogues. The condition is a PsyQA-like description of the help-seeker
    (``seeker_description``). Help-seeker states come from a ``state`` field on user
    messages, which ``annotate`` adds (empty without it)."""
    path = Path(path)
    out = []
    for i, rec in enumerate(_records(path, ("id", "messages"), "PsyDTCorpus")):
        turns, seeker_state = [], ""
        for m in rec["messages"]:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise IxmctsError(f"{path}: record {i} (id={rec['id']}): a message lacks role/content")
            if m["role"] == "system" or not str(m["content"]).strip():
                continue
            if m["role"] not in ROLE:
                raise IxmctsError(f"{path}: record {i} (id={rec['id']}): unknown role {m['role']!r}")
            if m["role"] == "user":
                seeker_state = str(m.get("state") or "").strip()  # filled by `annotate`
            # a supporter turn's chain of thought predicts the state the help-seeker is in now
            turns.append(Turn(ROLE[m["role"]], str(m["content"]).strip(), state=seeker_state))
        if not turns:
            raise IxmctsError(f"{path}: record {i} (id={rec['id']}): empty dialogue")
        cond = Condition(id=f"psydt-{rec['id']}", scenario="esc", description=seeker_description(rec, turns),
                         attributes={"tag": rec.get("normalizedTag", "")})
        out.append(Dialogue(id=str(rec["id"]), scenario="esc", condition=cond, turns=turns))
    return out


def load_psyqa(path: str | Path) -> list[Condition]:
    """PsyQA questions as user conditions (their ``description``: troubles, feelings, thoughts)."""
    path = Path(path)
    out = []
    for i, rec in enumerate(_records(path, ("questionID", "description"), "PsyQA")):
        if not isinstance(rec["description"], str):
            raise IxmctsError(f"{path}: record {i} (questionID={rec['questionID']}): description must be text, "
                              f"got {type(rec['description']).__name__}")
        desc = rec["description"].strip()
        if not desc:
            raise IxmctsError(f"{path}: record {i} (questionID={rec['questionID']}): empty description")
        out.append(Condition(id=f"psyqa-{rec['questionID']}", scenario="esc", description=desc,
                             attributes={"question": rec.get("question", ""), "keywords": rec.get("keywords", "")}))
    return out
