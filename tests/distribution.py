"""The losslessness check every drafter's proposals go through at T>0.

Draw many acceptances of one proposal against fixed synthetic logits and compare, with a
chi-square test, the first emitted token with p(. | root) and the second (given that the
first was a drafted token with children) with p(. | root, that token). A rule that skews
either distribution by a few percent fails at 20,000 draws.
"""

from __future__ import annotations

import torch
from scipy.stats import chisquare

from spec_bench.engine.proposal import ROOT, Proposal
from spec_bench.engine.verify import accept_sampling

TEMPERATURE = 1.0


def synthetic_logits(proposal: Proposal, vocab: int, seed: int = 1) -> torch.Tensor:
    """One row per verified position (root, then each draft node): peaked enough that
    drafts are accepted sometimes and rejected sometimes."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((1 + proposal.n_drafts, vocab), generator=generator) * 1.5


def sampling_pvalues(proposal: Proposal, logits: torch.Tensor, rule=accept_sampling, draws: int = 20000):
    """p-values of the first and second emitted tokens against the target distribution."""
    vocab = logits.shape[-1]
    parents = set(proposal.parents)
    first_child = next(
        (node for node, parent in enumerate(proposal.parents) if parent == ROOT and node in parents),
        None,
    )
    generator = torch.Generator().manual_seed(1234)
    first_counts = torch.zeros(vocab)
    second_counts = torch.zeros(vocab)
    for _ in range(draws):
        acceptance = rule(logits, proposal, TEMPERATURE, generator)
        tokens = [proposal.tokens[n] for n in acceptance.accepted_nodes] + [acceptance.bonus_token]
        first_counts[tokens[0]] += 1
        if first_child is not None and acceptance.accepted_nodes[:1] == [first_child]:
            second_counts[tokens[1]] += 1
    p_first = torch.softmax(logits[0] / TEMPERATURE, -1)
    first_p = float(chisquare(first_counts.numpy(), (p_first * draws).numpy()).pvalue)
    if first_child is None or second_counts.sum() == 0:
        return first_p, 1.0
    p_second = torch.softmax(logits[first_child + 1] / TEMPERATURE, -1)
    second_p = float(chisquare(second_counts.numpy(), (p_second * second_counts.sum()).numpy()).pvalue)
    return first_p, second_p


def assert_lossless(proposal: Proposal, vocab: int) -> None:
    assert proposal.n_drafts > 1, "a proposal with siblings is needed to exercise rejection"
    first_p, second_p = sampling_pvalues(proposal, synthetic_logits(proposal, vocab))
    assert first_p > 1e-3 and second_p > 1e-3, (first_p, second_p)
