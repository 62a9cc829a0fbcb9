"""Read a persuadee's decision about giving now (in dollars) from one utterance.

``parse_donation(text)`` returns the amount the speaker decides to give now out of the task's
$2 (clipped to [0, 2]), ``0.0`` for a refusal, or ``None`` when the utterance states no such
decision: a mention of money ("I donated $20 last year", "I only have 2 dollars from this
task"), giving later or every month, a question, or a refusal that still asks to hear more
("I'm not going to donate right now, but tell me more"). P4G ends a talk on such a decision
(paper §3.1; ``P4gScenario.parse_simulator``).

How: the text is normalised (lower case, contractions spelled out), cut into sentences, and
each sentence is read by these rules, the first that applies winning:

1. a commitment: a first-person subject ("I", "we", "let us"), a few words that are not a
   negation, another person or a habit ("I'd be glad to", "I will agree to", "we both can"),
   then a giving verb ("donate", "give", "spare", "contribute", ...) followed in the sentence by
   an amount, or a weaker verb ("do", "say", "go with", "thinking", ...) followed right away by one
   ("I'll do $0.20", "let's say 75 cents", "I was thinking 25 c"); an amount just before a
   commitment that ends the sentence counts too ("5 cents is all I'm willing to give");
2. an offer without a subject: "donate $10", "you can have my $0.30", "half of my earnings";
3. a short answer that is only an amount and words of assent ("So $1 please", "Maybe 0.50?",
   "fifty cents is fine with me", "I think 0.25 is a good amount");
4. an amount owned as a donation: "my 35 cents", "my 10 cent donation".

A sentence that asks (ends in "?") counts only as a proposal ("How about eighty cents?").
An amount followed by a period ("$20 a month", "$100 for next year") is not a decision now.
The last decision in the utterance wins; without one, a refusal gives 0.

Amounts: "$1", "1$", "1 dollar", "fifty cents", "seventy seven cents", "a dollar fifty",
"a quarter", "a dime", "half a dollar", and bare numbers right after the verb ("I'll give 1",
"I would like to donate .50"). The corpus writes "0.30 cents" and ".05 cents" for 30 and 5
cents, so a cents amount below 1 is read as dollars. Shares of the $2: "half", "all of it",
"10% of my payment", "1/2". Amounts above $2 are clipped ("$10" → 2).
"""

from __future__ import annotations

import re

MAX_DONATION = 2.0

# --- normalisation ------------------------------------------------------------------------
_CONTRACTIONS = [
    (r"[’`´]", "'"),
    (r"\$\s+(?=[\d.])", "$"),  # "$ 10" → "$10"
    (r"(?<=\d),(?=\d{3}\b)", ""),  # "50,000" → "50000"
    (r"\bwon'?t\b", "will not"), (r"\bcan'?t\b|\bcannot\b", "can not"), (r"n't\b", " not"),
    (r"\b(do|does|did|would|could|should|is|are|was|were|have|has)nt\b", r"\1 not"),  # "dont", "wouldnt"
    (r"\bill(?= (?:\w+ )?(?:donate|give|do|go|contribute|send|spare|pledge|say)\b)", "i will"),  # "Ill donate"
    (r"\bi'll\b", "i will"), (r"\bwe'll\b", "we will"), (r"\bi'd\b", "i would"), (r"\bwe'd\b", "we would"),
    (r"\bi'?m\b", "i am"), (r"\bi've\b", "i have"), (r"\blet'?s\b", "let us"),
    (r"\b(would|do|does|did) not mind\b", "am happy"),  # "I wouldn't mind donating $1" is a yes
]


def _normalise(text: str) -> str:
    t = text.lower()
    for pattern, repl in _CONTRACTIONS:
        t = re.sub(pattern, repl, t)
    return re.sub(r"\s+", " ", t)


_SENTENCE_END = re.compile(r"[.!?;]+(?![\d])|\n")  # "$0.50" and ".50" do not end a sentence


def _sentences(t: str) -> list[str]:
    out, start = [], 0
    for m in _SENTENCE_END.finditer(t):
        out.append(t[start : m.end()].strip())
        start = m.end()
    out.append(t[start:].strip())
    return [s for s in out if s.strip(" .!?;")]


