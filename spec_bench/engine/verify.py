"""The one tree verifier every drafter shares.

A step feeds ``[root] + draft trie + branch tree`` in one forward pass. ``root`` is the
last accepted token (not yet in the KV cache). Every node sees the cached prefix, the root
and its own ancestors, and sits at position ``root_position + depth``, so each draft path
is scored exactly as if it had been decoded on its own.

Acceptance walks down the trie from the root:
- greedy: follow the child equal to the argmax; the first miss gives the bonus token;
- sampling: recursive rejection over the children, each a one-hot draft: accept child
  ``c`` with probability ``p(c)``, else zero ``p(c)`` and renormalise; when all children are
  rejected, the bonus token is sampled from what is left. Every emitted token is thus
  distributed exactly as the target model's own sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spec_bench.engine.proposal import ROOT, Proposal


@dataclass
class TreeInputs:
    """Tensors for one verification forward (node 0 is the root)."""

    input_ids: torch.Tensor  # (1, n)
    position_ids: torch.Tensor  # (1, n)
    attention_mask: torch.Tensor  # (1, 1, n, past + n), additive: 0 = visible
    n_drafts: int


def tree_parents(proposal: Proposal) -> list[int]:
    """Parents in node space (root = 0, drafts 1..D, branch D+1..); the root has -1."""
    n_drafts = proposal.n_drafts
    parents = [-1]
    parents += [0 if p == ROOT else p + 1 for p in proposal.parents]
    parents += [0 if p == ROOT else p + 1 + n_drafts for p in proposal.branch_parents]
    return parents


def build_tree_inputs(
    root_token: int, proposal: Proposal, past_length: int, device: torch.device, dtype: torch.dtype
) -> TreeInputs:
    parents = tree_parents(proposal)
    n = len(parents)
    depths = [0] * n
    for node in range(1, n):
        depths[node] = depths[parents[node]] + 1

    visible = torch.zeros((n, n), dtype=torch.bool)
    visible[0, 0] = True
    for node in range(1, n):  # parents come before children, so each row extends its parent's
        visible[node] = visible[parents[node]]
        visible[node, node] = True
    mask = torch.zeros((1, 1, n, past_length + n), dtype=dtype)
    mask[0, 0, :, past_length:].masked_fill_(~visible, torch.finfo(dtype).min)

    tokens = [root_token, *proposal.tokens, *proposal.branch_tokens]
    positions = [past_length + depth for depth in depths]
    return TreeInputs(
        input_ids=torch.tensor([tokens], device=device),
        position_ids=torch.tensor([positions], device=device),
        attention_mask=mask.to(device),
        n_drafts=proposal.n_drafts,
    )


@dataclass
class Acceptance:
    """What the walk down the trie decided: accepted draft nodes (trie indices), the
    bonus token, and the model's greedy predictions after each branch node."""

    accepted_nodes: list[int]
    bonus_token: int
    branch_predictions: list[int]


def accept_greedy(logits: torch.Tensor, proposal: Proposal) -> Acceptance:
    """``logits``: (n, vocab) for root, drafts, branch nodes in that order."""
    predictions = logits.argmax(dim=-1).tolist()  # the one host sync of the step
    accepted, node, parent = [], 0, ROOT
    while True:
        token = predictions[node]
        child = proposal.child(parent, token)
        if child is None:
            break
        accepted.append(child)
        node, parent = child + 1, child
    return Acceptance(accepted, predictions[node], predictions[1 + proposal.n_drafts :])


def accept_sampling(
    logits: torch.Tensor, proposal: Proposal, temperature: float, generator: torch.Generator
) -> Acceptance:
    children = _children_by_parent(proposal)
    accepted, node, parent = [], 0, ROOT
    while True:
        # On the host: acceptance is a chain of tiny scalar decisions, and the generator
        # (seeded per question) must not depend on the device.
        probs = torch.softmax(logits[node].float().cpu() / temperature, dim=-1)
        chosen = None
        for token, child in children.get(parent, ()):
            p_token = float(probs[token])
            if p_token > 0 and float(torch.rand((), generator=generator)) < p_token:
                chosen = child
                break
            probs[token] = 0.0
            probs /= probs.sum()
        if chosen is None:
            bonus = int(torch.multinomial(probs, 1, generator=generator))
            break
        accepted.append(chosen)
        node, parent = chosen + 1, chosen
    branch_predictions = []
    if proposal.branch_tokens:
        branch_predictions = logits[1 + proposal.n_drafts :].argmax(dim=-1).tolist()
    return Acceptance(accepted, bonus, branch_predictions)


def _children_by_parent(proposal: Proposal) -> dict[int, list[tuple[int, int]]]:
    children: dict[int, list[tuple[int, int]]] = {}
    for index, (token, parent) in enumerate(zip(proposal.tokens, proposal.parents)):
        children.setdefault(parent, []).append((token, index))
    return children
