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
