"""Batched interactions and Best-of-N selection with scripted models."""

import pytest

from fakes import EXPECTED_REWARD, ScriptedBackend
from ixmcts.data import load_conditions
from ixmcts.errors import IxmctsError
from ixmcts.evaluate import AdviceChooser, EvalConfig, RewardChooser, interact, summarize
from ixmcts.scenarios import get_scenario


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_interactions_run_batched_to_an_end_or_the_turn_limit(scenario):
    sc = get_scenario(scenario, language="en")
    backend = ScriptedBackend()
    conditions = load_conditions(scenario, "sample", 6)
    records = interact(sc, backend, backend, conditions, EvalConfig(max_turns=8, seed=1))
    assert [r["condition_id"] for r in records] == [c.id for c in conditions]
    for r in records:
        assert r["num_turns"] <= 8 and r["turns"][0]["role"] == ("user" if sc.user_speaks_first else "model")
        assert all(a["role"] != b["role"] for a, b in zip(r["turns"], r["turns"][1:]))
        last = r["turns"][-1]
        if r["ended"]:  # the user ended it; the reward is the paper's engagement of that ending (§3.1)
            assert last["role"] == "user" and r["engagement"] == EXPECTED_REWARD[last["raw"]] and not r["hit_limit"]
        else:  # only the turn cap stops a dialogue the user did not end, and it earns nothing
            assert r["hit_limit"] and r["num_turns"] == 8 and r["engagement"] == 0.0
    assert any(r["ended"] for r in records) and any(r["hit_limit"] for r in records)
    assert max(backend.batches) == 6  # every active dialogue in one call per round and role
    again = interact(sc, ScriptedBackend(), ScriptedBackend(), conditions, EvalConfig(max_turns=8, seed=1))
    assert again == records  # same conditions, same seeds → same interactions
    assert summarize(records, scenario)["eval/interactions"] == 6


@pytest.mark.parametrize("scenario,max_turns", [("p4g", 4), ("p4g", 5), ("esc", 4), ("esc", 5), ("esc", 12)])
def test_closing_question_at_the_turn_limit_ends_every_dialogue(scenario, max_turns):
    """With ``closing``, the user's last turn under the cap is the closing question's answer,
    whoever speaks first and whether the cap is odd or even."""
    sc = get_scenario(scenario, language="en")
    records = interact(sc, ScriptedBackend(), ScriptedBackend(), load_conditions(scenario, "sample", 8),
                       EvalConfig(max_turns=max_turns, closing=True))
    assert all(r["ended"] and r["num_turns"] <= max_turns for r in records)


class ByLength:
    def score(self, contexts, responses):
        return [float(len(r)) for r in responses]


def test_bon_picks_the_highest_scoring_candidate():
    chooser = RewardChooser(ByLength())
    assert chooser.choose([[], []], [["a", "ccc", "bb"], ["zz", "y", "zz"]]) == [1, 0]  # first on ties


class Advisor:
    def generate(self, prompts, n, sampling, seed=0):
        return [["Tell them how a donation feeds hungry children."] for _ in prompts]


def test_bon_advice_picks_the_candidate_closest_to_the_advice():
    chooser = AdviceChooser(Advisor(), "strategy", "p4g")
    cands = [["The weather is nice today.", "Your donation can feed hungry children.", "I like football."]]
    assert chooser.choose([[{"role": "system", "content": "x"}]], cands) == [1]
    with pytest.raises(IxmctsError, match="unknown BoN reward"):
        AdviceChooser(Advisor(), "vibes", "p4g")


def test_bon_records_which_candidate_was_chosen():
    sc = get_scenario("p4g")
    records = interact(sc, ScriptedBackend(), ScriptedBackend(), load_conditions("p4g", "sample", 3),
                       EvalConfig(max_turns=6, n=3), chooser=RewardChooser(ByLength()))
    assert all(len(r["chosen"]) == sum(t["role"] == "model" for t in r["turns"]) for r in records)
    with pytest.raises(IxmctsError, match="needs a chooser"):
        interact(sc, ScriptedBackend(), ScriptedBackend(), [], EvalConfig(n=3))


def test_batched_evaluation_produces_the_dialogues_of_one_completion_at_a_time(tiny_model):
    """Issue 16: the evaluation as shipped (all dialogues in one running batch that newcomers
    join as rows finish, n candidates sharing a prefill, KV reuse of the conversation so far)
    writes the dialogues, advice and choices that one completion at a time writes, for the
    plain policy and for Best-of-N with an advisor."""
    from ixmcts.llm import Sampling, TransformersBackend

    sc = get_scenario("p4g")
    conditions = load_conditions("p4g", "sample", 3)
    sampling = dict(policy_sampling=Sampling(max_new_tokens=6), simulator_sampling=Sampling(temperature=0.3, max_new_tokens=6))
    shipped = TransformersBackend(tiny_model, batch_size=2, threads=1)  # room for 2 of the 3 dialogues: the third waits
    alone = TransformersBackend(tiny_model, batch_size=1, threads=1, prefix_cache_mb=0)  # one prompt at a time, no reuse
    for n in (1, 2):
        config = EvalConfig(max_turns=4, n=n, seed=2, **sampling)
        runs = []
        for backend in (shipped, alone):
            chooser = AdviceChooser(backend, "strategy", "p4g", max_new_tokens=6) if n > 1 else None
            runs.append(interact(sc, backend, backend, conditions, config, chooser=chooser))
        assert runs[0] == runs[1]
    assert shipped.prefix_cache.reused_tokens > 0


def test_dialogues_with_identical_prompts_sample_their_own_turns_and_do_not_depend_on_each_other():
    """P4G's persuader opens without seeing the persona, so every dialogue's first policy
    prompt is the same; with one seed per round every dialogue opened with one sampled
    utterance and n dialogues carried one draw of it (issue 17 found all 128 SFT and all 128
    Aligned dialogues opening identically). Each dialogue must sample its own opening, and a
    dialogue must not depend on which other conditions are evaluated beside it."""
    sc = get_scenario("p4g")
    openings = [f"Opening number {k}." for k in range(1000)]

    def script(messages, rng):
        if "You are a persuader" in messages[0]["content"]:
            return rng.choice(openings)
        return "Hello. [END]"

    conditions = load_conditions("p4g", "sample", 8)
    records = interact(sc, ScriptedBackend(script), ScriptedBackend(script), conditions, EvalConfig(max_turns=4))
    first = [r["turns"][0]["text"] for r in records]
    assert len({sc.policy_messages(c, [])[0]["content"] for c in conditions}) == 1  # the prompts are identical
    assert len(set(first)) >= 7  # 8 draws from 1,000 openings: a repeat has probability < 3%, two repeats far less
    alone = interact(sc, ScriptedBackend(script), ScriptedBackend(script), conditions[3:5], EvalConfig(max_turns=4))
    assert alone == records[3:5]
