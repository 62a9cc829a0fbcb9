import pytest

from ixmcts.scenarios.donation import parse_donation

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


def test_at_least_30_phrasings():
    assert len(CASES) >= 30
