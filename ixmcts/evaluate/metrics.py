"""Table 2's numbers from interaction records, with 95% bootstrap CIs and a paired test.

A record is one interaction: ``{"condition_id", "engagement", "num_turns", "ended", "hit_limit", ...}``
where ``engagement`` is the scenario's end-of-dialogue engagement (ESC 1/0; P4G donation/$2)
and ``num_turns`` counts utterances of both sides, as the paper's #turn does.
"""

from __future__ import annotations

from statistics import fmean

from ..scenarios import SCENARIOS


def engaged(record: dict, scenario: str) -> bool:
    """An engaging interaction (``Scenario.engaged``: ESC the help-seeker fully expressed
    itself; P4G a donation)."""
    return SCENARIOS[scenario].engaged(record["engagement"])


def headline(records: list[dict], scenario: str) -> float:
    """The scenario's Table 2 number (``Scenario.headline_value`` averaged: ESC engaged rate,
    P4G mean donation in dollars)."""
    return fmean(SCENARIOS[scenario].headline_value(r["engagement"]) for r in records)


def turns_of_engaging(records: list[dict], scenario: str) -> float:
    turns = [r["num_turns"] for r in records if engaged(r, scenario)]
    return fmean(turns) if turns else float("nan")


def bootstrap_ci(items: list, statistic, samples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(items)`` (``scipy.stats.bootstrap`` resampling the
    items). A single item gives the degenerate interval (v, v); a resample on which the statistic
    is undefined (NaN) makes the interval NaN rather than silently narrower."""
    if not items:
        return float("nan"), float("nan")
    if len(items) == 1:
        v = statistic(items)
        return v, v
    import numpy as np
    from scipy.stats import bootstrap

    def on_indices(idx):
        return statistic([items[i] for i in idx])

    result = bootstrap((np.arange(len(items)),), on_indices, vectorized=False, n_resamples=samples,
                       confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_permutation_test(a: list[float], b: list[float], samples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value for mean(a − b) ≠ 0 on paired observations (``scipy.stats.permutation_test``
    swapping the two values within pairs; exact over all 2^n swaps when that is at most ``samples``)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired test needs two equally long, non-empty lists")
    import numpy as np
    from scipy.stats import permutation_test

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.allclose(x, y):
        return 1.0  # every swap gives the observed statistic

    def mean_difference(u, v, axis=-1):
        return np.mean(u - v, axis=axis)

    result = permutation_test((x, y), mean_difference, permutation_type="samples", vectorized=True, n_resamples=samples,
                              alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def summarize(records: list[dict], scenario: str, seed: int = 0) -> dict:
    """The ``eval/*`` metrics of one method."""
    key = SCENARIOS[scenario].headline_metric
    stat = lambda rs: headline(rs, scenario)  # noqa: E731
    turns = lambda rs: turns_of_engaging(rs, scenario)  # noqa: E731
    lo, hi = bootstrap_ci(records, stat, seed=seed)
    # the turns of engaging interactions: resampled among those (a resample without one has no mean)
    tlo, thi = bootstrap_ci([r for r in records if engaged(r, scenario)], turns, seed=seed)
    return {f"eval/{key}": stat(records), f"eval/{key}_ci_low": lo, f"eval/{key}_ci_high": hi,
            "eval/turns_mean": turns(records), "eval/turns_mean_ci_low": tlo, "eval/turns_mean_ci_high": thi,
            "eval/hit_turn_limit": fmean(bool(r["hit_limit"]) for r in records), "eval/interactions": len(records)}
