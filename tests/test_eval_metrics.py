"""Evaluation statistics on hand-made interaction records."""

import math

import pytest

from ixmcts.evaluate.metrics import bootstrap_ci, headline, paired_permutation_test, summarize, turns_of_engaging


def rec(engagement, turns, hit_limit=False):
    return {"engagement": engagement, "num_turns": turns, "hit_limit": hit_limit}


ESC = [rec(1.0, 40), rec(0.0, 50, True), rec(1.0, 30), rec(0.0, 12)]
P4G = [rec(0.5, 18), rec(0.0, 20), rec(1.0, 16), rec(0.25, 10), rec(0.0, 30, True)]


def test_esc_engaged_rate_and_turns_of_engaging_interactions():
    assert headline(ESC, "esc") == 0.5
    assert turns_of_engaging(ESC, "esc") == 35.0  # (40 + 30) / 2, only the engaged ones
    m = summarize(ESC, "esc")
    assert m["eval/engaged_rate"] == 0.5 and m["eval/hit_turn_limit"] == 0.25 and m["eval/interactions"] == 4


def test_p4g_donation_mean_and_turns_of_donating_interactions():
    assert headline(P4G, "p4g") == pytest.approx((1.0 + 0 + 2.0 + 0.5 + 0) / 5)  # dollars
    assert turns_of_engaging(P4G, "p4g") == pytest.approx((18 + 16 + 10) / 3)
    assert math.isnan(turns_of_engaging([rec(0.0, 9)], "p4g"))


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_samples():
    small = [rec(1.0 if i % 3 else 0.0, 10) for i in range(30)]
    large = small * 10
    stat = lambda rs: headline(rs, "esc")  # noqa: E731
    lo, hi = bootstrap_ci(small, stat)
    lo2, hi2 = bootstrap_ci(large, stat)
    assert lo <= stat(small) <= hi and lo2 <= stat(large) <= hi2
    assert (hi2 - lo2) < 0.5 * (hi - lo)


def test_paired_test_p_is_one_for_identical_methods_and_small_for_a_large_effect():
    a = [0.1 * (i % 7) for i in range(40)]
    assert paired_permutation_test(a, list(a)) == 1.0
    b = [x + 1.0 for x in a]
    assert paired_permutation_test(b, a) < 0.01
    noisy = [x + (0.05 if i % 2 else -0.05) for i, x in enumerate(a)]
    assert paired_permutation_test(noisy, a) > 0.5


def test_paired_permutation_test_is_exact_for_small_n():
    # differences (1, 2, 3): of the 2^3 = 8 within-pair swaps (sign flips), |sum| >= 6 for
    # +++ and --- only, so the exact two-sided p-value is 2/8.
    assert paired_permutation_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == pytest.approx(0.25)
    # differences (1, -1, 2, 0), observed sum 2; the 0 flips freely, and the 8 sign patterns of
    # (1, -1, 2) sum to 2, -2, 4, 0, 0, -4, 2, -2: |sum| >= 2 for 6 of 8, so p = 0.75.
    assert paired_permutation_test([1.0, 0.0, 2.0, 5.0], [0.0, 1.0, 0.0, 5.0]) == pytest.approx(0.75)


def test_bootstrap_ci_hand_computed_cases():
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    # two values 0 and 1: resample means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles of 2000 resamples are 0 and 1
    assert bootstrap_ci([0.0, 1.0], mean) == (0.0, 1.0)
    assert bootstrap_ci([7.0, 7.0, 7.0], mean) == (7.0, 7.0)  # no spread, no width
    assert bootstrap_ci([4.0], mean) == (4.0, 4.0)
    assert all(math.isnan(x) for x in bootstrap_ci([], mean))
    assert bootstrap_ci(list(range(20)), mean, seed=3) == bootstrap_ci(list(range(20)), mean, seed=3)  # seeded


def test_turns_ci_resamples_the_engaging_interactions():
    m = summarize(P4G, "p4g")
    assert m["eval/turns_mean_ci_low"] <= m["eval/turns_mean"] <= m["eval/turns_mean_ci_high"]
    assert 10 <= m["eval/turns_mean_ci_low"] and m["eval/turns_mean_ci_high"] <= 18  # within the donating ones' turns
    assert math.isnan(summarize([rec(0.0, 9), rec(0.0, 3)], "p4g")["eval/turns_mean_ci_low"])


def test_fleiss_kappa_agrees_with_statsmodels():
    import random

    from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_kappa

    from ixmcts.human.report import fleiss_kappa

    rng = random.Random(0)
    for raters, categories in ((2, 3), (3, 3), (5, 2)):
        for _ in range(5):
            counts = []
            for _ in range(rng.randint(3, 40)):
                labels = [rng.randrange(categories) for _ in range(raters)]
                counts.append([labels.count(c) for c in range(categories)])
            if sum(map(sum, counts)) == max(sum(col) for col in zip(*counts)):
                continue  # one category only: kappa undefined in both
            assert fleiss_kappa(counts) == pytest.approx(statsmodels_kappa(counts, method="fleiss"), abs=1e-12)
