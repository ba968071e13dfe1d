"""``drafter=ar``: autoregressive decoding on the shared engine."""

from spec_bench.engine.proposal import NoDrafter


def build(cfg, target) -> NoDrafter:
    return NoDrafter()
