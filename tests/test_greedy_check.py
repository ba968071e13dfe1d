"""Greedy answers against AR's: where they first differ, and whether that is a near-tie (AR's
two candidates within rounding of the dtype) or a defect."""

from __future__ import annotations

import pytest
import torch

from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.decode import Engine
from spec_bench.engine.proposal import NoDrafter
from spec_bench.greedy_check import DEFECT, NEAR_TIE, Mismatch, classify, first_difference, near_tie_tolerance

PROMPT = "<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n"


def test_first_difference_across_turns_and_lengths():
    assert first_difference([[1, 2, 3]], [[1, 2, 3]]) is None
    assert first_difference([[1, 2, 3]], [[1, 9, 3]]) == (0, 1)
    assert first_difference([[1, 2], [4, 5]], [[1, 2], [4, 6]]) == (1, 1)
    assert first_difference([[1, 2, 3]], [[1, 2]]) == (0, 2)
    assert first_difference([[1]], [[1], [2]]) == (1, 0)


def test_tolerance_follows_the_dtype():
    assert near_tie_tolerance(torch.float32, 20.0) == pytest.approx(8 * 2**-23 * 20)
    assert near_tie_tolerance(torch.bfloat16, 20.0) == pytest.approx(8 * 2**-7 * 20)
    assert near_tie_tolerance(torch.bfloat16, 0.1) == pytest.approx(
        8 * 2**-7
    )  # at least one logit unit's worth
    assert Mismatch(0, 3, 5, 6, margin=0.5, tolerance=1.0).kind == NEAR_TIE
    assert Mismatch(0, 3, 5, 6, margin=2.0, tolerance=1.0).kind == DEFECT
    assert Mismatch(0, 3, 5, None, margin=0.0, tolerance=1.0).kind == DEFECT  # the answer ended early
    # A plain forward over the same prefix ranks the drafter's token first: two computations
    # of the model disagree, whatever the gap.
    assert Mismatch(0, 3, 5, 6, margin=2.0, tolerance=1.0, token_ranked_first=True).kind == NEAR_TIE


def test_a_wrong_token_in_fp32_is_a_defect_and_the_margin_is_ars_own(target):
    prompt = target.encode(PROMPT)
    ar = Engine(target, 0.0, FixedBudget(0)).generate(prompt, NoDrafter(), 12).tokens
    with torch.inference_mode():
        logits = target.model(input_ids=torch.tensor([prompt + ar[:5]])).logits[0, -1]
    runner_up = int(logits.topk(2).indices[1])
    wrong = ar[:5] + [runner_up] + ar[6:]
    mismatch = classify(target, prompt, ar, wrong, turn=0, position=5)
    assert (mismatch.ar_token, mismatch.token) == (ar[5], runner_up)
    assert mismatch.margin == pytest.approx(float(logits[ar[5]] - logits[runner_up]), rel=1e-4)
    assert mismatch.kind == DEFECT and mismatch.tolerance < 1e-3  # fp32: only exact ties pass
    assert not mismatch.token_ranked_first
    # The other way round: if "AR" had picked the runner-up, the drafter's token is the plain
    # forward's first choice, which no verifier bug would produce: a near-tie.
    swapped = classify(target, prompt, wrong, ar, turn=0, position=5)
    assert swapped.token_ranked_first and swapped.kind == NEAR_TIE
