"""Greedy outputs against AR's: a match, a near-tie, or a defect.

In fp32 a drafter's greedy tokens must equal AR's exactly. In half precision they may not: a
verification forward over many tokens rounds differently from AR's one-token step, and where
AR's two best tokens are within that rounding of each other the argmax can flip, after which
the texts part ways. That is a *near-tie*, not a bug. Anything else is a *defect*.

So for a greedy answer that differs from AR's, the first differing position is found, the
prefix up to it is run through the model once more, and the gap between the logits of AR's
token and the drafter's token there is compared with a tolerance from the dtype:
``NEAR_TIE_ULPS`` units in the last place of the larger of the two logits; and when that
plain forward itself ranks the drafter's token first, the two answers are two computations of
the same model disagreeing, so a near-tie too, whatever the gap. (Seen in bf16: AR's one-token
steps chose a token 0.18 logits below the drafter's, whose logits were near -1, so below the
ULP tolerance of 0.07; the plain forward chose the drafter's token, and fp32 matched AR on
every question.) Measured on the
embedded model in bf16 (a 16-token verification forward against the one-token steps, after
realistic prompts), the top token's logit moved by up to 5 ULPs (4% of its value); 8 ULPs
covers that with room. In fp32 the same rule leaves a tolerance of about 1e-5 logits: only
exact ties pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

NEAR_TIE_ULPS = 8
MATCH, NEAR_TIE, DEFECT = "match", "near_tie", "defect"


@dataclass
class Mismatch:
    turn: int
    position: int  # first differing token of that turn
    ar_token: int
    token: int | None  # the drafter's token there (None: its answer ended first)
    margin: float  # |logit(ar_token) - logit(token)| at that position, AR's context
    tolerance: float
    token_ranked_first: bool = False  # the plain forward's argmax there is the drafter's token

    @property
    def kind(self) -> str:
        if self.token is None:
            return DEFECT
        return NEAR_TIE if self.margin <= self.tolerance or self.token_ranked_first else DEFECT

    def as_record(self) -> dict:
        return {**asdict(self), "kind": self.kind}


def near_tie_tolerance(dtype: torch.dtype, logit_scale: float) -> float:
    return NEAR_TIE_ULPS * torch.finfo(dtype).eps * max(1.0, abs(logit_scale))


def first_difference(expected: list[list[int]], actual: list[list[int]]) -> tuple[int, int] | None:
    """(turn, position) of the first token where two multi-turn answers differ, else None."""
    for turn, (want, got) in enumerate(zip(expected, actual)):
        for position, (a, b) in enumerate(zip(want, got)):
            if a != b:
                return turn, position
        if len(want) != len(got):
            return turn, min(len(want), len(got))
    if len(expected) != len(actual):
        return min(len(expected), len(actual)), 0
    return None


@torch.inference_mode()
def classify(
    target, prompt_ids: list[int], ar_tokens: list[int], tokens: list[int], turn: int, position: int
):
    """The mismatch at ``position`` of a turn whose prompt is ``prompt_ids``: AR's logits there
    from one plain forward over the prompt and AR's tokens before it."""
    if position >= len(ar_tokens):  # AR's answer ended first: nothing to weigh
        return Mismatch(
            turn, position, -1, tokens[position] if position < len(tokens) else None, float("inf"), 0.0
        )
    context = torch.tensor([prompt_ids + ar_tokens[:position]], device=target.device)
    logits = target.model(input_ids=context, logits_to_keep=1).logits[0, -1].float()
    ar_token = ar_tokens[position]
    token = tokens[position] if position < len(tokens) else None
    if token is None:
        return Mismatch(turn, position, ar_token, None, float("inf"), 0.0)
    ar_logit, logit = float(logits[ar_token]), float(logits[token])
    tolerance = near_tie_tolerance(target.dtype, max(abs(ar_logit), abs(logit)))
    ranked_first = int(logits.argmax()) == token
    return Mismatch(turn, position, ar_token, token, abs(ar_logit - logit), tolerance, ranked_first)
