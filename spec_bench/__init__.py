"""hd-spec-bench: lossless speculative decoding measured honestly on Spec-Bench."""

__version__ = "0.1.0"
