"""Training stages on the tiny model: data builders, SFT, reward model, D_t, DPO."""

import pytest

from conftest import P4G_REAL
from ixmcts.data import MODEL, USER, load_dialogues
from ixmcts.data.p4g import load_p4g
from ixmcts.data.schema import Condition, Dialogue, Turn
from ixmcts.errors import IxmctsError
from ixmcts.llm.models import ModelSpec, adapter_base, record_base
from ixmcts.scenarios import get_scenario
from ixmcts.scenarios.donation import parse_donation
from ixmcts.train.dpo import DPOStageConfig, train_dpo
from ixmcts.train.preference import PreferenceStageConfig, build_dt, merge_preferences
from ixmcts.train.reward import RewardStageConfig, split_pairs, train_reward
from ixmcts.train.sft import SFTStageConfig, build_sft_examples, train_sft

CTX = [{"role": "system", "content": "You are a persuader."}, {"role": "user", "content": "Hi."}]


def systematic_pairs(n=24):
    return [{"context": CTX, "chosen": f"Children need your help, please donate {i}.", "rejected": f"whatever {i} no"}
            for i in range(n)]


def check_decisions(dialogues):
    p4g = get_scenario("p4g")
    examples = build_sft_examples(p4g, dialogues, "simulator")
    last = {}
    for e in examples:
        last[e["dialogue_id"]] = e
    for d in dialogues:
        answer = last[d.id]["completion"][0]["content"]
        assert "how much" in last[d.id]["prompt"][-1]["content"]  # the closing question
        assert parse_donation(answer) == pytest.approx(min(d.meta["donation"], 2.0), abs=0.005), (d.id, answer)


def test_p4g_simulator_examples_end_with_the_corpus_donation_on_samples():
    check_decisions(load_dialogues("p4g", "sample"))


@pytest.mark.skipif(not (P4G_REAL / "full_dialog.csv").exists(), reason="no ../shared/data/p4g here")
def test_p4g_simulator_examples_end_with_the_corpus_donation_on_the_real_corpus():
    check_decisions(load_p4g(P4G_REAL))


def test_sft_examples_per_role():
    p4g = get_scenario("p4g")
    dialogues = load_dialogues("p4g", "sample")
    policy = build_sft_examples(p4g, dialogues, "policy")
    assert len(policy) == sum(t.role == MODEL for d in dialogues for t in d.turns)
    assert all(e["prompt"][0]["content"] == p4g.policy_system() for e in policy)
    sim = build_sft_examples(p4g, dialogues, "simulator")
    assert len(sim) == sum(t.role == USER for d in dialogues for t in d.turns) + len(dialogues)
    assert all(d.condition.description in e["prompt"][0]["content"] for d in dialogues[:1] for e in sim[:3])
    with pytest.raises(IxmctsError, match="unknown role"):
        build_sft_examples(p4g, dialogues, "critic")


def test_esc_examples_carry_the_cot_and_end_with_the_final_state_then_eoc():
    """The simulator's end example teaches the final state (the dialogue's last annotated
    state, appendix A.1) and then EOC, so its endings can be judged engaged or not (§3.1)."""
    esc = get_scenario("esc", language="en")
    cond = Condition("c", "esc", "I failed my exam.")
    first = "[Shown]\nFeelings: sad\n[Possibly unexpressed]\nFeelings: ashamed of myself"
    final = "[Shown]\nFeelings: sad, ashamed\n[Possibly unexpressed]\nObservations: none\nFeelings: none"
    d = Dialogue("d1", "esc", cond, [Turn(USER, "I failed.", state=first), Turn(MODEL, "I'm sorry.", state=first),
                                     Turn(USER, "I feel ashamed.", state=final), Turn(MODEL, "That is human.", state=final)])
    policy = build_sft_examples(esc, [d], "policy")
    target = policy[0]["completion"][0]["content"]
    assert target.startswith(esc.words.lead_in) and esc.parse_policy(target).reply == "I'm sorry."
    sim = [e["completion"][0]["content"] for e in build_sft_examples(esc, [d], "simulator")]
    assert len(sim) == 3 and sum("EOC" in t for t in sim) == 1
    end = esc.parse_simulator(sim[-1])
    assert end.ended and end.state == final and esc.engagement(end, []) == 1.0
    assert esc.parse_simulator(sim[0]).state == first
    # a corpus without annotated states cannot teach an ending: the error says to annotate it
    bare = Dialogue("d2", "esc", cond, [Turn(USER, "I failed."), Turn(MODEL, "I'm sorry.")])
    with pytest.raises(IxmctsError, match="d2.*annotate"):
        build_sft_examples(esc, [bare], "simulator")


