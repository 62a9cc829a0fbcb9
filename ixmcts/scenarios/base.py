"""The scenario interface: everything the search needs to know about a dialogue task.

A scenario renders prompts for the two roles, parses their outputs, says when the
conversation ended and how engaged the user was (the reward), and scores new policy
turns for pruning. The search engine never looks inside a scenario.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

from ..data.schema import MODEL, USER, Condition, Dialogue, Turn

Messages = list[dict]


@dataclass
class PolicyOutput:
    reply: str  # what the user sees
    state: str = ""  # ESC: the predicted help-seeker state from the chain of thought
    well_formed: bool = True  # False when the expected format (e.g. ESC's CoT) was missing


@dataclass
class UserOutput:
    reply: str
    state: str = ""  # ESC: the help-seeker's emotional & cognitive state
    ended: bool = False  # the simulator ended the conversation


@dataclass
class PruneItem:
    """One new policy turn to score, with the conversation before it."""

    history: list[Turn]
    turn: Turn


class Scenario(ABC):
    """One dialogue task. Class attributes are the scenario's facts; other modules (the
    evaluation, the tables, SFT) read them here instead of branching on the name."""

    name: str
    user_speaks_first: bool
    max_depth: int  # the paper's T: the search's maximum depth (policy turns)
    max_turns: int  # the interactive evaluation's cap, in utterances of both sides (§4.6)
    policy_speaker: str  # how prompts for advisors and raters name the policy's role
    user_speaker: str
    headline_metric: str  # the ``eval/<name>`` of Table 2 (engaged rate / mean donation)
    headline_label: str  # the column title in tables and plots
    language: str = "en"  # the language of the prompts

    # prompts --------------------------------------------------------------
    @abstractmethod
    def policy_system(self) -> str: ...

    @abstractmethod
    def simulator_system(self, condition: Condition) -> str: ...

    def policy_messages(self, condition: Condition, history: list[Turn]) -> Messages:
        """The policy sees its own turns as ``assistant`` and the user's as ``user``."""
        return [{"role": "system", "content": self.policy_system()}] + _chat(history, me=MODEL)

    def simulator_messages(self, condition: Condition, history: list[Turn], closing: bool = False) -> Messages:
        """``closing``: the conversation reached depth T and the user is asked the scenario's
        closing question (``closing_messages``); its answer ends the conversation."""
        messages = [{"role": "system", "content": self.simulator_system(condition)}] + _chat(history, me=USER)
        return messages + self.closing_messages() if closing else messages

    @abstractmethod
    def closing_messages(self) -> Messages:
        """The closing question and the start of its answer (a trailing assistant message,
        which the backend continues)."""

    def policy_target(self, turn: Turn) -> str:
        """The text the policy is trained to produce for ``turn`` (ESC: CoT + reply)."""
        return turn.text

    def simulator_target(self, turn: Turn) -> str:
        return turn.text

    # parsing, reward, pruning ------------------------------------------------
    @abstractmethod
    def parse_policy(self, text: str) -> PolicyOutput: ...

    @abstractmethod
    def parse_simulator(self, text: str, closing: bool = False) -> UserOutput:
        """Split the simulator's output; an answer to the closing question always ends the talk."""

    @abstractmethod
    def engagement(self, last: UserOutput, history: list[Turn]) -> float:
        """The end-of-dialogue reward for a conversation the simulator ended with ``last``."""

    @abstractmethod
    def prune_scores(self, items: list[PruneItem]) -> list[float]:
        """Scores for new policy turns, batched; higher is kept when pruning to K."""

    def readable_end(self, last: UserOutput) -> bool:
        """Whether an ending carries what the engagement reads (ESC: the final state).
        The search counts endings that do not, since they can never be engaged."""
        return True

    # evaluation facts ---------------------------------------------------------
    @classmethod
    def engaged(cls, engagement: float) -> bool:
        """An engaging interaction (the #turn column averages only these)."""
        return engagement > 0.0

    @classmethod
    def headline_value(cls, engagement: float) -> float:
        """One interaction's contribution to the headline metric (its mean over interactions)."""
        return engagement

    @abstractmethod
    def end_example(self, dialogue: Dialogue) -> tuple[Messages, str]:
        """The simulator's SFT example that ends a corpus dialogue: the prompt after its
        last turn and the output that ends the talk (ESC: final state + ``EOC``; P4G: the
        closing question answered with the persuadee's actual donation)."""

    # training text ----------------------------------------------------------
    def render_dialogue_text(self, dialogue: Dialogue) -> list[str]:
        """The dialogue in ChatML from both roles' points of view, each role's turns written as
        SFT teaches them (ESC: with states), and the simulator's end example on its own
        (tiny-model training text)."""
        as_policy = [replace(t, text=self.policy_target(t)) if t.role == MODEL else t for t in dialogue.turns]
        as_user = [replace(t, text=self.simulator_target(t)) if t.role == USER else t for t in dialogue.turns]
        end_prompt, end_target = self.end_example(dialogue)
        out = []
        for messages in (self.policy_messages(dialogue.condition, as_policy),
                         self.simulator_messages(dialogue.condition, as_user),
                         end_prompt + [{"role": "assistant", "content": end_target}]):
            out.append("".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages))
        return out


def _chat(history: list[Turn], me: str) -> Messages:
    msgs = []
    for turn in history:
        if not turn.text and turn.role == USER:
            continue  # P4G's root: the conversation has not started
        msgs.append({"role": "assistant" if turn.role == me else "user", "content": turn.text})
    if not msgs or msgs[0]["role"] == "assistant":
        # The opener has no turn to answer; small chat models then write about the task
        # instead of speaking in it, so the other side's arrival is stated as a user turn.
        msgs.insert(0, {"role": "user", "content": "Hi."})
    return msgs
