"""Building blocks of every drafter: draft sources, the Jacobi window, and the one drafter
that fills a step's budget from an ordered list of sources (``SourceDrafter``).

A published method is a config that lists its sources (``conf/drafter/*.yaml``); the
objects are built from it with ``hydra.utils.instantiate`` (``spec_bench.drafters``).
"""

from spec_bench.drafting.drafter import SourceDrafter
from spec_bench.drafting.jacobi import JacobiWindow
from spec_bench.drafting.pool import NGramPool, PoolSource
from spec_bench.drafting.source import DraftSource, Resources, Source

__all__ = ["DraftSource", "JacobiWindow", "NGramPool", "PoolSource", "Resources", "Source", "SourceDrafter"]
