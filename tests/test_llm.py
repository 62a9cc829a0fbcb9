import json
from pathlib import Path

import pytest
import torch

from ixmcts.errors import IxmctsError
from ixmcts.llm import Sampling, TransformersBackend, resolve_model
from ixmcts.llm.backend import _frequency_penalty_processor

CHAT = [{"role": "system", "content": "You are a persuader."}, {"role": "user", "content": "Hi."}]


@pytest.fixture(scope="module")
def backend(tiny_model):
    return TransformersBackend(tiny_model, batch_size=2, threads=1)


def test_n_samples_per_prompt_in_input_order(backend):
    prompts = [CHAT, CHAT + [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tell me more about it please."}], CHAT]
    out = backend.generate(prompts, 3, Sampling(max_new_tokens=8), seed=5)
    assert [len(o) for o in out] == [3, 3, 3] and all(isinstance(t, str) for o in out for t in o)
    assert backend.stats.sequences == 9 and 0 < backend.stats.generated_tokens <= 9 * 8


def test_seeded_sampling_is_reproducible(backend):
    a = backend.generate([CHAT], 4, Sampling(max_new_tokens=12), seed=1)
    b = backend.generate([CHAT], 4, Sampling(max_new_tokens=12), seed=1)
    c = backend.generate([CHAT], 4, Sampling(max_new_tokens=12), seed=2)
    assert a == b and a != c


def test_trailing_assistant_message_is_continued(backend):
    prompt = CHAT + [{"role": "assistant", "content": "I will donate $"}]
    assert "continue" not in backend.render(prompt) and backend.render(prompt).endswith("I will donate $")
    (outs,) = backend.generate([prompt], 2, Sampling(max_new_tokens=4), seed=0)
    assert all(o.startswith("I will donate $") for o in outs)


def test_frequency_penalty_subtracts_counts_of_generated_tokens():
    proc = _frequency_penalty_processor(1.5, prompt_len=2)
    ids = torch.tensor([[7, 7, 3, 3, 3, 1]])  # prompt 7 7; generated 3 3 3 1
    scores = torch.zeros(1, 10)
    out = proc(ids, scores)
    assert out[0, 3] == -4.5 and out[0, 1] == -1.5 and out[0, 7] == 0.0


def test_registry_resolves_folders_and_rejects_missing_ones(tiny_model, tmp_path):
    assert resolve_model(tiny_model) == tiny_model
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # hub id, lazily
    with pytest.raises(IxmctsError, match="model folder not found"):
        resolve_model("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IxmctsError, match="config.json"):
        resolve_model(str(tmp_path / "empty"))


@pytest.mark.slow
def test_embedded_default_converts_with_the_original_pretokenizer():
    from transformers import AutoTokenizer

    path = resolve_model("smollm2-135m-instruct")
    assert resolve_model("smollm2-135m-instruct") == path  # converted once
    cfg = json.loads((Path(path) / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    tok = AutoTokenizer.from_pretrained(path)
    digits = tok("2024", add_special_tokens=False).input_ids
    assert len(digits) == 4  # SmolLM2 splits digits individually
    assert tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True).endswith("<|im_start|>assistant\n")
    out = TransformersBackend(path, threads=1).generate([CHAT], 2, Sampling(max_new_tokens=6), seed=0)
    assert len(out[0]) == 2 and all(out[0])