def test_sft_loss_decreases_and_adapter_records_its_base(tmp_path, tiny_model):
    examples = build_sft_examples(get_scenario("p4g"), load_dialogues("p4g", "sample"), "policy")[:64]
    out = str(tmp_path / "sft")
    curves = train_sft(ModelSpec("tiny"), examples, SFTStageConfig(lr=3e-3, max_steps=25, max_length=512), out)
    losses = [v for _, v in curves["loss"]]
    assert len(losses) == 25 and sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    record_base(out, "tiny")
    assert adapter_base(out) == "tiny"
    with pytest.raises(IxmctsError, match="trained on base model 'tiny'"):
        ModelSpec("smollm2-135m-instruct", (out,)).check()


def test_reward_model_learns_a_systematic_preference(tmp_path, tiny_model):
    result = train_reward(ModelSpec("tiny"), systematic_pairs(), RewardStageConfig(lr=2e-3, max_steps=30, max_length=256),
                          str(tmp_path / "rm"))
    assert result["val_pairs"] == 5 and result["train_pairs"] == 19
    assert result["val"]["accuracy"] > 0.5 and result["val"]["margin"] > 0


def test_reward_scores_of_shared_contexts_equal_scoring_each_text_alone(tmp_path, tiny_model):
    """Best-of-N scores N candidates of one context; the scorer runs the context once and
    extends it by each candidate. Expected: what the sequence-classification model outputs for
    each full text on its own (batch 1, no pads), the definition of the reward r(context,
    response); a text over max_length keeps its last max_length tokens (the response)."""
    import torch

    from ixmcts.train.reward import RewardScorer

    train_reward(ModelSpec("tiny"), systematic_pairs(8), RewardStageConfig(lr=2e-3, max_steps=2, max_length=256),
                 str(tmp_path / "rm"))
    scorer = RewardScorer(ModelSpec("tiny"), str(tmp_path / "rm"), max_length=40)
    other = [{"role": "system", "content": "You are a persuader."}, {"role": "user", "content": "No thanks, bye."}]
    long = CTX + [{"role": "assistant", "content": "word " * 60}, {"role": "user", "content": "ok"}]
    contexts = [CTX, CTX, CTX, other, long, long, CTX]
    responses = ["Please donate.", "Children need help", "Please donate.", "Bye then.", "Donate now.", "Thanks!", "Hi"]
    got = scorer.score(contexts, responses)

    def alone(context, response):
        text = scorer.tokenizer.apply_chat_template(context + [{"role": "assistant", "content": response}], tokenize=False)
        ids = scorer.tokenizer(text, add_special_tokens=False).input_ids[-40:]
        with torch.inference_mode():
            return scorer.model(input_ids=torch.tensor([ids])).logits[0, 0].item()

    want = [alone(c, r) for c, r in zip(contexts, responses)]
    assert got == pytest.approx(want, abs=1e-4)
    assert got[0] == pytest.approx(got[2], abs=1e-6) and len(set(round(x, 6) for x in want)) > 3


def test_reward_split_and_empty_dp():
    train, val = split_pairs(systematic_pairs(10), 0.2, seed=0)
    assert len(train) == 8 and len(val) == 2 and not {id(p) for p in train} & {id(p) for p in val}
    with pytest.raises(IxmctsError, match="D_p is empty"):
        split_pairs([], 0.2, 0)


