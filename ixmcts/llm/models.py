"""A model = a registry base model plus LoRA adapters merged in order.

The SFT policy is ``base + [sft]``; the aligned policy is ``base + [sft, dpo]`` (DPO trains
its adapter on the merged SFT policy, which is also its reference). Adapters record the
registry name of the base they were trained on (``ixmcts_base.txt``) so a mismatch is caught.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import IxmctsError
from .registry import resolve_model

BASE_FILE = "ixmcts_base.txt"


@dataclass(frozen=True)
class ModelSpec:
    base: str  # registry name, local folder or hub id
    adapters: tuple[str, ...] = field(default_factory=tuple)  # local LoRA adapter folders, merged in order

    def digest(self) -> str:
        """Identifies the weights: the base's name and every adapter's tensors, in order."""
        import hashlib

        h = hashlib.sha256(self.base.encode())
        for adapter in self.adapters:
            for f in sorted(Path(adapter).rglob("*.safetensors")):
                h.update(f.read_bytes())
        return h.hexdigest()[:16]

    def check(self) -> None:
        for a in self.adapters:
            recorded = adapter_base(a)
            if recorded is not None and recorded != self.base:
                raise IxmctsError(f"adapter {a} was trained on base model {recorded!r}, not {self.base!r}")


def adapter_base(adapter_dir: str | Path) -> str | None:
    f = Path(adapter_dir) / BASE_FILE
    return f.read_text().strip() if f.exists() else None


def record_base(adapter_dir: str | Path, base: str) -> None:
    (Path(adapter_dir) / BASE_FILE).write_text(base + "\n")


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(spec.base))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(spec: ModelSpec, dtype=None, device: str = "cpu"):
    """The base model with every adapter merged in, ready for generation or further training."""
    import torch
    from transformers import AutoModelForCausalLM

    spec.check()
    model = AutoModelForCausalLM.from_pretrained(resolve_model(spec.base), dtype=dtype or torch.float32).to(device)
    if spec.adapters:
        from peft import PeftModel

        for adapter in spec.adapters:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval()
