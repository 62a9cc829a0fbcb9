"""Persuasion for Good (Wang et al. 2019): ``full_dialog.csv`` + ``full_info.csv``.

``full_dialog.csv`` has one row per sentence (``Unit``, ``Turn``, ``B4`` role 0=persuader
1=persuadee, ``B2`` dialogue id); consecutive rows of one speaker form one utterance.
``full_info.csv`` has one row per participant with ``B6`` (actual donation) and the
persona attributes that become the persuadee's description.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

from ..errors import IxmctsError
from .schema import MODEL, USER, Condition, Dialogue, Turn

DIALOG_COLUMNS = ["Unit", "Turn", "B4", "B2"]
BIG_FIVE = {"extrovert.x": "extroversion", "agreeable.x": "agreeableness", "conscientious.x": "conscientiousness",
            "neurotic.x": "neuroticism", "open.x": "openness"}
MORAL = {"care.x": "care", "fairness.x": "fairness", "loyalty.x": "loyalty", "authority.x": "authority",
         "purity.x": "purity", "freedom.x": "freedom"}
VALUES = {"conform.x": "conformity", "tradition.x": "tradition", "benevolence.x": "benevolence",
          "universalism.x": "universalism", "self_direction.x": "self-direction", "stimulation.x": "stimulation",
          "hedonism.x": "hedonism", "achievement.x": "achievement", "power.x": "power", "security.x": "security"}
DECISION = {"rational.x": "rational", "intuitive.x": "intuitive"}
DEMOGRAPHICS = ["age.x", "sex.x", "race.x", "edu.x", "marital.x", "employment.x", "income.x", "religion.x", "ideology.x"]
NUMERIC_SCALES = {**{k: 5 for k in BIG_FIVE}, **{k: 6 for k in MORAL}, **{k: 6 for k in VALUES}, **{k: 5 for k in DECISION}}
PERSONA_COLUMNS = [*BIG_FIVE, *MORAL, *VALUES, *DECISION, *DEMOGRAPHICS]
INFO_COLUMNS = ["B2", "B3", "B4", "B6", "B7", *PERSONA_COLUMNS]
MAX_DONATION = 2.0
DIALOG_CSV, INFO_CSV = "full_dialog.csv", "full_info.csv"  # the corpus's file names


def _read_csv(path: Path, required: list[str]) -> list[tuple[int, dict]]:
    """``(line, row)`` pairs. A row that does not parse (a field count unlike the header's,
    an unclosed quote: a file cut off or damaged) is an error naming the file and line."""
    if not path.exists():
        raise IxmctsError(f"{path}: file not found (expected the Persuasion for Good CSV)")
    rows, line = [], 1
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, [])
            missing = [c for c in required if c not in header]
            if missing:
                raise IxmctsError(f"{path}: missing column(s) {', '.join(missing)}")
            for fields in reader:
                if fields and len(fields) != len(header):
                    raise IxmctsError(f"{path}: line {line + 1}: {len(fields)} fields, the header has {len(header)} "
                                      "(a damaged or cut-off file?)")
                if fields:
                    rows.append((line + 1, dict(zip(header, fields))))
                line = reader.line_num
    except UnicodeDecodeError as exc:
        raise IxmctsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise IxmctsError(f"{path}: line {line + 1}: {exc} (a damaged or cut-off file?)") from None
    return rows


def _float(value: str, path: Path, line: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise IxmctsError(f"{path}: line {line}: column {column} is not a number ({value!r})") from None


def read_info(data_dir: str | Path, info_csv: str = INFO_CSV) -> list[dict]:
    """Participant rows of ``full_info.csv`` with numbers parsed (empty cells → None)."""
    path = Path(data_dir) / info_csv
    out = []
    for i, row in _read_csv(path, INFO_COLUMNS):
        rec = {"dialogue_id": row["B2"], "user_id": row["B3"], "role": int(_float(row["B4"], path, i, "B4")),
               "donation": _float(row["B6"], path, i, "B6") if row["B6"].strip() else None}
        for col in PERSONA_COLUMNS:
            v = row[col].strip()
            if col in NUMERIC_SCALES or col in ("age.x", "income.x"):
                rec[col] = _float(v, path, i, col) if v else None
            else:
                rec[col] = v or None
        out.append(rec)
    return out


def load_p4g(data_dir: str | Path, dialog_csv: str = DIALOG_CSV, info_csv: str = INFO_CSV) -> list[Dialogue]:
    """All dialogues, with the persuadee's persona as the condition and ``meta.donation``
    (``B6``, the actual donation, clipped to the task's $0–$2)."""
    data_dir = Path(data_dir)
    dpath = data_dir / dialog_csv
    persuadees = {r["dialogue_id"]: r for r in read_info(data_dir, info_csv) if r["role"] == 1}
    by_dialogue: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)
    for i, row in _read_csv(dpath, DIALOG_COLUMNS):
        turn = int(_float(row["Turn"], dpath, i, "Turn"))
        role = int(_float(row["B4"], dpath, i, "B4"))
        if role not in (0, 1):
            raise IxmctsError(f"{dpath}: row {i}: B4 must be 0 (persuader) or 1 (persuadee), got {row['B4']!r}")
        by_dialogue[row["B2"]].append((turn, role, i, row["Unit"] or ""))
    dialogues = []
    for did, units in by_dialogue.items():
        turns: list[Turn] = []
        for turn, role, _, text in sorted(units, key=lambda u: (u[0], u[1], u[2])):
            speaker = MODEL if role == 0 else USER
            text = text.strip()
            if not text:
                continue
            if turns and turns[-1].role == speaker:
                turns[-1].text += " " + text
            else:
                turns.append(Turn(speaker, text))
        if not turns:
            raise IxmctsError(f"{dpath}: dialogue {did}: empty dialogue (no non-empty Unit)")
        info = persuadees.get(did)
        if info is None:  # every corpus dialogue has its persuadee's row; a cut-off id would invent a dialogue
            first = min(u[2] for u in units)
            raise IxmctsError(f"{dpath}: line {first}: dialogue {did!r} has no persuadee row (B4 = 1) in {info_csv} "
                              "(a damaged or cut-off file?)")
        attributes = {k: info[k] for k in PERSONA_COLUMNS}
        donation = info["donation"]
        meta = {"donation": None if donation is None else min(max(donation, 0.0), MAX_DONATION), "donation_raw": donation}
        condition = Condition(id=did, scenario="p4g", description=render_persona(attributes), attributes=attributes)
        dialogues.append(Dialogue(id=did, scenario="p4g", condition=condition, turns=turns, meta=meta))
    if not dialogues:
        raise IxmctsError(f"{dpath}: no dialogues")
    return dialogues


