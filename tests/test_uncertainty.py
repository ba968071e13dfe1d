"""The bootstrap on hand-made numbers with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from spec_bench.uncertainty import ratio_of_means, ratio_of_sums


def test_identical_methods_give_an_interval_around_one():
    speeds = np.random.default_rng(1).uniform(5, 15, size=12)
    estimate = ratio_of_means(speeds * np.random.default_rng(2).normal(1, 0.05, 12), speeds)
    assert estimate.low <= 1.0 <= estimate.high
    assert estimate.high - estimate.low < 0.2


def test_a_method_twice_as_fast_on_every_question_excludes_one_and_a_half():
    ar = np.random.default_rng(3).uniform(5, 15, size=12)
    estimate = ratio_of_means(2 * ar, ar)
    assert estimate.value == pytest.approx(2.0) and estimate.excludes(1.5)
    assert estimate.low == pytest.approx(2.0) and estimate.high == pytest.approx(2.0)  # paired: no spread


def test_pairing_cancels_what_questions_share_and_keeps_what_they_do_not():
    ar = np.array([5.0, 10.0, 20.0, 40.0])
    same_gain = ratio_of_means(1.5 * ar, ar)
    assert same_gain.low == pytest.approx(1.5) and same_gain.high == pytest.approx(1.5)
    mixed = ratio_of_means(ar * np.array([1.0, 2.0, 1.0, 2.0]), ar)
    assert mixed.low < mixed.value < mixed.high


def test_mat_pools_accepted_tokens_over_steps_and_degenerate_cases():
    estimate = ratio_of_sums([10, 30], [10, 10])  # 1.0 and 3.0 tokens a step
    assert estimate.value == pytest.approx(2.0) and estimate.low == pytest.approx(1.0)
    assert estimate.high == pytest.approx(3.0)
    one = ratio_of_sums([7], [5])
    assert one.low == one.value == one.high == pytest.approx(1.4)
    assert np.isnan(ratio_of_sums([], []).value)
    assert ratio_of_means([1.0, 2.0], [1.0, 2.0]) == ratio_of_means([1.0, 2.0], [1.0, 2.0])  # seeded
