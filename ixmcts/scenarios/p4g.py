"""Persuasion for good (P4G): the policy is the persuader, the simulator the persuadee.

The persuader speaks first and tries to get a donation to Save the Children out of the
persuadee's $2 task payment. The persuadee, conditioned on a persona, ends the talk by
stating a decision (or writing ``[END]``). With the search's ``closing`` option, a talk that
reaches depth T ends with the task's closing question, whose answer is the decision. Engagement = donation / $2, the donation read
from the last persuadee utterance.

Pruning score (§4.5, Eq. 5, "we use the persuadee's sentiment"): the persuadee's accumulated
sentiment ss_i = γ·ss_{i−2} + VADER(u_i), ss_0 = 0, over the persuadee's utterances u_i along
the path. A new persuader reply is scored by the ss of the persuadee utterance it answers:
scoring its own (not yet generated) answer would cost a simulator call per reply, which is
what pruning saves. Siblings therefore tie; the score ranks branches against each other when
a depth holds more than K replies (ties keep the older node).
"""

from __future__ import annotations

from ..data.schema import USER, Condition, Dialogue, Turn
from ..errors import IxmctsError
from . import scoring
from .base import PolicyOutput, PruneItem, Scenario, UserOutput
from .donation import MAX_DONATION, parse_donation

END_MARKER = "[END]"

# The P4G task asked each persuadee for the donation after the chat. With ``closing``, the
# simulator gets that question at depth T, and its answer starts like the survey's amount field.
CLOSING_QUESTION = ("Thanks for chatting. Final question: how much of your $2 payment will you donate to "
                    "Save the Children? Answer with an amount between $0 and $2.")
CLOSING_ANSWER = "I will donate $"

PERSUADER_SYSTEM = (
    "You are a persuader. Your goal is to convince the persuadee to donate some or all of their $2 task "
    "payment to Save the Children, a charity that helps children in developing countries. Adapt your strategy "
    "to the persuadee's personality as it shows in the conversation, and use logical, emotional or ethical "
    "appeals. Reply with your next utterance only, in one or two sentences."
)
PERSUADEE_SYSTEM = (
    "You are the persuadee, chatting online with a persuader about donating to Save the Children. {description} "
    "You were paid $2 for this task and may donate any part of it, from $0 to $2. Reply naturally in one or two "
    "sentences. When you have decided, say how much you will donate and end your message with " + END_MARKER + "."
)


class PersuasionForGood(Scenario):
    name = "p4g"
    user_speaks_first = False
    max_depth = 15
    max_turns = 30
    policy_speaker, user_speaker = "persuader", "persuadee"
    headline_metric, headline_label = "donation_mean", "P4G donation ($)"

    @classmethod
    def headline_value(cls, engagement: float) -> float:
        return engagement * MAX_DONATION  # the donation in dollars

    def __init__(self, gamma: float = 0.9):
        self.gamma = gamma  # γ: discount of the accumulated sentiment

    def policy_system(self) -> str:
        return PERSUADER_SYSTEM

    def simulator_system(self, condition: Condition) -> str:
        return PERSUADEE_SYSTEM.format(description=condition.description)

    def closing_messages(self) -> list[dict]:
        return [{"role": "user", "content": CLOSING_QUESTION}, {"role": "assistant", "content": CLOSING_ANSWER}]

    def parse_policy(self, text: str) -> PolicyOutput:
        return PolicyOutput(reply=text.strip())

    def parse_simulator(self, text: str, closing: bool = False) -> UserOutput:
        reply = text.replace(END_MARKER, "").strip()
        # The talk ends on the end signal, on the closing answer, or on a decision about giving
        # now (an amount or a refusal); a mere mention of money ("I donated $20 last year") or a
        # deferral ("not right now, but tell me more") does not end it.
        ended = closing or END_MARKER in text or parse_donation(reply) is not None
        return UserOutput(reply=reply, ended=ended)

    def engagement(self, last: UserOutput, history: list[Turn]) -> float:
        # §3.1/§4: donation / $2, the donation read from the last persuadee utterance (0 without one)
        donation = parse_donation(last.reply)
        return 0.0 if donation is None else donation / MAX_DONATION

    def prune_scores(self, items: list[PruneItem]) -> list[float]:
        return [self.persuadee_sentiment(it.history) for it in items]

    def persuadee_sentiment(self, history: list[Turn]) -> float:
        """ss of the last persuadee utterance in ``history``: ss_i = γ·ss_{i−2} + VADER(u_i), ss_0 = 0."""
        ss = 0.0
        for turn in history:
            if turn.role == USER and turn.text:  # the empty root is ss_0
                ss = self.gamma * ss + scoring.vader_compound(turn.text)
        return ss

    def end_example(self, dialogue: Dialogue) -> tuple[list[dict], str]:
        donation = dialogue.meta.get("donation")
        if donation is None:
            raise IxmctsError(f"P4G dialogue {dialogue.id}: no donation (B6) to end the simulator's dialogue with")
        question, answer_start = self.closing_messages()
        return (self.simulator_messages(dialogue.condition, dialogue.turns) + [question],
                f"{answer_start['content']}{donation:.2f}.")
