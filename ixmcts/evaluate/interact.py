"""Interactive evaluation: a policy talks with the user simulator on held-out conditions.

All dialogues advance together: each round sends every active dialogue's policy turn as one
batch and every simulator turn as another. With ``n > 1`` the policy samples ``n``
candidates per turn and a ``chooser`` picks one (Best-of-N). Each dialogue samples with
seeds of its own that depend only on the round and its condition, so two methods evaluated
on the same conditions face identically seeded simulators, and dialogues whose prompts are
identical (P4G's persuader opens without knowing the persona) still sample their own turns:
with one seed per round, every dialogue of a method would open with the same sampled
utterance, and its n dialogues would carry one draw of the opening, not n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..data.schema import MODEL, USER, Condition, Turn
from ..errors import IxmctsError
from ..llm.backend import POLICY_SAMPLING, SIMULATOR_SAMPLING, Sampling, hashed_seed
from ..scenarios.base import Scenario

class Chooser(Protocol):
    def choose(self, contexts: list[list[dict]], candidates: list[list[str]]) -> list[int]: ...


@dataclass
class EvalConfig:
    max_turns: int = 30  # utterances of both sides (paper: ESC 50, P4G 30: ``Scenario.max_turns``)
    n: int = 1  # candidates per policy turn (Best-of-N: 3)
    closing: bool = False  # ask the scenario's closing question when the turn limit is reached
    seed: int = 0
    policy_sampling: Sampling = field(default_factory=lambda: POLICY_SAMPLING)
    simulator_sampling: Sampling = field(default_factory=lambda: SIMULATOR_SAMPLING)

    def __post_init__(self):
        if self.max_turns < 2:
            raise IxmctsError(f"max_turns must be at least 2, got {self.max_turns}")
        if self.n < 1:
            raise IxmctsError(f"n must be at least 1, got {self.n}")


def interact(scenario: Scenario, policy, simulator, conditions: list[Condition], config: EvalConfig,
             chooser: Chooser | None = None, progress=None) -> list[dict]:
    """Run one interaction per condition; return one record per interaction."""
    if config.n > 1 and chooser is None:
        raise IxmctsError("Best-of-N (n > 1) needs a chooser")
    records = [{"condition_id": c.id, "turns": [], "engagement": 0.0, "ended": False, "hit_limit": False,
                "chosen": []} for c in conditions]
    histories: list[list[Turn]] = [[] for _ in conditions]
    active = list(range(len(conditions)))
    rnd = 0

    def seed(role: int) -> int:
        return (config.seed * 1_000_003 + rnd * 2 + role) % 2**31

    def dialogue_seeds(ids: list[int], role: int) -> list[int]:
        return [hashed_seed(seed(role), conditions[i].id, size=4) for i in ids]

    def user_turn(ids: list[int]) -> None:
        # the user's last turn: after it and the policy's reply, no utterance is left under the cap
        closing = {i: config.closing and len(histories[i]) + 2 >= config.max_turns for i in ids}
        prompts = [scenario.simulator_messages(conditions[i], histories[i], closing=closing[i]) for i in ids]
        for i, (text,) in zip(ids, simulator.generate(prompts, 1, config.simulator_sampling, seed=dialogue_seeds(ids, 0))):
            parsed = scenario.parse_simulator(text, closing=closing[i])
            if not histories[i]:  # an opening cannot end the talk
                parsed.ended = False
            histories[i].append(Turn(USER, parsed.reply, parsed.state))
            records[i]["turns"].append({"role": USER, "text": parsed.reply, "state": parsed.state, "raw": text})
            if parsed.ended:
                records[i].update(ended=True, engagement=scenario.engagement(parsed, histories[i]))

    if scenario.user_speaks_first:
        user_turn(active)
    active = [i for i in active if not records[i]["ended"]]
    while active:
        prompts = [scenario.policy_messages(conditions[i], histories[i]) for i in active]
        if hasattr(policy, "say"):  # a scripted persuader (the simulator sensitivity check)
            outs = [[policy.say(i, sum(t.role == MODEL for t in histories[i]))] * config.n for i in active]
        else:
            outs = policy.generate(prompts, config.n, config.policy_sampling, seed=dialogue_seeds(active, 1))
        picks = chooser.choose(prompts, outs) if config.n > 1 else [0] * len(active)
        for i, cands, k in zip(active, outs, picks):
            parsed = scenario.parse_policy(cands[k])
            histories[i].append(Turn(MODEL, parsed.reply, parsed.state))
            records[i]["turns"].append({"role": MODEL, "text": parsed.reply, "state": parsed.state, "raw": cands[k]})
            records[i]["chosen"].append(k)
        answering = [i for i in active if len(histories[i]) < config.max_turns]
        if answering:
            user_turn(answering)
        for i in active:
            if not records[i]["ended"] and len(histories[i]) >= config.max_turns:
                records[i]["hit_limit"] = True
        active = [i for i in active if not records[i]["ended"] and not records[i]["hit_limit"]]
        rnd += 1
        if progress:
            progress(len(conditions) - len(active), len(conditions))
    for r in records:
        r["num_turns"] = len(r["turns"])
    return records
