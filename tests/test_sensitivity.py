"""The simulator sensitivity check (issue 17, item 1): scripted persuaders, paired arms."""

import random

from fakes import ScriptedBackend
from ixmcts.data import load_conditions
from ixmcts.data.schema import MODEL, USER, Condition, Dialogue, Turn
from ixmcts.evaluate import EvalConfig
from ixmcts.evaluate.sensitivity import OFF_TASK, high_donation_scripts, measure_sensitivity, to_markdown
from ixmcts.scenarios import get_scenario

CASE = "children"  # a word every replayed line carries and no off-task line does


def persuadee(donates_after_the_case: bool):
    """A fake simulator: small talk, then at the closing question $2 if the persuader made the
    case for the children (when ``donates_after_the_case``), else $0; a fixed $1 otherwise."""

    def script(messages, rng: random.Random):
        if messages[-1]["role"] == "assistant":  # the prefilled closing answer "I will donate $"
            heard = " ".join(m["content"] for m in messages if m["role"] == "user")  # the persuader's lines, as the simulator sees them
            amount = ("2" if CASE in heard else "0") if donates_after_the_case else "1"
            return messages[-1]["content"] + amount
        return rng.choice(["Okay.", "I see, go on.", "Hmm, tell me more."])

    return script


def test_a_responsive_simulator_gives_more_to_the_replayed_persuader():
    sc = get_scenario("p4g")
    conditions = load_conditions("p4g", "sample", 8)
    replayed = [(f"Your money would help the {CASE} of Syria.", f"Even $1 feeds {CASE} for a day.")] * 8
    result = measure_sensitivity(sc, ScriptedBackend(persuadee(True)), conditions, replayed,
                                 EvalConfig(max_turns=6, closing=True, seed=3))
    assert result.replayed == [2.0] * 8 and result.off_task == [0.0] * 8  # $ read by the scenario's parser
    s = result.summary()
    assert s["sensitivity/difference"] == 2.0 and s["sensitivity/dialogues"] == 8
    assert s["sensitivity/p_value"] == 2 / 2**8  # exact: only the observed and the all-swapped labelling are as extreme
    assert "the simulator responds" in to_markdown(s)
    # each arm said its own lines, in order, turn by turn
    replayed_lines = [t["text"] for t in result.records["replayed"][0]["turns"] if t["role"] == MODEL]
    assert replayed_lines == [replayed[0][0], replayed[0][1], replayed[0][0]]
    assert [t["text"] for t in result.records["off_task"][0]["turns"] if t["role"] == MODEL] == list(OFF_TASK[:3])


def test_an_unresponsive_simulator_is_reported_as_such_and_both_arms_share_the_seeds():
    sc = get_scenario("p4g")
    conditions = load_conditions("p4g", "sample", 6)
    backend = ScriptedBackend(persuadee(False))
    seeds = []
    generate = backend.generate
    backend.generate = lambda prompts, n, sampling, seed=0: seeds.append(seed) or generate(prompts, n, sampling, seed)
    result = measure_sensitivity(sc, backend, conditions, [("Please give to Save the Children.",)] * 6,
                                 EvalConfig(max_turns=6, closing=True, seed=3))
    s = result.summary()
    assert s["sensitivity/difference"] == 0.0 and s["sensitivity/p_value"] == 1.0
    assert "does **not** respond" in to_markdown(s)
    assert seeds[: len(seeds) // 2] == seeds[len(seeds) // 2:]  # the two arms face identically seeded simulators


def test_replayed_scripts_are_the_persuader_turns_of_the_highest_donations():
    def dialogue(i, donation):
        turns = [Turn(MODEL, f"persuader {i} line {k}") if k % 2 == 0 else Turn(USER, f"persuadee {i}") for k in range(4)]
        return Dialogue(f"d{i}", "p4g", Condition(f"c{i}", "p4g", "someone"), turns, {"donation": donation})

    corpus = [dialogue(0, 0.0), dialogue(1, 2.0), dialogue(2, 0.5), dialogue(3, 2.0), dialogue(4, None)]
    scripts = high_donation_scripts(corpus, 3)
    assert scripts == [("persuader 1 line 0", "persuader 1 line 2"), ("persuader 3 line 0", "persuader 3 line 2"),
                       ("persuader 2 line 0", "persuader 2 line 2")]
    assert high_donation_scripts(corpus, 5)[4] == scripts[1]  # fewer donors than personas: they repeat in order
