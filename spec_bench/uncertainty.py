"""95% intervals for the report's ratios, from a bootstrap over questions.

A category's speedup is mean(method tokens/s) / mean(AR tokens/s) over its questions, and
its MAT is all accepted lengths pooled; both are ratios of sums over questions, so their
sampling error comes from which questions were asked. The bootstrap resamples questions
with replacement and recomputes the ratio on each resample; for the speedup the method's
and AR's numbers of a question travel together (a paired bootstrap), so a question that is
slow for both moves both. The interval is the 2.5th to 97.5th percentile of
``RESAMPLES`` resamples, seeded, so a report repeats exactly.

With one question there is nothing to resample: the interval is the point itself. With two
it has three possible values: read it as the spread of those two questions, not as a
confidence statement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def excludes(self, other: float) -> bool:
        return not (self.low <= other <= self.high)

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high


NAN = Estimate(float("nan"), float("nan"), float("nan"))


def ratio_of_means(numerator, denominator, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """mean(numerator) / mean(denominator) over paired per-question values, with a paired
    bootstrap interval."""
    return ratio_of_sums(np.asarray(numerator, float), np.asarray(denominator, float), resamples, seed)


def ratio_of_sums(numerator, denominator, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """sum(numerator) / sum(denominator) over questions (e.g. accepted tokens over steps: the
    MAT), with a bootstrap interval over questions. Equal to the ratio of means."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    if len(numerator) == 0 or len(numerator) != len(denominator) or denominator.sum() == 0:
        return NAN
    value = float(numerator.sum() / denominator.sum())
    if len(numerator) == 1:
        return Estimate(value, value, value)
    picks = np.random.default_rng(seed).integers(0, len(numerator), size=(resamples, len(numerator)))
    sums = denominator[picks].sum(axis=1)
    ratios = numerator[picks].sum(axis=1)[sums > 0] / sums[sums > 0]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return Estimate(value, float(min(low, value)), float(max(high, value)))
