"""The P4G donation parser: the decision about giving now out of the $2 task payment, in dollars
(paper §3.1: P4G engagement = donation / $2, read from the last persuadee utterance)."""

import csv
import importlib.util
import subprocess
import sys

import pytest
from conftest import P4G_REAL, ROOT

from ixmcts.scenarios import get_scenario
from ixmcts.scenarios.donation import parse_donation

LABELS = ROOT / "tests" / "data" / "p4g_donation_labels.csv"
real = pytest.mark.skipif(not (P4G_REAL / "full_dialog.csv").exists(),
                          reason=f"the Persuasion for Good corpus is not at {P4G_REAL} (set IXMCTS_P4G_DIR)")

CASES = [
    ("$0.50", 0.5),
    ("I'll donate $0.50.", 0.5),
    ("I will give 50 cents.", 0.5),
    ("fifty cents is fine with me", 0.5),
    ("I'll donate a dollar.", 1.0),
    ("Sure, I'll give one dollar to them.", 1.0),
    ("I'll donate two dollars.", 2.0),
    ("I can donate $1.5", 1.5),
    ("I'll donate $1.50 today", 1.5),
    ("I'll give 1", 1.0),
    ("I'll give 1 of my 2 dollars.", 1.0),
    ("I'd like to donate $0.25", 0.25),
    ("I'll donate a quarter.", 0.25),
    ("Let me donate half a dollar.", 0.5),
    ("I'll donate a dollar fifty.", 1.5),
    ("I will donate all of it.", 2.0),
    ("I'm going to donate the whole $2.", 2.0),
    ("I'll give half.", 1.0),
    ("I won't donate.", 0.0),
    ("I will not donate anything, sorry.", 0.0),
    ("Not today, thanks.", 0.0),
    ("No thanks.", 0.0),
    ("I'm not going to donate any money.", 0.0),
    ("I don't want to donate", 0.0),
    ("I think I'll pass.", 0.0),
    ("I can't give anything right now.", 0.0),
    ("I'd rather keep my money.", 0.0),
    ("You said I could give up to $2, but I'll donate $0.50.", 0.5),
    ("Out of the $2, I'll give $1.", 1.0),
    ("I know the max is $2. I will donate 30 cents.", 0.3),
    ("I won't donate $2, but I'll give $1.", 1.0),
    ("Let's say 75 cents.", 0.75),
    ("I'll donate 200 dollars!", 2.0),
    ("I’ll donate $1", 1.0),  # typographic apostrophe
    ("OK, I'll donate $1. [END]", 1.0),
    ("I'd donate 10 cents.", 0.1),
    ("I would like to contribute $0.75 to the cause.", 0.75),
]
UNDECIDED = ["Tell me more about the charity.", "How much do others usually give?",
             "I had a long day at work.", "What does Save the Children do?",
             "You're asking me to donate $2 to a charity that supports children around the world.",
             "Would $1 really make a difference?", "They said the task pays $2 and that I could keep it all, I think."]