def _level(value: float, scale: int) -> str:
    share = (value - 1) / (scale - 1)
    return "low" if share < 0.4 else "high" if share >= 0.7 else "moderate"


def render_persona(a: dict) -> str:
    """A persuadee persona as second-person natural language (the simulator's condition)."""
    if not a:
        return "You are an adult taking part in an online study."
    who = []
    if a.get("age.x"):
        who.append(f"{int(a['age.x'])}-year-old")
    sex = {"Male": "man", "Female": "woman"}.get(a.get("sex.x") or "", "person")
    parts = [f"You are a {' '.join(who + [sex])}"]
    facts = []
    if a.get("race.x"):
        facts.append(f"race: {a['race.x'].lower()}")
    if a.get("edu.x"):
        facts.append(f"education: {a['edu.x'].lower()}")
    if a.get("marital.x"):
        facts.append(a["marital.x"].lower())
    if a.get("employment.x"):
        facts.append(a["employment.x"].lower())
    if a.get("income.x"):
        facts.append(f"household income level {int(a['income.x'])} of 12")
    if a.get("religion.x"):
        facts.append(f"religion: {a['religion.x'].lower()}")
    if a.get("ideology.x"):
        facts.append(f"politically {a['ideology.x'].lower()}")
    text = parts[0] + (" (" + "; ".join(facts) + ")." if facts else ".")
    for title, group in (("Personality", BIG_FIVE), ("Moral foundations", MORAL), ("Values", VALUES), ("Decision style", DECISION)):
        items = [f"{name} {_level(a[col], NUMERIC_SCALES[col])} ({a[col]:.1f}/{NUMERIC_SCALES[col]})"
                 for col, name in group.items() if a.get(col) is not None]
        if items:
            text += f" {title}: " + ", ".join(items) + "."
    return text


def synthesize_personas(info_rows: list[dict], count: int = 700, seed: int = 0) -> list[Condition]:
    """Sample ``count`` persuadee profiles, each attribute drawn from the corpus persuadees'
    empirical distribution (the paper synthesized ~700), rendered as descriptions."""
    if count <= 0:
        raise IxmctsError(f"persona count must be positive, got {count}")
    persuadees = [r for r in info_rows if r["role"] == 1]
    if not persuadees:
        raise IxmctsError("full_info.csv has no persuadee rows (B4 = 1) to synthesize personas from")
    pools = {col: [r[col] for r in persuadees if r.get(col) is not None] for col in PERSONA_COLUMNS}
    rng = random.Random(seed)
    out = []
    for k in range(count):
        attrs = {col: rng.choice(pool) for col, pool in pools.items() if pool}
        out.append(Condition(id=f"p4g-persona-{seed}-{k:04d}", scenario="p4g", description=render_persona(attrs), attributes=attrs))
    return out
