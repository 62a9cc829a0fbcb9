"""The `evaluate` stage's parameters: 128 interactions with the user simulator on held-out
conditions (§4.6), for one method (SFT, Best-of-N, Aligned)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import IxmctsError
from ..llm import BACKENDS
from ..llm.backend import POLICY_SAMPLING, SIMULATOR_SAMPLING
from ..options import setting
from ..scenarios import LANGUAGES
from .interact import EvalConfig


@dataclass
class EvaluateParams:
    """Defaults: the paper's; the interaction cap, the conditions and the prompt language it
    used per scenario are ``profiles.paper_settings``'."""

    n: int = setting(3, "N: candidates per turn for Best-of-N (paper 3); the other methods sample one")
    simulator_model: str = setting("", "prompted simulator base model when no simulator run is given (empty: the policy's base)")
    advisor_model: str = setting("", "advisor LLM for strategy/knowledge Best-of-N (empty: the policy's base)")
    conditions: str = setting("sample", "held-out user conditions: sample | p4g: synth, corpus | a PsyQA .json or .jsonl path")
    conditions_offset: int = setting(16, "skip this many conditions of the pool: the searched ones (held-out evaluation)")
    num_interactions: int = setting(128, "interactions (dialogues), one per held-out condition (paper 128)")
    data_dir: str = setting("", "P4G corpus folder for conditions=synth|corpus")
    max_turns: int = setting(0, "utterances of both sides before the talk is cut; 0 = the scenario's (paper: ESC 50, P4G 30)")
    closing: bool = setting(False, "ask the closing question at the turn limit (not in the paper)")
    max_new_tokens: int = setting(POLICY_SAMPLING.max_new_tokens, "max new tokens per generated turn (paper 512)")
    language: str = setting("", "ESC prompt language: zh (the paper's) | en (empty: the scenario's)", choices=LANGUAGES)
    threads: int = setting(0, "torch CPU threads (0: torch's default)")
    backend: str = setting("transformers", "generation backend: transformers | vllm (CUDA)", choices=BACKENDS)
    seed: int = setting(0, "random seed (the same for every method, so all face identically seeded simulators)")
    kl_dialogues: int = setting(32, "aligned: the first this many dialogues' policy turns measure the KL from the SFT "
                                    "reference (0: none)")

    def __post_init__(self):
        if self.num_interactions < 1:
            raise IxmctsError(f"num_interactions must be at least 1, got {self.num_interactions}")
        if self.conditions_offset < 0:
            raise IxmctsError(f"conditions_offset must be at least 0, got {self.conditions_offset}")
        if self.kl_dialogues < 0:
            raise IxmctsError(f"kl_dialogues must be at least 0, got {self.kl_dialogues}")
        if self.threads < 0:  # before a model loads, not at torch.set_num_threads after it
            raise IxmctsError(f"threads must be at least 0, got {self.threads}")

    def eval_config(self, bon: bool, default_max_turns: int) -> EvalConfig:
        return EvalConfig(max_turns=self.max_turns or default_max_turns, n=self.n if bon else 1, closing=self.closing,
                          seed=self.seed, policy_sampling=replace(POLICY_SAMPLING, max_new_tokens=self.max_new_tokens),
                          simulator_sampling=replace(SIMULATOR_SAMPLING, max_new_tokens=self.max_new_tokens))
