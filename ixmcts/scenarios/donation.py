"""Read a persuadee's donation decision (in dollars) from one utterance.

``parse_donation`` returns the amount the speaker decided to give, ``0.0`` for a refusal,
or ``None`` when the utterance states no decision. When several amounts appear, the one
tied to a first-person commitment ("I'll give ...") wins, so a quoted-back "$2 maximum"
does not count. Results are clipped to the task's [0, 2].
"""

from __future__ import annotations

import re

MAX_DONATION = 2.0
_NUM = {"zero": 0, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "fifteen": 15,
        "twenty": 20, "twenty-five": 25, "twenty five": 25, "thirty": 30, "forty": 40, "fifty": 50,
        "sixty": 60, "seventy": 70, "seventy-five": 75, "seventy five": 75, "eighty": 80, "ninety": 90}
_WORD = "|".join(sorted(map(re.escape, _NUM), key=len, reverse=True))
_AMOUNT = re.compile(
    r"(?P<dollar_cents>\b(?:a|one)\s+dollar\s+(?:and\s+)?(?P<dc>fifty|twenty[- ]five|seventy[- ]five|\d{1,2})(?:\s+cents?)?)"
    r"|(?P<half>\bhalf\s+(?:a\s+)?dollar\b|\ba\s+half\s+dollar\b)"
    r"|(?P<quarter>\ba\s+quarter\b)"
    r"|\$\s*(?P<usd>\d+(?:\.\d+)?)(?:\s*(?P<usd_cents>cents?))?"
    r"|(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>cents?|¢|dollars?|bucks?|usd)\b"
    r"|\b(?P<word>" + _WORD + r")\s+(?P<wunit>cents?|dollars?|bucks?)\b"
)
_BARE = re.compile(r"\b(\d+(?:\.\d+)?)\b")
_COMMIT = re.compile(
    r"\b(?:i'?ll|i\s+will|i\s+shall|i'?d(?:\s+like\s+to|\s+love\s+to)?|i\s+would(?:\s+like\s+to|\s+love\s+to)?|i\s+can|i\s+could"
    r"|let\s+me|i'?m\s+(?:going\s+to|gonna|happy\s+to|willing\s+to|glad\s+to)|i\s+am\s+(?:going\s+to|happy\s+to|willing\s+to|glad\s+to)"
    r"|i\s+want\s+to|i'?ve\s+decided\s+to|i\s+decided\s+to|i\s+decide\s+to|i\s+plan\s+to)"
    r"(?:\s+(?:just|happily|gladly|definitely|probably|go\s+ahead\s+and|also|only|still|now|then|gonna))*"
    r"\s+(?:donate|give|contribute|pledge|put\s+in|chip\s+in|spare|send|offer|do)\b"
)
_CUE = re.compile(r"\b(?:let'?s\s+say|make\s+it|how\s+about|put\s+me\s+down\s+for|count\s+me\s+in\s+for|i'?ll\s+go\s+with|i'?ll\s+do)\b")
_ALL = re.compile(r"^\W*(?:all\s+of\s+it|all\s+of\s+my|all\s+my|everything|the\s+(?:whole|full|entire)|it\s+all|all\b)")
_HALF = re.compile(r"^\W*(?:half\b(?!\s+(?:a\s+)?dollar))")
_NOTHING = re.compile(r"^\W*(?:nothing|zero\b|none\b)")
_REFUSE = re.compile(
    r"\b(?:won'?t|will\s+not|wouldn'?t|would\s+not|can'?t|cannot|can\s+not|couldn'?t|don'?t\s+want\s+to|do\s+not\s+want\s+to"
    r"|am\s+not\s+going\s+to|i'?m\s+not\s+going\s+to|not\s+going\s+to|don'?t\s+think\s+i'?ll|decided\s+not\s+to|rather\s+not|not)"
    r"(?:\s+\w+){0,2}?\s+(?:donate|donating|give|giving|contribute|contributing)\b"
    r"|\bnot\s+today\b|\bno\s+thanks?\b|\bno,?\s+thank\s+you\b|\bi'?ll\s+pass\b|\bpass\s+(?:on|this\s+time)\b"
    r"|\bkeep\s+(?:my|the)\s+(?:money|payment|\$?2)\b|\bnot\s+interested\b"
)
_SHORT_ANSWER_WORDS = 10
_SENTENCE_END = re.compile(r"[.!?;](?!\d)|\n")  # "$0.50" does not end a sentence


def _value(m: re.Match) -> float:
    g = m.groupdict()
    if g["dollar_cents"]:
        dc = g["dc"].replace("-", " ")
        return 1 + (_NUM[dc] if dc in _NUM else float(dc)) / 100
    if g["half"]:
        return 0.5
    if g["quarter"]:
        return 0.25
    if g["usd"] is not None:
        v = float(g["usd"])
        return v / 100 if g["usd_cents"] else v
    if g["num"] is not None:
        v = float(g["num"])
        return v / 100 if g["unit"].startswith(("cent", "¢")) else v
    v = float(_NUM[g["word"].replace("-", " ") if g["word"].replace("-", " ") in _NUM else g["word"]])
    return v / 100 if g["wunit"].startswith("cent") else v


def _amounts(text: str) -> list[tuple[int, float]]:
    return [(m.start(), _value(m)) for m in _AMOUNT.finditer(text)]


def _clip(v: float) -> float:
    return min(max(v, 0.0), MAX_DONATION)


def _amount_after(text: str, pos: int) -> float | None:
    """The first amount in the clause that starts at ``pos`` (a bare number counts here)."""
    end = _SENTENCE_END.search(text, pos)
    clause = text[pos : end.start() if end else len(text)]
    if _ALL.match(clause):
        return MAX_DONATION
    if _HALF.match(clause):
        return MAX_DONATION / 2
    if _NOTHING.match(clause):
        return 0.0
    found = _amounts(clause)
    bare = _BARE.search(clause)
    if bare and (not found or bare.start() < found[0][0]):
        return float(bare.group(1))  # "I'll give 1 of my 2 dollars": the first number is the choice
    return found[0][1] if found else None


def parse_donation(text: str) -> float | None:
    """The decided donation in dollars (clipped to [0, 2]), 0.0 for a refusal, None if undecided."""
    t = text.lower().replace("’", "'").replace(",", " ")
    decided = [a for m in _COMMIT.finditer(t) if (a := _amount_after(t, m.end())) is not None]
    decided += [a for m in _CUE.finditer(t) if (a := _amount_after(t, m.end())) is not None]
    if decided:
        return _clip(decided[-1])
    if _REFUSE.search(t):
        return 0.0
    amounts = [v for _, v in _amounts(t)]
    # Without a commitment, an amount is a decision only in a short answer ("$0.50",
    # "fifty cents is fine"), not in a question or a sentence that merely mentions money.
    if not amounts or "?" in t or len(t.split()) > _SHORT_ANSWER_WORDS:
        return None
    if len(set(amounts)) == 1:
        return _clip(amounts[0])
    not_max = [v for v in amounts if v != MAX_DONATION]  # a "$2" quoted back is the maximum, not the choice
    return _clip(not_max[-1] if not_max else amounts[-1])