def test_dpo_reward_margins_increase(tmp_path, tiny_model):
    curves = train_dpo(ModelSpec("tiny"), systematic_pairs(16), DPOStageConfig(lr=2e-3, max_steps=12, max_length=256),
                       str(tmp_path / "dpo"))
    margins = [v for _, v in curves["rewards/margins"]]
    assert margins[0] == pytest.approx(0.0, abs=1e-4)  # the policy starts as its own reference
    assert margins[-1] > margins[0] + 0.5
    with pytest.raises(IxmctsError, match="D is empty"):
        train_dpo(ModelSpec("tiny"), [], DPOStageConfig(), str(tmp_path / "none"))


class FixedPolicy:
    def generate(self, prompts, n, sampling, seed=0):
        return [[f"reply {k}" for k in range(n)] for _ in prompts]


class LengthScorer:
    def score(self, contexts, responses):
        return [float(r.split()[-1]) for r in responses]


def test_dt_keeps_best_and_worst_above_the_margin_and_d_keeps_provenance():
    cfg = PreferenceStageConfig(n=3, margin=0.5, max_new_tokens=8)
    dt = build_dt(FixedPolicy(), LengthScorer(), [CTX, CTX], cfg, "p4g")
    assert len(dt) == 2 and all(p["chosen"] == "reply 2" and p["rejected"] == "reply 0" for p in dt)
    assert build_dt(FixedPolicy(), LengthScorer(), [CTX], PreferenceStageConfig(n=3, margin=5.0), "p4g") == []
    with pytest.raises(IxmctsError, match="at least 2"):
        build_dt(FixedPolicy(), LengthScorer(), [CTX], PreferenceStageConfig(n=1), "p4g")
    d = merge_preferences([{"context": CTX, "chosen": "a", "rejected": "b"}], dt)
    assert [p["source"] for p in d] == ["search", "rm", "rm"]


def test_an_over_long_sft_example_loses_its_oldest_turns_not_its_persona(tiny_model):
    """max_length (TrainingSettings): a long dialogue's end example keeps the system message
    (the simulator's persona), the closing question and the donation, and as many of the latest
    turns as fit; one that fits is left alone."""
    from transformers import AutoTokenizer

    from ixmcts.train.sft import fit_to_length

    tok = AutoTokenizer.from_pretrained(tiny_model)

    def length(messages):
        return len(tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False).input_ids)

    system = {"role": "system", "content": "You are the persuadee. You are a 34-year-old teacher."}
    turns = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i}: " + "words " * 30} for i in range(12)]
    question = {"role": "user", "content": "Final question: how much of your $2 will you donate?"}
    answer = [{"role": "assistant", "content": "I will donate $1.50."}]
    prompt = [system, *turns, question]
    budget = length([system, *turns[-4:], question, *answer])  # room for exactly the last 4 turns
    fitted = fit_to_length(tok, prompt, answer, budget)
    assert fitted == [system, *turns[-4:], question]
    assert fit_to_length(tok, prompt, answer, length(prompt + answer)) == prompt
    # nothing but the persona and the question fits: those stay (TRL's keep_end cuts the rest)
    assert fit_to_length(tok, prompt, answer, 10) == [system, question]


def test_reward_accuracy_interval_is_wilsons_and_the_test_against_chance_is_exact():
    """Issue 17 asks for the reward model's held-out accuracy with a CI. Expected values from
    the definitions: Wilson's score interval (z = 1.95996, the 97.5% normal quantile) and the
    exact two-sided binomial test at 0.5: 3 of 4 right has P(X ≥ 3) + P(X ≤ 1) = 5/16 + 5/16."""
    import math

    from ixmcts.train.reward import accuracy_interval

    z, n, p = 1.959963984540054, 4, 0.75
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    got = accuracy_interval(3, 4)
    assert got["accuracy_ci_low"] == pytest.approx(centre - half) and got["accuracy_ci_high"] == pytest.approx(centre + half)
    assert got["accuracy_p_vs_chance"] == pytest.approx(10 / 16)
    assert accuracy_interval(5, 10)["accuracy_p_vs_chance"] == pytest.approx(1.0)  # exactly chance
    assert accuracy_interval(10, 10)["accuracy_p_vs_chance"] == pytest.approx(2 / 2**10)
    assert all(math.isnan(v) for v in accuracy_interval(0, 0).values())
