"""A KV cache that grows in place and keeps only the accepted path of a tree.

transformers' ``DynamicCache`` concatenates on every step (a full copy of the cache per
forward). This one reserves room ahead, writes new keys and values into it and hands
the model views; dropping rejected tree nodes is an in-place copy of the few accepted
rows followed by moving the end marker.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """One layer's keys and values in a buffer with spare room at the end."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._key_buffer = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[3]))
        self._value_buffer = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[3]))
        self.length = 0

    def _reserve(self, needed: int) -> None:
        capacity = self._key_buffer.shape[-2]
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity, 256)
        for name in ("_key_buffer", "_value_buffer"):
            old = getattr(self, name)
            new = old.new_empty((*old.shape[:2], new_capacity, old.shape[3]))
            new[..., : self.length, :] = old[..., : self.length, :]
            setattr(self, name, new)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, end = self.length, self.length + key_states.shape[-2]
        self._reserve(end)
        self._key_buffer[..., start:end, :] = key_states
        self._value_buffer[..., start:end, :] = value_states
        self.length = end
        self.keys = self._key_buffer[..., :end, :]
        self.values = self._value_buffer[..., :end, :]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def crop(self, tokens_to_remove: int) -> None:
        if self.is_initialized and tokens_to_remove:
            self.keep(self.length - abs(tokens_to_remove), [])

    def keep(self, prefix_length: int, kept_positions: list[int] | torch.Tensor) -> None:
        """Keep rows ``[0, prefix_length)`` and then the rows at ``kept_positions``
        (absolute, increasing, each >= prefix_length), in that order."""
        if not self.is_initialized:
            return
        kept = len(kept_positions)
        if kept:
            index = torch.as_tensor(kept_positions, device=self._key_buffer.device)
            end = prefix_length + kept
            # index_select copies first, so overlapping source and target rows are safe.
            self._key_buffer[..., prefix_length:end, :] = self._key_buffer.index_select(-2, index)
            self._value_buffer[..., prefix_length:end, :] = self._value_buffer.index_select(-2, index)
        self.length = prefix_length + kept
        self.keys = self._key_buffer[..., : self.length, :]
        self.values = self._value_buffer[..., : self.length, :]


class TreeCache(Cache):
    """The per-request cache the engine hands to the model."""

    def __init__(self) -> None:
        super().__init__(layer_class_to_replicate=GrowingLayer)

    def keep(self, prefix_length: int, kept_positions: list[int]) -> None:
        for layer in self.layers:
            layer.keep(prefix_length, kept_positions)
