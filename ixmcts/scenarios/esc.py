"""Emotional support (ESC): the policy is the supporter, the simulator the help-seeker.

The help-seeker opens the talk and writes its emotional & cognitive state (appendix A.1:
*shown* and *possibly unexpressed* observations / feelings / needs / requests) before each
reply, and ends the talk by writing its state once more and then the literal token ``EOC``.
With the search's ``closing`` option, a talk that reaches depth T ends with a check-in that
asks for the *possibly unexpressed* block, the same self-report the engagement reads. The
supporter writes a chain of thought — a fixed lead-in, its *predicted* help-seeker state, a
reply marker — then the reply.

Engagement (§3.1, §3.2 "Rollout"): 1 when the help-seeker ended the talk **and** the state
in that final output shows no remaining unexpressed feelings or thoughts (observations);
an ending whose output carries no readable state is 0, like one with something left unsaid.
Pruning score: cosine of MiniLM embeddings of the help-seeker's last state and the
supporter's predicted state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..data.schema import USER, Condition, Dialogue, Turn
from ..errors import IxmctsError
from . import scoring
from .base import PolicyOutput, PruneItem, Scenario, UserOutput

END_TOKEN = "EOC"


@dataclass(frozen=True)
class Words:
    lead_in: str
    reply: str
    shown: str
    possible: str
    fields: tuple[str, str, str, str]  # observations, feelings, needs, requests
    policy_system: str
    simulator_system: str
    closing_question: str


_STATE_EN = "[Shown]\nObservations: ...\nFeelings: ...\nNeeds: ...\nRequests: ...\n[Possibly unexpressed]\nObservations: ...\nFeelings: ...\nNeeds: ...\nRequests: ..."
_STATE_ZH = "【已表达】\n观察：……\n感受：……\n需要：……\n请求：……\n【可能未表达】\n观察：……\n感受：……\n需要：……\n请求：……"

WORDS = {
    "en": Words(
        lead_in="Let me think step by step. The visitor's current state:",
        reply="Reply:",
        shown="[Shown]",
        possible="[Possibly unexpressed]",
        fields=("Observations", "Feelings", "Needs", "Requests"),
        policy_system=(
            "You are the listener, a warm and professional counselor talking with a visitor who seeks help. "
            "Given the conversation so far, first think about the visitor's current state, then reply. "
            "Answer in exactly this format:\nLet me think step by step. The visitor's current state:\n"
            + _STATE_EN + "\nReply: <your reply to the visitor>"
        ),
        simulator_system=(
            "You are a visitor talking with a counselor about your troubles. Your situation: {description}\n"
            "Before each reply, write your current emotional and cognitive state, then your reply, in this format:\n"
            + _STATE_EN + "\nReply: <what you say>\n"
            "Under [Possibly unexpressed] write 'none' for what you have already said. When you have expressed "
            "everything and feel understood, write your state as always, then reply with " + END_TOKEN + "."
        ),
        closing_question=(
            "Our session is ending. Is there any feeling or thought you have not expressed yet? Write it under "
            "[Possibly unexpressed], or write none if you have said everything, then end with " + END_TOKEN + "."
        ),
    ),
    "zh": Words(
        lead_in="让我们一步一步思考。来访者当前的状态：",
        reply="回复：",
        shown="【已表达】",
        possible="【可能未表达】",
        fields=("观察", "感受", "需要", "请求"),
        policy_system=(
            "你是倾听者，一位温暖、专业的心理咨询师，正在与前来求助的来访者对话。请根据对话历史，先思考来访者当前的状态，再给出回复。"
            "请严格按照以下格式回答：\n让我们一步一步思考。来访者当前的状态：\n" + _STATE_ZH + "\n回复：<你对来访者的回复>"
        ),
        simulator_system=(
            "你是一位正在向心理咨询师倾诉困扰的来访者。你的情况：{description}\n"
            "每次回复前，先写出你当前的情绪与认知状态，再写回复，格式如下：\n" + _STATE_ZH + "\n回复：<你说的话>\n"
            "【可能未表达】中已经说出的内容写“无”。当你已经充分表达、感到被理解时，照常写出你的状态，然后回复 " + END_TOKEN + "。"
        ),
        closing_question="本次咨询即将结束。你还有没有尚未表达的感受或想法？请写在【可能未表达】下；如果都已经说出，请写“无”，最后以 " + END_TOKEN + " 结束。",
    ),
}

# An empty field says that nothing is left, and nothing else: "none", "n/a", "[No feelings
# left]", "nothing more to say", "无", "没有了", "暂时没有", "（无）", "无明显未表达内容". Content
# that merely starts like it stays content: "None of my friends care", "Nothing I do is
# good enough", "no one listens to me", "无法入睡" (cannot sleep).
_EMPTY_EN = (r"(?:none|nothing|n/?a|null|nil|no|-+|…+|\.\.\.)"
             r"(?:\s+(?:left|remaining|more|else|further|yet|so\s+far|for\s+now|at\s+the\s+moment|to\s+(?:say|add|express)"
             r"|unexpressed|expressed))*"
             r"|no\s+(?:(?:more|further|other|remaining)\s+)?(?:feelings?|thoughts?|observations?|needs?|requests?|emotions?)"
             r"(?:\s+(?:left|remaining|to\s+express|unexpressed|yet))*")
_EMPTY_ZH = (r"(?:暂时|目前|暂)?(?:无|没有)(?:了|的)?|都(?:已经)?说(?:出来)?了|(?:已经?)?(?:全部|都)?(?:已)?表达(?:完|了|完了)?"
             r"|(?:无|没有)(?:明显|其他|其它|更多)?(?:的)?(?:尚)?未表达(?:的)?(?:内容|感受|想法|观察)?")
_EMPTY = re.compile(rf"^[\s\[\(\"'“「（【]*(?:{_EMPTY_EN}|{_EMPTY_ZH})?[\s\]\)\"'”」）】.。!！]*$", re.IGNORECASE)
# EOC as a token of its own; Python's \b would not separate it from Chinese text ("谢谢你EOC").
_END = re.compile(rf"(?<![A-Za-z0-9]){END_TOKEN}(?![A-Za-z0-9])")


class EmotionalSupport(Scenario):
    name = "esc"
    user_speaks_first = True
    max_depth = 25
    max_turns = 50
    policy_speaker, user_speaker = "counselor", "help-seeker"
    headline_metric, headline_label = "engaged_rate", "ESC engaged rate"

    @classmethod
    def engaged(cls, engagement: float) -> bool:
        return engagement >= 1.0

    @classmethod
    def headline_value(cls, engagement: float) -> float:
        return float(cls.engaged(engagement))

    def __init__(self, language: str = "zh", embedder: str = scoring.MINILM):
        if language not in WORDS:
            raise ValueError(f"unknown ESC language {language!r}; choose one of: {', '.join(WORDS)}")
        self.language, self.words, self.embedder = language, WORDS[language], embedder
        w = self.words
        self._policy_re = re.compile(re.escape(w.lead_in) + r"\s*(.*?)\s*" + re.escape(w.reply) + r"\s*(.*)", re.DOTALL)
        fields = "|".join(map(re.escape, w.fields))
        self._field_re = re.compile(rf"^\s*({fields})\s*[:：]\s*(.*?)\s*$", re.MULTILINE)

    def policy_system(self) -> str:
        return self.words.policy_system

    def simulator_system(self, condition: Condition) -> str:
        return self.words.simulator_system.format(description=condition.description)

    def policy_target(self, turn: Turn) -> str:
        return f"{self.words.lead_in}\n{turn.state}\n{self.words.reply} {turn.text}" if turn.state else turn.text

    def simulator_target(self, turn: Turn) -> str:
        return f"{turn.state}\n{self.words.reply} {turn.text}" if turn.state else turn.text

    def parse_policy(self, text: str) -> PolicyOutput:
        m = self._policy_re.search(text)
        if m:
            return PolicyOutput(reply=m.group(2).strip(), state=m.group(1).strip(), well_formed=True)
        state, reply = self._split_reply(text)
        return PolicyOutput(reply=reply, state=state, well_formed=False)

    def closing_messages(self) -> list[dict]:
        w = self.words
        return [{"role": "user", "content": w.closing_question}, {"role": "assistant", "content": f"{w.possible}\n{w.fields[1]}:"}]

    def parse_simulator(self, text: str, closing: bool = False) -> UserOutput:
        ended = closing or bool(_END.search(text))
        state, reply = self._split_reply(text)
        reply = _END.sub("", reply).strip()
        return UserOutput(reply=reply, state=state, ended=ended)

    def _split_reply(self, text: str) -> tuple[str, str]:
        marker = self.words.reply
        if marker in text:
            state, reply = text.rsplit(marker, 1)
            return state.replace(self.words.lead_in, "").strip(), reply.strip()
        if self.words.possible in text or self.words.shown in text:
            return text.replace(self.words.lead_in, "").strip(), ""  # a state block with no reply yet
        return "", text.strip()

    def state_template(self) -> str:
        """The help-seeker state format of the paper's appendix A.1, in this language."""
        return _STATE_EN if self.language == "en" else _STATE_ZH

    def is_state(self, text: str) -> bool:
        """Whether ``text`` is a state in the A.1 format: the shown block, then the possibly
        unexpressed block, each with at least one of the four fields."""
        w = self.words
        if w.shown not in text or w.possible not in text or text.index(w.shown) > text.index(w.possible):
            return False
        shown, possible = text.split(w.possible, 1)
        return bool(self._field_re.findall(shown)) and bool(self._field_re.findall(possible))

    def _watched(self, state: str) -> dict[str, str] | None:
        """The thoughts (observations) and feelings of the state's *possibly unexpressed*
        block, or None when the state has no such block with at least one of them."""
        if self.words.possible not in state:
            return None
        block = state.split(self.words.possible, 1)[1].split(self.words.shown, 1)[0]
        watched = self.words.fields[:2]
        found = {k: v for k, v in self._field_re.findall(block) if k in watched}
        return found or None

    def unexpressed(self, state: str) -> dict[str, str]:
        """Non-empty observations/feelings in the state's *possibly unexpressed* block."""
        return {k: v for k, v in (self._watched(state) or {}).items() if not _EMPTY.match(v)}

    def readable_end(self, last: UserOutput) -> bool:
        return self._watched(last.state) is not None

    def engagement(self, last: UserOutput, history: list[Turn]) -> float:
        # A bare EOC is not engagement: without the final state nothing shows the help-seeker
        # said everything, and rewarding it would prefer replies that make the user leave.
        if not last.ended or not self.readable_end(last):
            return 0.0
        return 0.0 if self.unexpressed(last.state) else 1.0

    def end_example(self, dialogue: Dialogue) -> tuple[list[dict], str]:
        final_state = next((t.state for t in reversed(dialogue.turns) if t.role == USER and t.state), "")
        if not self.is_state(final_state):
            raise IxmctsError(f"ESC dialogue {dialogue.id}: no annotated help-seeker state (appendix A.1) to end "
                              f"the simulator's dialogue with; run `annotate` on the corpus first")
        return self.simulator_messages(dialogue.condition, dialogue.turns), f"{final_state}\n{self.words.reply} {END_TOKEN}"

    def prune_scores(self, items: list[PruneItem]) -> list[float]:
        # Compare states; an output without a state (an untrained model) falls back to
        # comparing the replies, so the ranking still means "answers what was said".
        a, b = [], []
        for it in items:
            user = next((t for t in reversed(it.history) if t.role == USER), None)
            if user is not None and user.state and it.turn.state:
                a.append(user.state), b.append(it.turn.state)
            else:
                a.append(user.text if user else ""), b.append(it.turn.text)
        return scoring.cosine_pairs(a, b, model=self.embedder)
