"""D_t: preference pairs on the policy's own SFT contexts, ranked by the reward model,
and D = D_p ∪ D_t with each pair's provenance (``source: search | rm``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import IxmctsError
from ..llm.backend import POLICY_SAMPLING, Sampling
from ..options import setting


@dataclass
class PreferenceStageConfig:
    """D_t (§3.3): reward-ranked samples of the SFT policy on its own training contexts."""

    num_contexts: int = setting(1000, "SFT contexts D_t samples on (paper 1,000)")
    n: int = setting(4, "responses sampled per context (paper 4)")
    margin: float = setting(0.0, "minimum reward gap between the best and the worst response")
    max_new_tokens: int = setting(POLICY_SAMPLING.max_new_tokens, "max new tokens per response (paper 512)")
    threads: int = setting(0, "torch CPU threads (0: torch's default)")
    seed: int = setting(0, "random seed")


def build_dt(policy, scorer, contexts: list[list[dict]], config: PreferenceStageConfig, scenario: str) -> list[dict]:
    """Sample ``n`` responses per context, keep (best, worst) by reward when the gap exceeds the margin."""
    if config.n < 2:
        raise IxmctsError(f"n must be at least 2 to form a pair, got {config.n}")
    sampling = Sampling(**{**POLICY_SAMPLING.to_dict(), "max_new_tokens": config.max_new_tokens})
    samples = policy.generate(contexts, config.n, sampling, seed=config.seed)
    flat_ctx = [c for c, s in zip(contexts, samples) for _ in s]
    flat = [r for s in samples for r in s]
    scores = scorer.score(flat_ctx, flat)
    pairs = []
    for i, ctx in enumerate(contexts):
        scored = sorted(zip(scores[i * config.n : (i + 1) * config.n], samples[i]), key=lambda t: t[0])
        (low, worst), (high, best) = scored[0], scored[-1]
        if high - low > config.margin and best != worst:
            pairs.append({"scenario": scenario, "context": ctx, "chosen": best, "rejected": worst,
                          "chosen_reward": high, "rejected_reward": low, "source": "rm"})
    return pairs


def merge_preferences(dp: list[dict], dt: list[dict]) -> list[dict]:
    """D = D_p ∪ D_t, each pair tagged with where it came from."""
    return [{**p, "source": "search"} for p in dp] + [{**p, "source": "rm"} for p in dt]
