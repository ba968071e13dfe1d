"""What a nested drafter's wider budgets add over its narrowest one, estimated apart for the
steps where the narrowest budget's tree accepted a draft (a *hit*) and those where it did not.

A nested drafter's tree under a budget is the first nodes of its tree under any larger one,
so one step measures every budget up to the one it verified (or drafted beside it): what each
wider budget gained over the next narrower one in the same step. PLD's and REST's drafts are
accepted in bursts: at a fixed 3 nodes about one step in 25 accepted 3 drafts, and most
accepted none. A plain mean of the increments over steps, its first observation replacing
the prior, read an answer's first block of misses as "a wider tree gains nothing", after
which budget 1 (3.7% cheaper than 3 on the AVX-512 EPYC in bf16 when a match fills the tree)
won, the wider budgets were measured only in exploration shadows, and the bursts between them
were missed: PLD at ``auto`` made 0.970 of a fixed 3's tokens per second on ``make bench``'s
prompts, priced by that machine's curve (``benchmarks.policy_replay``).

Split by hits, the estimate is ``hit_rate * after_hit + (1 - hit_rate) * after_miss`` per
ladder step. A miss says how often drafts are accepted, nothing about how far a hit goes: a
chain's wider nodes gain only after its first draft was accepted, so ``after_hit`` is learnt
from hits alone and keeps the prior's (a chain accepting each draft with probability 1/2,
given that the first was) until hits show otherwise, counted as ``after_hit_prior_steps``
hits. The hit rate starts at the prior's 1/2 counted as ``hit_prior_steps`` steps, so four
misses make it 1/6, not 0. ``after_miss`` (a tree's other branches: a wider tree may accept
where the narrowest did not) starts at the chain's 0, counted as ``after_miss_prior_steps``
misses (a block): read off the first exploration shadow's 4 steps alone, one draft a wide
tree's other branch accepted in them sent REST to 7 nodes for a block in most answers (24
of 309 steps replayed on the AVX-512 curve, 0.997 of a fixed 3's speed; with the prior so
counted, 8 steps and 1.000).

The narrowest budget's own tokens a step (``AutoBudget.tokens``) keep their plain mean: they
decide between drafting and AR steps, which must follow the drafter's acceptance at once
where drafting costs more (fp32 without AVX-512: 2 tokens a forward 1.39x one). Counting the
prior as 16 steps there instead, PLD and REST lost 7% and 11% of their speed.
"""

from __future__ import annotations

PRIOR_RATE = 0.5  # the prior's chain: each draft accepted with probability 1/2 given its parent


def chain_gain_after_hit(rate: float, narrow: int, wide: int) -> float:
    """Drafts a chain of ``wide`` drafts accepts beyond ``narrow`` of them, given its first
    draft was accepted: ``rate^narrow + ... + rate^(wide - 1)`` (the first is certain)."""
    return sum(rate ** (depth - 1) for depth in range(narrow + 1, wide + 1))


class HitSplitGains:
    """Per ladder budget above the narrowest: the mean of what it gained over the next
    narrower one, after hits and after misses, and the rate of hits."""

    def __init__(
        self,
        ladder: list[int],
        memory: int,
        hit_prior_steps: float = 2.0,
        after_hit_prior_steps: float = 2.0,
        after_miss_prior_steps: float = 4.0,
    ) -> None:
        self.ladder = list(ladder)
        self.memory = memory
        self.hit_prior_steps = hit_prior_steps
        self.after_hit_prior_steps = after_hit_prior_steps
        self.after_miss_prior_steps = after_miss_prior_steps
        self.reset()

    def reset(self) -> None:
        self.hit_rate = PRIOR_RATE
        self.steps = 0
        pairs = list(zip(self.ladder, self.ladder[1:]))
        self.after_hit = {wide: chain_gain_after_hit(PRIOR_RATE, narrow, wide) for narrow, wide in pairs}
        self.after_miss = {wide: 0.0 for _, wide in pairs}
        self.hits = {wide: 0 for _, wide in pairs}
        self.misses = {wide: 0 for _, wide in pairs}

    def record(self, gained: dict[int, int]) -> None:
        """One step's tokens gained per ladder budget, from the narrowest up to the widest the
        step measured."""
        hit = gained[self.ladder[0]] > 1
        self.steps += 1
        self.hit_rate += (hit - self.hit_rate) / min(self.steps + self.hit_prior_steps, self.memory)
        for narrow, wide in zip(self.ladder, self.ladder[1:]):
            if wide not in gained:
                break
            added = gained[wide] - gained[narrow]
            if hit:
                self.hits[wide] += 1
                weight = 1.0 / min(self.hits[wide] + self.after_hit_prior_steps, self.memory)
                self.after_hit[wide] += weight * (added - self.after_hit[wide])
            else:
                self.misses[wide] += 1
                weight = 1.0 / min(self.misses[wide] + self.after_miss_prior_steps, self.memory)
                self.after_miss[wide] += weight * (added - self.after_miss[wide])

    def added(self, budget: int) -> float:
        """Tokens a step ``budget`` is estimated to gain over the narrowest ladder budget."""
        total = 0.0
        for wide in self.ladder[1:]:
            if wide > budget:
                break
            total += self.hit_rate * self.after_hit[wide] + (1.0 - self.hit_rate) * self.after_miss[wide]
        return total
