"""The human-evaluation database: SQLite in WAL mode, one connection per request.

It records raters, rating sessions (which arm — and so which tracked model run — sat behind
the blind "Model A" and "Model B"), every chat turn, the ratings, the preference pairs shown
to annotators and their labels. Writes take the database lock up front (``BEGIN IMMEDIATE``)
and wait for it (``busy_timeout``), so raters submitting at once queue instead of losing a
rating. A chat message reserves its exchange (counted against the limit) before the model
is asked, so concurrent messages cannot pass the limit and a refused one costs no generation.
``export`` writes the CSV files ``ixmcts human-eval report`` reads.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import IxmctsError
from ..io import atomic_open

SLOTS = ("A", "B")
LABELS = ("a1", "a2", "tie")

SCHEMA = """
CREATE TABLE IF NOT EXISTS arms (
    name TEXT PRIMARY KEY,        -- e.g. SFT, Aligned: the model column of ratings.csv
    run_id TEXT NOT NULL,         -- the tracked model run (or a local model path)
    model TEXT NOT NULL           -- base model and adapters, for the record
);
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('rater', 'annotator')),
    token TEXT NOT NULL UNIQUE,   -- the annotator's URL key
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,          -- an unguessable token: the rater's URL key
    rater_id INTEGER NOT NULL REFERENCES raters(id),
    problem_id TEXT NOT NULL,
    problem TEXT NOT NULL,
    arm_a TEXT NOT NULL REFERENCES arms(name),   -- never shown on a page
    arm_b TEXT NOT NULL REFERENCES arms(name),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    slot TEXT NOT NULL CHECK (slot IN ('A', 'B')),
    idx INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'model')),
    text TEXT NOT NULL,
    raw TEXT NOT NULL DEFAULT '',  -- the model's full output (ESC: with its chain of thought)
    created REAL NOT NULL,
    UNIQUE (session_id, slot, idx)
);
CREATE TABLE IF NOT EXISTS reservations (
    session_id TEXT NOT NULL REFERENCES sessions(id),  -- an exchange being generated: it counts
    slot TEXT NOT NULL,                                -- against max_exchanges before it is stored
    idx INTEGER NOT NULL,                              -- the rater's turn; the model's is idx + 1
    created REAL NOT NULL,
    PRIMARY KEY (session_id, slot, idx)
);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    slot TEXT NOT NULL,
    arm TEXT NOT NULL,
    run_id TEXT NOT NULL,
    supportiveness INTEGER NOT NULL CHECK (supportiveness BETWEEN 1 AND 10),
    willingness INTEGER NOT NULL CHECK (willingness BETWEEN 1 AND 10),
    strengths TEXT NOT NULL DEFAULT '',
    weaknesses TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    UNIQUE (session_id, slot)
);
CREATE TABLE IF NOT EXISTS pairs (
    id TEXT PRIMARY KEY,          -- a digest of context, chosen and rejected
    context TEXT NOT NULL,        -- JSON chat messages
    a1 TEXT NOT NULL,             -- the two responses in a fixed, random order
    a2 TEXT NOT NULL,
    imcts_label TEXT NOT NULL CHECK (imcts_label IN ('a1', 'a2', 'tie')),  -- the search's ranking
    source TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY,
    pair_id TEXT NOT NULL REFERENCES pairs(id),
    annotator_id INTEGER NOT NULL REFERENCES raters(id),
    label TEXT NOT NULL CHECK (label IN ('a1', 'a2', 'tie')),
    created REAL NOT NULL,
    UNIQUE (pair_id, annotator_id)
);
"""


class Conflict(IxmctsError):
    """A submission the study's state does not allow: a second rating or label, a message past
    the chat's limit or after the rating, a rating before both chats."""


def new_token() -> str:
    """An unguessable URL key that never starts with '-' (a spreadsheet reads that as a formula)."""
    while (token := secrets.token_urlsafe(16))[0] == "-":
        pass
    return token