@pytest.mark.parametrize("text,expected", CASES)
def test_parse_donation(text, expected):
    assert parse_donation(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", UNDECIDED)
def test_no_decision_is_none(text):
    assert parse_donation(text) is None


def test_amounts_are_clipped_to_task_range():
    assert parse_donation("I'll donate $5") == 2.0
    assert all(0.0 <= parse_donation(t) <= 2.0 for t, _ in CASES)


# Kinds of miss found on real persuadees (issue 12): each read as the speaker means it.
REAL_KINDS = [
    ("I'd be glad to donate $0.25", 0.25),  # commitment outside a fixed verb list
    ("I will agree to donate $0.15", 0.15),
    ("i would be willing to donate .30 to the charity", 0.3),  # bare decimals are dollars
    ("I can give 0.50", 0.5),
    ("ok then I will give .15", 0.15),
    ("I will donate 0.05 cents today.", 0.05),  # the corpus's "0.05 cents" is five cents
    ("I'd like to donate half of my payment", 1.0),
    ("I'll donate half my payment, so $.15.", 0.15),  # the explicit amount wins over the share
    ("Im donating 80% of my task amount.", 1.6),
    ("I have donated a lot this year to charity but I am able to spare $1 if it means helping children.", 1.0),
    ("I would like to donate $10 right now.", 2.0),  # above the maximum: clipped, not dropped
    ("I can donate $100.", 2.0),
    ("5 cents is all I'm willing to give.", 0.05),
    ("The most I can spare is 25 cents. Would that be alright?", 0.25),
    ("How about eighty cents?", 0.8),
    ("Half of my earnings from this survey.", 1.0),
    ("I would like to donate 1 dollar and 50 cents.", 1.5),
    ("I wouldn't mind donating $1 to help the children.", 1.0),
]
NOT_NOW = [
    "I normally donate $1.00 to help them expand.",  # a habit
    "I usually give $10 a month to charity.",
    "I'll donate $100 for next year to celebrate!",  # later
    "Could I pledge $1/day to start with?",  # a question
    "Do you think it would be fair if I donated $1?",
    "just not sure i'm willing to donate 0.50 cents",  # doubt
    "I don't know that I can donate a dollar.",
    "It is such a small amount I think I could do better than a dollar.",
    "30 cents can buy a lot of food in other countries",
]


@pytest.mark.parametrize("text,expected", REAL_KINDS)
def test_kinds_of_real_phrasing(text, expected):
    assert parse_donation(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", NOT_NOW)
def test_money_that_is_not_a_decision_now(text):
    assert parse_donation(text) is None


# Issue 12 acceptance: the end of a P4G talk is the end signal or a decision about giving now.
NOT_AN_END = ["I donated $20 last year.", "I only have 2 dollars from this task.", "I can give 1 minute of my time.",
              "I'm not going to donate right now, but tell me more."]


@pytest.mark.parametrize("text", NOT_AN_END)
def test_mentioning_money_does_not_end_a_p4g_talk(text):
    assert not get_scenario("p4g").parse_simulator(text).ended


@pytest.mark.parametrize("text,engagement", [("I'd be happy to donate $0.50 today.", 0.25),
                                             ("Sorry, I won't be donating anything today.", 0.0)])
def test_a_decision_ends_a_p4g_talk_with_donation_over_two(text, engagement):
    p4g = get_scenario("p4g")
    out = p4g.parse_simulator(text)
    assert out.ended and p4g.engagement(out, []) == pytest.approx(engagement)


def test_labels_table_is_the_size_the_issue_asks():
    """≥ 150 real utterances; a held-out part of ≥ 100 with ≥ 60 decisions (issue 12)."""
    with open(LABELS, newline="") as fh:
        rows = list(csv.DictReader(fh))
    held = [r for r in rows if r["split"] == "heldout"]
    assert len(rows) >= 150 and len(held) >= 100
    assert sum(r["expected"] != "none" for r in held) >= 60
    assert {r["split"] for r in rows} == {"dev", "heldout"}


def _accuracy_script():
    spec = importlib.util.spec_from_file_location("donation_accuracy", ROOT / "scripts" / "donation_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@real
@pytest.mark.parametrize("split", ["heldout", "dev"])
def test_parser_on_real_persuadee_utterances(split):
    """Issue 12: ≥ 90% of the labelled real utterances read right (the held-out part was never tuned on)."""
    script = _accuracy_script()
    items = [x for x in script.read_labelled(P4G_REAL, LABELS) if x.split == split]
    misses = [script.describe_miss(x) for x in items if not x.correct()]
    accuracy = 1 - len(misses) / len(items)
    assert accuracy >= 0.90, f"{split}: {accuracy:.1%} of {len(items)} right; misses:\n" + "\n".join(misses)


@real
def test_accuracy_command_prints_both_splits():
    """The README's command."""
    out = subprocess.run([sys.executable, "scripts/donation_accuracy.py", "--data-dir", str(P4G_REAL)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["dev", "heldout"]
    assert all("% right; with a decision" in line for line in lines)


@real
def test_accuracy_command_names_a_bad_label_row(tmp_path):
    labels = tmp_path / "labels.csv"
    with open(LABELS, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[2]["text_sha1"] = "0000000000"
    with open(labels, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    run = subprocess.run([sys.executable, "scripts/donation_accuracy.py", "--data-dir", str(P4G_REAL), "--labels", str(labels)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert f"{labels}: row 4:" in run.stderr and "digest differs" in run.stderr


def test_accuracy_command_names_a_missing_corpus(tmp_path):
    run = subprocess.run([sys.executable, "scripts/donation_accuracy.py", "--data-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith(f"error: {tmp_path}/full_") and "not found" in run.stderr
