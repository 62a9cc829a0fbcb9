"""Does the user simulator respond to persuasion? The first link of the chain a reproduction needs.

If the simulator's donation does not depend on what the persuader says, no policy can raise
it, and an aligned-vs-SFT comparison measures nothing. So the same held-out personas talk with
two scripted persuaders:

* **replayed**: the persuader turns of corpus dialogues whose persuadee gave the most (``B6``),
  said in their order whatever the simulator answers;
* **off-task / rude**: :data:`OFF_TASK`, lines that do not make the case for the charity or
  insult the persuadee.

Both arms run through :func:`interact` with the same conditions, turn cap, closing question and
seed, so every dialogue faces an identically seeded simulator in both. The per-persona donation
difference (replayed − off-task), its bootstrap CI and a paired permutation test say whether the
simulator responds (difference > 0 with p < 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import fmean

from ..data.schema import MODEL, Condition, Dialogue
from ..errors import IxmctsError
from ..llm.backend import SIMULATOR_SAMPLING
from ..options import setting
from ..scenarios.base import Scenario
from .interact import EvalConfig, interact
from .metrics import bootstrap_ci, paired_permutation_test

# Off-task chatter and rudeness, no case for the charity: what a persuader should never do.
OFF_TASK = (
    "Hey. Did you catch the game last night? I can't stop thinking about that last play.",
    "Honestly I'm only here for the payment, so let's get this over with.",
    "You look like the type who never gives anything to anyone, am I right?",
    "Whatever you say. My lunch was terrible today, by the way. Soggy fries.",
    "I don't really care what you think about charities, to be honest.",
    "Can you type faster? I have better things to do than wait for you.",
    "People like you are the reason nothing ever gets better.",
    "Anyway, what's your favourite pizza topping? Mine is pineapple.",
    "This whole thing is boring me. Are we done yet?",
    "I bet you don't even know what a charity is.",
    "Let's talk about the weather instead. It's so grey today.",
    "Fine. Say whatever you want, it doesn't matter to me.",
)


@dataclass
class SensitivityParams:
    """The check's settings; defaults: the ``repro-cpu`` evaluation's (held-out synthesized
    personas 16+, 12 utterances, the closing donation question, 40 new tokens)."""

    simulator_model: str = setting("", "a prompted simulator (registry name, folder or hub id) instead of an SFT "
                                       "simulator run, e.g. smollm2-135m-instruct")
    data_dir: str = setting("", "P4G corpus folder: the replayed dialogues and the personas (default: $IXMCTS_P4G_DIR; "
                                "`sample`: the bundled sample dialogues)")
    conditions: str = setting("synth", "the personas: synth (synthesized from the corpus, as the search and evaluate) | "
                                       "corpus | sample | a conditions .jsonl path")
    conditions_offset: int = setting(16, "skip this many personas of the pool (the searched ones: held-out personas)")
    num_dialogues: int = setting(32, "personas, each talked to by both persuaders")
    max_turns: int = setting(12, "utterances of both sides; the persuadee's last one answers the closing question")
    max_new_tokens: int = setting(40, "max new tokens per simulator turn")
    threads: int = setting(0, "torch CPU threads (0: torch's default)")
    seed: int = setting(0, "random seed of the simulator's samples (the same in both arms) and of the CI")

    def __post_init__(self):
        if self.num_dialogues < 2:
            raise IxmctsError(f"num_dialogues must be at least 2 (a paired test), got {self.num_dialogues}")
        if self.conditions_offset < 0 or self.threads < 0:
            raise IxmctsError("conditions_offset and threads must not be negative")

    def eval_config(self) -> EvalConfig:
        return EvalConfig(max_turns=self.max_turns, closing=True, seed=self.seed,
                          simulator_sampling=replace(SIMULATOR_SAMPLING, max_new_tokens=self.max_new_tokens))


@dataclass
class ScriptedPersuader:
    """A policy that says fixed lines: dialogue ``i``'s ``k``-th persuader turn is ``scripts[i][k]``
    (a script shorter than the talk starts over). :func:`interact` asks it instead of a model."""

    scripts: list[tuple[str, ...]]

    def say(self, dialogue: int, turn: int) -> str:
        script = self.scripts[dialogue]
        return script[turn % len(script)]


def high_donation_scripts(dialogues: list[Dialogue], count: int) -> list[tuple[str, ...]]:
    """The persuader turns of the ``count`` corpus dialogues whose persuadee gave the most
    (``meta.donation``, B6; ties by dialogue id), repeated in that order if there are fewer."""
    ranked = sorted((d for d in dialogues if d.meta.get("donation") is not None and any(t.role == MODEL for t in d.turns)),
                    key=lambda d: (-d.meta["donation"], d.id))
    ranked = [d for d in ranked if d.meta["donation"] > 0]
    if not ranked:
        raise IxmctsError("the corpus has no dialogue with a donation above $0 (B6) to replay")
    top = ranked[:count]
    return [tuple(t.text for t in top[i % len(top)].turns if t.role == MODEL) for i in range(count)]


@dataclass
class Sensitivity:
    """Per-persona donations ($) of both arms and what they say together."""

    replayed: list[float]
    off_task: list[float]
    records: dict[str, list[dict]]

    def summary(self, seed: int = 0) -> dict[str, float]:
        diffs = [a - b for a, b in zip(self.replayed, self.off_task)]
        low, high = bootstrap_ci(diffs, fmean, seed=seed)
        return {"sensitivity/donation_replayed": fmean(self.replayed), "sensitivity/donation_off_task": fmean(self.off_task),
                "sensitivity/difference": fmean(diffs), "sensitivity/difference_ci_low": low,
                "sensitivity/difference_ci_high": high,
                "sensitivity/p_value": paired_permutation_test(self.replayed, self.off_task, seed=seed),
                "sensitivity/dialogues": len(diffs)}


def measure_sensitivity(scenario: Scenario, simulator, conditions: list[Condition], replayed: list[tuple[str, ...]],
                        config: EvalConfig, progress=None) -> Sensitivity:
    """Both arms on the same ``conditions`` (one replayed script per condition)."""
    if len(replayed) != len(conditions):
        raise IxmctsError(f"{len(replayed)} replayed scripts for {len(conditions)} conditions")
    arms = {"replayed": ScriptedPersuader(list(replayed)),
            "off_task": ScriptedPersuader([OFF_TASK] * len(conditions))}
    records = {}
    for k, (name, persuader) in enumerate(arms.items()):  # progress counts both arms' dialogues
        step = (lambda done, total, k=k: progress(k * total + done, 2 * total)) if progress else None
        records[name] = interact(scenario, persuader, simulator, conditions, config, progress=step)
    dollars = {name: [scenario.headline_value(r["engagement"]) for r in rs] for name, rs in records.items()}
    return Sensitivity(dollars["replayed"], dollars["off_task"], records)


def to_markdown(summary: dict, provenance: str = "") -> str:
    s = summary
    verdict = ("responds: the replayed persuader raised the donation (p < 0.05)"
               if s["sensitivity/difference"] > 0 and s["sensitivity/p_value"] < 0.05 else
               "does **not** respond (difference ≤ 0 or p ≥ 0.05): no policy can show an effect through it")
    return (f"{provenance}\n\n" if provenance else "") + (
        "| persuader | mean donation $ |\n|---|---|\n"
        f"| replayed (high-donation corpus dialogues) | {s['sensitivity/donation_replayed']:.3f} |\n"
        f"| off-task / rude script | {s['sensitivity/donation_off_task']:.3f} |\n\n"
        f"Difference {s['sensitivity/difference']:+.3f} $ [95% CI {s['sensitivity/difference_ci_low']:+.3f}, "
        f"{s['sensitivity/difference_ci_high']:+.3f}], paired permutation p = {s['sensitivity/p_value']:.3g}, "
        f"{int(s['sensitivity/dialogues'])} personas: the simulator {verdict}.\n")
