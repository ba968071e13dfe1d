"""Target models: load from a hub id, a local folder or the embedded GGUF."""

from spec_bench.models.loading import Target, load_target, load_tokenizer, resolve_device_dtype

__all__ = ["Target", "load_target", "load_tokenizer", "resolve_device_dtype"]