def pair_id(pair: dict) -> str:
    key = json.dumps([pair["context"], pair["chosen"], pair["rejected"]], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA foreign_keys=ON")
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def write(self):
        """A write transaction holding the lock from its start (no lost updates, no upgrade deadlock)."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # study set-up --------------------------------------------------------------------
    def set_arms(self, arms: list[tuple[str, str, str]]) -> None:
        """``(name, run_id, model)`` per arm; a database keeps the arms it was created with."""
        with self.write() as db:
            old = {r["name"]: (r["run_id"], r["model"]) for r in db.execute("SELECT * FROM arms")}
            new = {name: (run_id, model) for name, run_id, model in arms}
            if old and old != new:
                raise IxmctsError(f"{self.path}: this database rated other models ({', '.join(f'{k}={v[0]}' for k, v in old.items())}); "
                                  "use a new database for a new comparison")
            db.executemany("INSERT OR IGNORE INTO arms VALUES (?, ?, ?)", arms)

    def add_pairs(self, pairs: list[dict], seed: int = 0, source: str = "") -> int:
        """Store preference pairs with their responses in a fixed random order per pair (every
        annotator sees the same a1/a2); the i×MCTS label names the higher-valued one."""
        rows = []
        for p in pairs:
            pid = pair_id(p)
            chosen_first = hashlib.sha256(f"{seed}:{pid}".encode()).digest()[0] % 2 == 0
            a1, a2 = (p["chosen"], p["rejected"]) if chosen_first else (p["rejected"], p["chosen"])
            label = "tie" if p["chosen_value"] == p["rejected_value"] else ("a1" if chosen_first else "a2")
            rows.append((pid, json.dumps(p["context"], ensure_ascii=False), a1, a2, label, source))
        with self.write() as db:
            db.executemany("INSERT OR IGNORE INTO pairs VALUES (?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    # raters and sessions -------------------------------------------------------------
    def add_rater(self, name: str, kind: str) -> tuple[int, str]:
        token = new_token()
        with self.write() as db:
            cur = db.execute("INSERT INTO raters (name, kind, token, created) VALUES (?, ?, ?, ?)",
                             (name, kind, token, time.time()))
            return cur.lastrowid, token

    def annotator(self, token: str) -> sqlite3.Row | None:
        with self.connect() as db:
            return db.execute("SELECT * FROM raters WHERE token = ? AND kind = 'annotator'", (token,)).fetchone()

    def start_session(self, rater_id: int, problems: list[tuple[str, str]], arms: list[str]) -> str:
        """A new session on the least-used problem, with the arms in random order behind A and B."""
        token = new_token()
        order = list(arms)
        if secrets.randbelow(2):
            order.reverse()
        with self.write() as db:
            used = dict(db.execute("SELECT problem_id, COUNT(*) FROM sessions GROUP BY problem_id").fetchall())
            pid, text = min(problems, key=lambda p: used.get(p[0], 0))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)", (token, rater_id, pid, text, *order, time.time()))
        return token

    def session(self, token: str) -> sqlite3.Row | None:
        """The session with its rater's name (``rater``)."""
        with self.connect() as db:
            return db.execute("SELECT s.*, r.name AS rater FROM sessions s JOIN raters r ON r.id = s.rater_id "
                              "WHERE s.id = ?", (token,)).fetchone()

    def turns(self, session_id: str, slot: str) -> list[sqlite3.Row]:
        with self.connect() as db:
            return db.execute("SELECT * FROM turns WHERE session_id = ? AND slot = ? ORDER BY idx",
                              (session_id, slot)).fetchall()

    def reserve_exchange(self, session_id: str, slot: str, max_exchanges: int) -> int:
        """Hold the chat's next exchange before the model is asked: refused (``Conflict``) once the
        session is rated or the stored and held exchanges reach ``max_exchanges``. Returns the
        rater's turn index; ``fill_exchange`` stores it, ``release_exchange`` gives it back."""
        with self.write() as db:
            if db.execute("SELECT 1 FROM ratings WHERE session_id = ?", (session_id,)).fetchone():
                raise Conflict("this session has been rated; its chats are closed")
            stored, last = db.execute("SELECT COUNT(*), MAX(idx) FROM turns WHERE session_id = ? AND slot = ? AND role = 'user'",
                                      (session_id, slot)).fetchone()
            held, last_held = db.execute("SELECT COUNT(*), MAX(idx) FROM reservations WHERE session_id = ? AND slot = ?",
                                         (session_id, slot)).fetchone()
            if stored + held >= max_exchanges:
                raise Conflict(f"this chat has reached its {max_exchanges} messages")
            idx = max(-2 if last is None else last, -2 if last_held is None else last_held) + 2
            db.execute("INSERT INTO reservations VALUES (?, ?, ?, ?)", (session_id, slot, idx, time.time()))
        return idx

    def fill_exchange(self, session_id: str, slot: str, idx: int, user_text: str, model_text: str, raw: str) -> None:
        """The rater's message and the model's answer, stored together in the held exchange."""
        with self.write() as db:
            db.execute("DELETE FROM reservations WHERE session_id = ? AND slot = ? AND idx = ?", (session_id, slot, idx))
            now = time.time()
            db.executemany("INSERT INTO turns (session_id, slot, idx, role, text, raw, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(session_id, slot, idx, "user", user_text, "", now),
                            (session_id, slot, idx + 1, "model", model_text, raw, now)])

    def release_exchange(self, session_id: str, slot: str, idx: int) -> None:
        """A failed generation stores nothing and gives its exchange back."""
        with self.write() as db:
            db.execute("DELETE FROM reservations WHERE session_id = ? AND slot = ? AND idx = ?", (session_id, slot, idx))

    def clear_reservations(self) -> None:
        """At server start: exchanges held by a server that stopped mid-generation are free again."""
        with self.write() as db:
            db.execute("DELETE FROM reservations")

    def rate(self, session_id: str, ratings: dict[str, dict]) -> None:
        """``ratings[slot] = {supportiveness, willingness, strengths, weaknesses}`` for both slots."""
        with self.write() as db:
            s = db.execute("SELECT arm_a, arm_b FROM sessions WHERE id = ?", (session_id,)).fetchone()
            runs = dict(db.execute("SELECT name, run_id FROM arms").fetchall())
            if db.execute("SELECT 1 FROM ratings WHERE session_id = ?", (session_id,)).fetchone():
                raise Conflict("this session has already been rated")
            chatted = {r[0] for r in db.execute("SELECT DISTINCT slot FROM turns WHERE session_id = ?", (session_id,))}
            if missing := [slot for slot in SLOTS if slot not in chatted]:
                raise Conflict(f"chat with Model {' and '.join(missing)} first")
            now = time.time()
            for slot, arm in zip(SLOTS, (s["arm_a"], s["arm_b"])):
                r = ratings[slot]
                db.execute("INSERT INTO ratings (session_id, slot, arm, run_id, supportiveness, willingness, strengths, "
                           "weaknesses, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (session_id, slot, arm, runs[arm], r["supportiveness"], r["willingness"],
                            r.get("strengths", ""), r.get("weaknesses", ""), now))

    def rated(self, session_id: str) -> bool:
        with self.connect() as db:
            return db.execute("SELECT 1 FROM ratings WHERE session_id = ?", (session_id,)).fetchone() is not None

    # annotation ----------------------------------------------------------------------
    def next_pair(self, annotator_id: int) -> sqlite3.Row | None:
        """A pair this annotator has not labelled, preferring pairs with the fewest labels so
        far (so pairs collect the several labels kappa needs before new pairs are opened)."""
        with self.connect() as db:
            return db.execute(
                "SELECT p.*, COUNT(a.id) AS n FROM pairs p LEFT JOIN annotations a ON a.pair_id = p.id "
                "WHERE p.id NOT IN (SELECT pair_id FROM annotations WHERE annotator_id = ?) "
                "GROUP BY p.id ORDER BY n DESC, p.id LIMIT 1", (annotator_id,)).fetchone()

    def pair(self, pid: str) -> sqlite3.Row | None:
        with self.connect() as db:
            return db.execute("SELECT * FROM pairs WHERE id = ?", (pid,)).fetchone()

    def annotate(self, pid: str, annotator_id: int, label: str) -> None:
        if label not in LABELS:
            raise IxmctsError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        try:
            with self.write() as db:
                db.execute("INSERT INTO annotations (pair_id, annotator_id, label, created) VALUES (?, ?, ?, ?)",
                           (pid, annotator_id, label, time.time()))
        except sqlite3.IntegrityError:
            raise Conflict("this pair has already been labelled by this annotator") from None

    def counts(self) -> dict[str, int]:
        with self.connect() as db:
            return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608 (fixed names)
                    for t in ("sessions", "turns", "ratings", "pairs", "annotations")}

    # export ----------------------------------------------------------------------------
    def export(self, output_dir: str | Path) -> dict[str, Path]:
        """ratings.csv, annotations.csv (with the i×MCTS label of every annotated pair as the
        annotator ``imcts``) and conversations.jsonl; each written whole or not at all."""
        out = Path(output_dir)
        with self.connect() as db:
            ratings = db.execute(
                "SELECT r.session_id, s.rater_id, r.arm AS model, r.run_id, r.slot, s.problem_id, r.supportiveness, "
                "r.willingness, r.strengths, r.weaknesses, r.created FROM ratings r JOIN sessions s ON s.id = r.session_id "
                "ORDER BY r.id").fetchall()
            labels = db.execute(
                "SELECT a.pair_id, 'annotator-' || a.annotator_id AS annotator, a.label FROM annotations a ORDER BY a.id").fetchall()
            imcts = db.execute(
                "SELECT id AS pair_id, 'imcts' AS annotator, imcts_label AS label FROM pairs "
                "WHERE id IN (SELECT pair_id FROM annotations) ORDER BY id").fetchall()
            sessions = db.execute("SELECT * FROM sessions ORDER BY created").fetchall()
            turns = db.execute("SELECT session_id, slot, idx, role, text, raw FROM turns ORDER BY session_id, slot, idx").fetchall()
        files = {"ratings": out / "ratings.csv", "annotations": out / "annotations.csv",
                 "conversations": out / "conversations.jsonl"}
        _write_csv(files["ratings"], ["session_id", "rater_id", "model", "run_id", "slot", "problem_id", "supportiveness",
                                      "willingness", "strengths", "weaknesses", "created"], ratings)
        _write_csv(files["annotations"], ["pair_id", "annotator", "label"], [*labels, *imcts])
        by_session: dict[str, dict] = {s["id"]: {"session_id": s["id"], "rater_id": s["rater_id"], "problem_id": s["problem_id"],
                                                 "problem": s["problem"], "A": {"model": s["arm_a"], "turns": []},
                                                 "B": {"model": s["arm_b"], "turns": []}} for s in sessions}
        for t in turns:
            by_session[t["session_id"]][t["slot"]]["turns"].append({"role": t["role"], "text": t["text"], "raw": t["raw"]})
        with atomic_open(files["conversations"]) as f:
            for rec in by_session.values():
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return files


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's CSV-injection list


def spreadsheet_safe(value):
    """A text cell a spreadsheet would run as a formula, prefixed with ' so it shows as text."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _write_csv(path: Path, header: list[str], rows) -> None:
    """CSV for spreadsheets: text cells are neutralised (the database and JSONL keep them raw)."""
    with atomic_open(path) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([tuple(spreadsheet_safe(v) for v in r) for r in rows])
