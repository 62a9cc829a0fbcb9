"""Accuracy of the P4G donation parser on real persuadee utterances.

    python scripts/donation_accuracy.py --data-dir ../shared/data/p4g
    python scripts/donation_accuracy.py --data-dir ../shared/data/p4g --show-misses dev

The labels table ``tests/data/p4g_donation_labels.csv`` holds, for 320 persuadee utterances
of the Persuasion for Good corpus, where the utterance is (``dialogue_id``, ``turn_index``:
its position in ``ixmcts.data.p4g.load_p4g``'s ``Dialogue.turns``), a digest of its text
(``text_sha1``, first 10 hex digits, so a changed loader cannot silently shift the labels),
the expected parse and the split. The corpus text itself stays in the corpus folder.

``expected`` is what a reader takes the speaker to decide to give *now*, in dollars clipped to
the task's $0–$2 (a refusal is 0), or ``none`` when the utterance states no such decision
(past or habitual giving, questions, "tell me more", giving later). The utterances are a
deterministic sample (by a hash of dialogue id and turn) of persuadee turns that mention an
amount and a giving verb (220), an amount only (60) or a giving verb only (40). ``split`` is
``heldout`` when int(sha1(dialogue_id)) % 5 < 2, else ``dev``; the parser was tuned on ``dev``
only. A parse counts as right when both are ``none`` or both are amounts within $0.005.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from ixmcts.data.p4g import load_p4g
from ixmcts.data.schema import USER
from ixmcts.errors import IxmctsError
from ixmcts.scenarios.donation import parse_donation

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "p4g_donation_labels.csv"
SPLITS = ("dev", "heldout")
TOLERANCE = 0.005


@dataclass
class Labelled:
    dialogue_id: str
    turn_index: int
    text: str
    expected: float | None
    split: str

    def parsed(self) -> float | None:
        return parse_donation(self.text)

    def correct(self) -> bool:
        got = self.parsed()
        if got is None or self.expected is None:
            return got is None and self.expected is None
        return abs(got - self.expected) <= TOLERANCE


def text_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def read_labelled(data_dir: str | Path, labels: str | Path = LABELS) -> list[Labelled]:
    """The labelled utterances, their text read from the corpus in ``data_dir``."""
    dialogues = {d.id: d for d in load_p4g(data_dir)}
    with open(labels, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for n, row in enumerate(rows, 2):
        where = f"{labels}: row {n}"
        dialogue = dialogues.get(row["dialogue_id"])
        if dialogue is None:
            raise IxmctsError(f"{where}: dialogue {row['dialogue_id']!r} is not in {data_dir}")
        i = int(row["turn_index"])
        if not 0 <= i < len(dialogue.turns) or dialogue.turns[i].role != USER:
            raise IxmctsError(f"{where}: turn {i} of {dialogue.id} is not a persuadee utterance")
        text = dialogue.turns[i].text
        if text_digest(text) != row["text_sha1"]:
            raise IxmctsError(f"{where}: the text of turn {i} of {dialogue.id} is not the one labelled (digest differs)")
        if row["split"] not in SPLITS:
            raise IxmctsError(f"{where}: split must be one of {', '.join(SPLITS)}, got {row['split']!r}")
        expected = None if row["expected"] == "none" else float(row["expected"])
        out.append(Labelled(dialogue.id, i, text, expected, row["split"]))
    return out


def summary(items: list[Labelled]) -> str:
    right = sum(x.correct() for x in items)
    decided = [x for x in items if x.expected is not None]
    undecided = [x for x in items if x.expected is None]
    return (f"{right}/{len(items)} = {right / len(items):.1%} right; "
            f"with a decision {sum(x.correct() for x in decided)}/{len(decided)}, "
            f"without {sum(x.correct() for x in undecided)}/{len(undecided)}")


def describe_miss(x: Labelled) -> str:
    expected = "none" if x.expected is None else f"{x.expected:.2f}"
    got = "none" if x.parsed() is None else f"{x.parsed():.2f}"
    return f"{x.dialogue_id} turn {x.turn_index}: expected {expected}, parsed {got}: {x.text!r}"


@click.command()
@click.option("--data-dir", default="../shared/data/p4g", show_default=True,
              help="Persuasion for Good corpus folder (full_dialog.csv, full_info.csv)")
@click.option("--labels", default=str(LABELS), show_default=True, help="the labels table")
@click.option("--show-misses", type=click.Choice(SPLITS), default=None, help="also list the misses of this split")
def main(data_dir, labels, show_misses):
    """Print the parser's accuracy on the dev and held-out parts of the labelled utterances."""
    try:
        items = read_labelled(data_dir, labels)
    except IxmctsError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    for split in SPLITS:
        click.echo(f"{split}: {summary([x for x in items if x.split == split])}")
    if show_misses:
        for x in items:
            if x.split == show_misses and not x.correct():
                click.echo("  miss " + describe_miss(x))


if __name__ == "__main__":
    main()
