"""How far alignment moved the policy: KL(π_aligned ‖ π_sft) on the evaluation's own policy turns."""

import math
from types import SimpleNamespace

import pytest
import torch

from ixmcts.data.schema import MODEL, USER, Condition, Turn
from ixmcts.evaluate.movement import policy_turns, token_kl
from ixmcts.scenarios import get_scenario


class WordTokenizer:
    """One token per word; the chat template joins the messages' contents."""

    pad_token_id = 0

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, continue_final_message=False):
        return " ".join(m["content"] for m in messages)

    def __call__(self, text, add_special_tokens=False):
        return SimpleNamespace(input_ids=[1] * len(text.split()))


class ConstantLM:
    """The same next-token distribution everywhere (two-token vocabulary)."""

    def __init__(self, probs):
        self.logits = torch.log(torch.tensor(probs))

    def __call__(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.logits.expand(*input_ids.shape, len(self.logits)))


def test_kl_per_token_and_per_response_by_hand():
    """KL([½, ½] ‖ [¼, ¾]) = ½ ln 2 + ½ ln(⅔) = ½ ln(4/3) per position, counted on the response's
    positions only, the end-of-turn choice after its last token included: a 1-word and a 3-word
    response (in one padded batch, behind prompts of different lengths) give 2 + 4 = 6 positions,
    per response 2c and 4c."""
    c = 0.5 * math.log(4 / 3)
    examples = [([{"role": "user", "content": "a long prompt of seven words here"}], "yes"),
                ([{"role": "user", "content": "short"}], "no thank you")]
    kl = token_kl(ConstantLM([0.5, 0.5]), ConstantLM([0.25, 0.75]), WordTokenizer(), examples, batch_size=2)
    assert kl["kl_tokens"] == 6 and kl["kl_responses"] == 2
    assert kl["kl_per_token"] == pytest.approx(c, rel=1e-5)
    assert kl["kl_per_response"] == pytest.approx((2 * c + 4 * c) / 2, rel=1e-5)
    same = token_kl(ConstantLM([0.25, 0.75]), ConstantLM([0.25, 0.75]), WordTokenizer(), examples)
    assert same["kl_per_token"] == 0.0  # a policy that did not move


def test_a_response_cut_at_max_new_tokens_has_no_end_of_turn_position():
    """At a cap of 3 new tokens the 3-word response was cut before it could choose to stop, so it
    counts its 3 positions; the 1-word one ended itself and counts 2 (5 in all)."""
    c = 0.5 * math.log(4 / 3)
    examples = [([{"role": "user", "content": "hello"}], "yes"), ([{"role": "user", "content": "hi"}], "no thank you")]
    kl = token_kl(ConstantLM([0.5, 0.5]), ConstantLM([0.25, 0.75]), WordTokenizer(), examples, max_new_tokens=3)
    assert kl["kl_tokens"] == 5
    assert kl["kl_per_response"] == pytest.approx((2 * c + 3 * c) / 2, rel=1e-5)


def test_kl_does_not_depend_on_batching(tiny_model):
    """Padding never reaches a response's positions: one batch of four equals four batches of one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.pad_token = tok.pad_token or tok.eos_token
    aligned = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    reference = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # a moved policy: its output layer perturbed
        for p in reference.lm_head.parameters():
            p.add_(0.05 * torch.randn_like(p))
    examples = [([{"role": "user", "content": "hi " * n}], "fine " * (5 - n)) for n in (1, 2, 3, 4)]
    one_batch = token_kl(aligned, reference, tok, examples, batch_size=4)
    one_by_one = token_kl(aligned, reference, tok, examples, batch_size=1)
    assert one_batch["kl_per_token"] > 0
    assert one_batch["kl_tokens"] == one_by_one["kl_tokens"]
    assert one_batch["kl_per_token"] == pytest.approx(one_by_one["kl_per_token"], rel=1e-4)
    assert token_kl(aligned, aligned, tok, examples)["kl_per_token"] == pytest.approx(0.0, abs=1e-6)


def test_policy_turns_are_the_prompts_the_policy_saw():
    """Each policy turn is paired with the messages interact() gave the policy: the history with
    the parsed texts, and the raw generation as the response."""
    sc = get_scenario("p4g")
    cond = Condition(id="c1", scenario="p4g", description="A teacher.")
    record = {"condition_id": "c1", "turns": [
        {"role": MODEL, "text": "Hello!", "raw": "Hello! "},
        {"role": USER, "text": "Hi.", "state": None},
        {"role": MODEL, "text": "Would you donate?", "raw": "Would you donate?"},
        {"role": USER, "text": "I will donate $1.", "state": None}]}
    turns = policy_turns(sc, [cond], [record, {**record, "condition_id": "c1"}], max_dialogues=1)
    assert [r for _, r in turns] == ["Hello! ", "Would you donate?"]
    assert turns[0][0] == sc.policy_messages(cond, [])
    assert turns[1][0] == sc.policy_messages(cond, [Turn(MODEL, "Hello!"), Turn(USER, "Hi.")])



def tiny_aligned_spec(tiny_model, folder):
    """The tiny base with two LoRA adapters, SFT then DPO, each with non-zero weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ixmcts.llm.models import ModelSpec

    adapters = []
    for i in range(2):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                               LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
        torch.manual_seed(i)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.add_(0.05 * torch.randn_like(p))
        model.save_pretrained(folder / f"adapter{i}")
        adapters.append(str(folder / f"adapter{i}"))
    return ModelSpec(tiny_model, tuple(adapters))


def test_the_evaluations_loaded_policy_gives_the_same_kl_as_a_fresh_load(tiny_model, tmp_path):
    """evaluate hands the KL step the aligned model its backend already holds and loads the
    reference to match it; KL's definition does not depend on where the model came from, so
    the result equals loading both from their specs."""
    import sys

    from conftest import ROOT
    from ixmcts.llm.backend import TransformersBackend

    sys.path.insert(0, str(ROOT / "entrypoints"))
    from evaluate import movement_from_sft

    spec = tiny_aligned_spec(tiny_model, tmp_path)
    condition = Condition("c0", "p4g", "a persona", {})
    records = [{"condition_id": "c0", "turns": [{"role": MODEL, "text": "Hello there, friend."},
                                                 {"role": USER, "text": "Hi."},
                                                 {"role": MODEL, "text": "Would you give to children?"}]}]
    sc = get_scenario("p4g")
    from_backend = movement_from_sft(sc, spec, [condition], records, 0, TransformersBackend(spec, threads=1).model)
    fresh = movement_from_sft(sc, spec, [condition], records, 0)
    assert from_backend["eval/kl_responses"] == fresh["eval/kl_responses"] == 2
    assert from_backend["eval/kl_tokens"] == fresh["eval/kl_tokens"] > 0
    assert fresh["eval/kl_per_token"] > 0  # the second adapter moved the model
    assert from_backend["eval/kl_per_token"] == pytest.approx(fresh["eval/kl_per_token"], rel=1e-5)