# --- amounts --------------------------------------------------------------------------------
_UNITS = {"zero": 0, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
          "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100}
_TENS = r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
_ONES = r"(?:one|two|three|four|five|six|seven|eight|nine)"
_WORD_NUMBER = rf"(?:{_TENS}(?:[- ]{_ONES})?|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|hundred|zero)"
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_COINS = {"dime": 0.10, "nickel": 0.05, "penny": 0.01, "quarter": 0.25}

# An amount with its unit (a bare number is not one: it counts only right after a verb).
_MONEY = re.compile(
    rf"(?P<dollar_and>\b(?P<whole>a|one|\d) dollars? (?:and )?(?P<dollar_and_cents>{_TENS}(?:[- ]{_ONES})?|ten|fifteen|\d{{2}}|\d(?= cents?))(?: cents?)?(?![\w]|\.\d))"
    rf"|(?P<half_dollar>\bhalf (?:of )?a dollar\b|\ba half dollar\b)"
    r"|\b(?:a|one) (?P<coin>dime|nickel|penny|quarter)\b"
    rf"|\$(?P<usd>{_NUMBER})(?P<usd_cents> ?cents?)?"
    rf"|(?P<num>{_NUMBER}) ?(?P<unit>cents?\b|c\b|¢|dollars?\b|bucks?\b|usd\b|\$)"
    rf"|\b(?P<word>{_WORD_NUMBER}) (?P<word_unit>cents?|dollars?|bucks?)\b"
)
# "half of my $2" is $1
_HALF_OF = re.compile(r"\bhalf (?:of (?:my |the |our |a )?|my |the |our )$")


def _words_to_number(words: str) -> float:
    return float(sum(_UNITS[w] for w in re.split(r"[- ]", words)))


def _money_value(m: re.Match) -> float:
    g = m.groupdict()
    if g["dollar_and"]:
        cents = g["dollar_and_cents"]
        whole = float(g["whole"]) if g["whole"].isdigit() else 1.0
        return whole + (float(cents) if cents[0].isdigit() else _words_to_number(cents)) / 100
    if g["half_dollar"]:
        return 0.5
    if g["coin"]:
        return _COINS[g["coin"]]
    if g["usd"] is not None:
        v = float(g["usd"])
        return v / 100 if g["usd_cents"] and v >= 1 else v
    if g["num"] is not None:
        v = float(g["num"])
        cents = g["unit"].startswith(("cent", "c", "¢"))
        return v / 100 if cents and v >= 1 else v  # "0.30 cents" means 30 cents in this corpus
    v = _words_to_number(g["word"])
    return v / 100 if g["word_unit"].startswith("cent") else v


def _money(text: str) -> list[tuple[int, int, float]]:
    """(start, end, dollars) of each amount with a unit."""
    out = []
    for m in _MONEY.finditer(text):
        v = _money_value(m)
        if _HALF_OF.search(text[: m.start()]):
            v /= 2
        out.append((m.start(), m.end(), v))
    return out


# Words that may sit between a verb and its amount: "I'll give them .10", "thinking about making a 0.30 cent donation".
_HEDGES = r"(?:(?:about|around|roughly|approximately|maybe|like|just|only|probably|them|it|at|with|on|a|the|making|of|for|up|in) )*"
_BARE = re.compile(rf"^{_HEDGES}(?P<num>{_NUMBER})(?![\w/%]|\.\d)(?! ?percent)(?! (?:minutes?|hours?|days?|weeks?|months?|years?|times?|kids?|child|children|people|persons?|of them|words?|turns?|rounds?)\b)")
_SHARE_OF_PAYMENT = re.compile(
    rf"^{_HEDGES}(?:(?P<pct>{_NUMBER}) ?(?:%|percent)|(?P<num>\d)/(?P<den>\d)(?!\d)"
    r"|(?P<half>half)\b(?! (?:of )?a dollar)|(?P<all>all of it|it all|all of (?:my|the|it)|all\b|everything|the (?:whole|entire|full)|my (?:whole|entire|full))"
    r"|(?P<nothing>nothing|zero|none)\b)"
)
_PERCENT_OF = re.compile(rf"(?P<pct>{_NUMBER}) ?(?:%|percent) of (?:my|the|our|this)\b")


def _share(m: re.Match) -> float:
    if m["pct"]:
        return float(m["pct"]) / 100 * MAX_DONATION
    if m["num"]:
        return int(m["num"]) / max(int(m["den"]), 1) * MAX_DONATION
    if m["half"]:
        return MAX_DONATION / 2
    if m["all"]:
        return MAX_DONATION
    return 0.0


# "$20 a month", "$100 for next year", "$1/day": giving over time, not a decision now.
_PERIOD = re.compile(r"^\s*(?:/ ?(?:day|month|week|year)|(?:a|per|each|every|for next|next|for the next) (?:day|month|week|year|few months)s?\b|annually|monthly|weekly|yearly)")


def _amount_after(rest: str, adjacent_only: bool) -> float | None:
    """The amount a verb governs: ``rest`` is the sentence after the verb. With ``adjacent_only``
    (weak verbs: "do", "say", ...) only an amount right after the verb counts."""
    rest = rest.lstrip(" ,:")
    money = _money(rest)
    bare = _BARE.match(rest)
    if bare and not (money and money[0][0] < bare.end()):
        return None if _PERIOD.match(rest[bare.end():]) else float(bare["num"])  # "I'll give 1 of my 2 dollars"
    share = _SHARE_OF_PAYMENT.match(rest)
    if money:
        start, end, value = money[0]
        of_the_payment = share and re.fullmatch(r" ?(?:of (?:my |the |our )?|my |the |our )", rest[share.end() : start])
        if not of_the_payment and (not adjacent_only or re.fullmatch(_HEDGES, rest[:start])):
            # "I'll donate half my payment, so $.15": an explicit amount beats a share
            return None if _PERIOD.match(rest[end:]) else value
    if share:
        return _share(share)
    percent = None if adjacent_only else _PERCENT_OF.search(rest)
    return _share(percent) if percent else None


# --- decisions --------------------------------------------------------------------------------
_SUBJECT = re.compile(r"\b(?:i|we|let(?: us| me)?(?: both)?)\b")
# Between subject and verb: not a negation, another person, doubt or a habit ("I usually donate $5").
_NOT_BETWEEN = re.compile(r"(?:not|never|no|you|they|he|she|people|others|everyone|somebody|someone|who|that|if|when"
                          r"|whether|usually|normally|always|often|sometimes|used|gave|donated|made|did|hope|wish|asked"
                          r"|have|has|had)$")
_MAX_BETWEEN = 8
_GIVE = (r"donate|donating|donation|give|giving|contribute|contributing|contribution|pledge|spare|sacrifice|offer"
         r"|send|afford|put in|chip in")
_SAY = (r"do|say|go with|go for|choose|throw|stick with|stick to|stay at|staying at|start with|settle on|make it|be"
        r"|thinking|leaning towards?|considering|propose|in for")
_VERB = re.compile(rf" (?:(?P<give>{_GIVE})|(?P<say>{_SAY}))\b")
_WORD = re.compile(r" ([\w']+)")
# "not sure I'm willing to donate 0.50", "if I donate ten cents": no commitment
_DOUBT_BEFORE = re.compile(r"\b(?:not sure|unsure|do not know|wonder|if|unless|whether)\b[\w' ]{0,20}$")


def _commitments(sentence: str):
    """The giving verbs a first-person subject governs, in order: ("I'd be glad to donate", "we both can give")."""
    for subject in _SUBJECT.finditer(sentence):
        pos = subject.end()
        if _DOUBT_BEFORE.search(sentence[: subject.start()]):
            continue
        for _ in range(_MAX_BETWEEN):
            if verb := _VERB.match(sentence, pos):
                yield verb
            word = _WORD.match(sentence, pos)
            if not word or (_NOT_BETWEEN.match(word[1]) and not sentence.startswith(" have decided", pos)):
                break
            pos = word.end()


_SUBJECTLESS = re.compile(r"^(?:(?:ok|okay|yes|yeah|sure|so|then|well|alright)\W* )*(?:donate|give|put me down for|count me in for|you can (?:have|take))\b")
_SHARE_ANSWER = re.compile(r"^(?:(?:ok|okay|yes|yeah|sure|so|then|well)\W* )*(?=(?:half|all) of (?:my|our|the|whatever|it)\b)")
_OWNED = re.compile(rf"\bmy (?=(?:\$|{_NUMBER} ?(?:cents?|c\b|¢)|{_WORD_NUMBER} cents?))")
_PROPOSAL = re.compile(r"\b(?:how about|what about|maybe|agreed)\b")
_ASSENT = set("ok okay so yes yeah yep sure well then maybe how what about let us say make it please i think go with just only "
              "around roughly approximately fine good great is a an the amount fair reasonable that for me with would be "
              "it's that's thats alright all right".split())


def _decision_in(sentence: str) -> float | None:
    asks = sentence.rstrip().endswith("?")
    if asks and not _PROPOSAL.search(sentence) and not _is_short_answer(sentence):
        # "I could send 50 cents, will you match that?": the statement before the question counts
        return _decision_in(sentence.rsplit(",", 1)[0] + ".") if "," in sentence else None
    found = None
    for m in _commitments(sentence):
        rest = sentence[m.end():]
        value = _amount_after(rest, adjacent_only=m["say"] is not None)
        if value is None and m["give"] and re.fullmatch(r"[\w' ]{0,20}[.!]*", rest.strip()):
            # "5 cents is all I'm willing to give": the amount just before, in the same clause
            before = [v for _, _, v in _money(sentence[: m.start()].rsplit(",", 1)[-1])]
            value = before[-1] if before else None
        if value is not None:
            found = value
    if found is not None:
        return found
    if (m := _SUBJECTLESS.match(sentence)) or (m := _SHARE_ANSWER.match(sentence)):
        return _amount_after(sentence[m.end():], adjacent_only=False)
    if _is_short_answer(sentence):
        amounts = [v for _, _, v in _money(sentence)] or [float(b) for b in re.findall(_NUMBER, sentence)]
        return amounts[-1] if amounts else None
    if not asks and (m := _OWNED.search(sentence)) and not re.search(r"\bkeep\b", sentence):
        value = _amount_after(sentence[m.end():], adjacent_only=True)
        return value if value != MAX_DONATION else None  # "my $2" is the whole payment, not a choice
    return None


def _is_short_answer(sentence: str) -> bool:
    """Only an amount and words of assent: "So $1 please", "Maybe 0.50?", "fifty cents is fine"."""
    rest = _MONEY.sub(" ", sentence)
    had_amount = rest != sentence or re.search(rf"(?<![\w.]){_NUMBER}(?![\w])", sentence)
    rest = re.sub(_NUMBER, " ", rest)
    words = re.findall(r"[a-z']+", rest)
    return bool(had_amount) and len(words) <= 8 and all(w in _ASSENT for w in words)


# A refusal: "I won't donate", "No thanks", "I'd rather keep my money". A refusal that still asks to
# hear more ("... but tell me more", a question) is not the end of the talk.
_REFUSE = re.compile(
    r"\b(?:will|would|can|could|do|does|am|are) not(?: (?:be|want|to|going|plan|able|afford|really|even|willing|ready))* (?:donate|donating|give|giving|contribute|contributing)\b"
    r"|\bnot (?:going to |be )?(?:donate|donating|give|giving|contribute|contributing)\b"
    r"|\b(?:decided|rather) not\b|\bnot today\b|\bno,? thanks?\b|\bno,? thank you\b|\bi will pass\b|\bpass (?:on|this time)\b"
    r"|\bkeep (?:my|the|it)(?: \w+){0,2} (?:money|payment|bonus|earnings|\$2|2 dollars)\b|\bnot interested\b"
    r"|\bdo not have (?:any |the |extra )?money to (?:give|donate|spare)\b"
)
_NO_TO_GIVING = re.compile(r"^\W*no\b(?! problem| worries).*\b(?:i|we)\b[\w' ]{0,30}\b(?:donate|donating|give|giving|contribute)\b")
_STILL_LISTENING = re.compile(r"\?|\btell me more\b|\bmore about\b|\bconvince me\b|\bi am listening\b|\bgo on\b")


def parse_donation(text: str) -> float | None:
    """The donation decided now in dollars (clipped to [0, 2]), 0.0 for a refusal, None if undecided."""
    t = _normalise(text)
    decisions = [d for s in _sentences(t) if (d := _decision_in(s)) is not None]
    if decisions:
        return min(max(decisions[-1], 0.0), MAX_DONATION)
    if (_REFUSE.search(t) or _NO_TO_GIVING.search(t)) and not _STILL_LISTENING.search(t):
        return 0.0
    return None
