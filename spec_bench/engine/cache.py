"""A KV cache that grows in place and keeps only the accepted path of a tree.

transformers' ``DynamicCache`` concatenates on every step (a full copy of the cache per
forward). This one reserves room ahead, writes new keys and values into it and hands
the model views; dropping rejected tree nodes moves the end marker, after an in-place
copy of those accepted rows that are not already where they belong. In the common cases
(an AR step, or a step that accepts a prefix of the first draft chain) nothing moves.
"""

from __future__ import annotations

from functools import partial

import torch
from transformers.cache_utils import Cache, DynamicLayer

MIN_CAPACITY = 256  # rows reserved at least, so short requests never reallocate


class GrowingLayer(DynamicLayer):
    """One layer's keys and values in a buffer with spare room at the end."""

    def __init__(self, capacity_hint: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.capacity_hint = capacity_hint  # rows to reserve on first use

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._key_buffer = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[3]))
        self._value_buffer = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[3]))
        self.length = 0

    def _reserve(self, needed: int) -> None:
        capacity = self._key_buffer.shape[-2]
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity, self.capacity_hint, MIN_CAPACITY)
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
        self._set_length(end)
        return self.keys, self.values

    def _set_length(self, length: int) -> None:
        if length == self.length:
            return  # the views already end there (an AR step keeps everything)
        self.length = length
        self.keys = self._key_buffer[..., :length, :]
        self.values = self._value_buffer[..., :length, :]

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
        moved, index = _rows_to_move(prefix_length, kept_positions, self._key_buffer.device)
        self._move_rows(prefix_length + moved, index)
        self._set_length(prefix_length + len(kept_positions))

    def _move_rows(self, target_start: int, index: torch.Tensor | None) -> None:
        """Copy the rows at ``index`` to ``[target_start, target_start + len(index))``."""
        if index is None:
            return
        end = target_start + index.shape[0]
        # index_select copies first, so overlapping source and target rows are safe.
        self._key_buffer[..., target_start:end, :] = self._key_buffer.index_select(-2, index)
        self._value_buffer[..., target_start:end, :] = self._value_buffer.index_select(-2, index)


def _rows_to_move(
    prefix_length: int, kept_positions: list[int] | torch.Tensor, device: torch.device
) -> tuple[int, torch.Tensor | None]:
    """How many leading kept rows are already in place, and the source rows of the rest
    (``None`` when all are in place). Positions increase, so once one row is out of place
    every later one is too."""
    positions = kept_positions.tolist() if isinstance(kept_positions, torch.Tensor) else kept_positions
    in_place = 0
    for offset, position in enumerate(positions):
        if position != prefix_length + offset:
            break
        in_place += 1
    if in_place == len(positions):
        return in_place, None
    return in_place, torch.tensor(positions[in_place:], device=device)


class TreeCache(Cache):
    """The per-request cache the engine hands to the model. ``capacity`` is a hint of the
    rows a request will need (prompt, answer and one tree), reserved on first use."""

    def __init__(self, capacity: int = 0) -> None:
        super().__init__(layer_class_to_replicate=partial(GrowingLayer, capacity_hint=capacity))

    def keep(self, prefix_length: int, kept_positions: list[int]) -> None:
        """Drop every row after ``prefix_length`` but those at ``kept_positions``."""
        layers = [layer for layer in self.layers if layer.is_initialized]
        if not layers:
            return
        # One index tensor for all layers (one host-to-device copy, and only when rows move).
        moved, index = _rows_to_move(prefix_length, kept_positions, layers[0]._key_buffer.device)
        for layer in layers:
            layer._move_rows(prefix_length + moved, index)
            layer._set_length(prefix_length + len(kept_positions))
