"""Table 2's numbers from interaction records, with 95% bootstrap CIs and a paired test.

A record is one interaction: ``{"condition_id", "engagement", "num_turns", "ended", "hit_limit", ...}``
where ``engagement`` is the scenario's end-of-dialogue engagement (ESC 1/0; P4G donation/$2)
and ``num_turns`` counts utterances of both sides, as the paper's #turn does.
"""

from __future__ import annotations

import random
from statistics import fmean

from ..scenarios.donation import MAX_DONATION


def engaged(record: dict, scenario: str) -> bool:
    """An engaging interaction: ESC — the help-seeker fully expressed itself; P4G — a donation."""
    return record["engagement"] >= 1.0 if scenario == "esc" else record["engagement"] > 0.0


def headline(records: list[dict], scenario: str) -> float:
    """ESC: engaged rate; P4G: mean donation in dollars."""
    if scenario == "esc":
        return fmean(engaged(r, scenario) for r in records)
    return fmean(r["engagement"] * MAX_DONATION for r in records)


def turns_of_engaging(records: list[dict], scenario: str) -> float:
    turns = [r["num_turns"] for r in records if engaged(r, scenario)]
    return fmean(turns) if turns else float("nan")


def bootstrap_ci(records: list, statistic, samples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(records)``."""
    if not records:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    values = []
    for _ in range(samples):
        v = statistic([records[rng.randrange(len(records))] for _ in records])
        if v == v:  # drop NaN resamples (e.g. no engaging interaction drawn)
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    values.sort()
    lo = values[int((1 - level) / 2 * (len(values) - 1))]
    hi = values[int((1 + level) / 2 * (len(values) - 1))]
    return lo, hi


def paired_permutation_test(a: list[float], b: list[float], samples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value for mean(a − b) ≠ 0 on paired observations (random sign flips)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired test needs two equally long, non-empty lists")
    diffs = [x - y for x, y in zip(a, b)]
    observed = abs(sum(diffs))
    if observed == 0:
        return 1.0
    rng = random.Random(seed)
    hits = sum(abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12 for _ in range(samples))
    return (hits + 1) / (samples + 1)


def summarize(records: list[dict], scenario: str, seed: int = 0) -> dict:
    """The ``eval/*`` metrics of one method."""
    key = "engaged_rate" if scenario == "esc" else "donation_mean"
    stat = lambda rs: headline(rs, scenario)  # noqa: E731
    turns = lambda rs: turns_of_engaging(rs, scenario)  # noqa: E731
    lo, hi = bootstrap_ci(records, stat, seed=seed)
    tlo, thi = bootstrap_ci(records, turns, seed=seed)
    return {f"eval/{key}": stat(records), f"eval/{key}_ci_low": lo, f"eval/{key}_ci_high": hi,
            "eval/turns_mean": turns(records), "eval/turns_mean_ci_low": tlo, "eval/turns_mean_ci_high": thi,
            "eval/hit_turn_limit": fmean(bool(r["hit_limit"]) for r in records), "eval/interactions": len(records)}
