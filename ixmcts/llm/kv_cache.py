"""A KV cache whose layers write new tokens into buffers with room to grow.

``DynamicCache`` concatenates at every decoding step, copying each layer's whole cache; with a
batch of long conversations that copy is the largest cost after the matrix products. These
layers write in place and hand attention views of the filled part (the same values).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class RoomyLayer(DynamicLayer):
    def __init__(self, room: int):
        super().__init__()
        self.room, self.length = room, 0

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.device, self.is_initialized = key_states.device, True
            self.buffers = self._allocate(key_states, max(self.room, key_states.shape[-2]))
        end = self.length + key_states.shape[-2]
        if end > self.buffers[0].shape[-2]:  # out of room: double it
            grown = self._allocate(key_states, 2 * end)
            for old, new in zip(self.buffers, grown):
                new[:, :, : self.length] = old[:, :, : self.length]
            self.buffers = grown
        self.buffers[0][:, :, self.length : end] = key_states
        self.buffers[1][:, :, self.length : end] = value_states
        self.length = end
        return self._views()

    def reserve(self, like, rows: int, length: int):
        """Buffers for ``rows`` rows shaped like ``like`` (heads, positions, dim) with this
        layer's room, whose first ``length`` positions (zeroed) the caller fills in place: a
        reused prefix is copied once, into the cache itself. Returns their views."""
        shape = (rows, like.shape[0], max(self.room, length), like.shape[2])
        self.buffers = (like.new_empty(shape), like.new_empty(shape))
        for b in self.buffers:
            b[:, :, :length].zero_()  # pads between rows' prefixes are masked, but must be finite
        self.device, self.is_initialized, self.length = like.device, True, length
        return self._views()

    @staticmethod
    def _allocate(like, length):
        shape = (like.shape[0], like.shape[1], length, like.shape[3])
        return like.new_empty(shape), like.new_empty(shape)

    def _views(self):
        self.keys, self.values = (b[:, :, : self.length] for b in self.buffers)
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.buffers = tuple(b.repeat_interleave(repeats, dim=0) for b in self.buffers)
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.buffers = tuple(b[indices] for b in self.buffers)
            self._views()

    def keep_rows(self, holes: torch.Tensor, movers: torch.Tensor, rows: int) -> None:
        """Rows ``movers`` copied into rows ``holes`` in place (their filled positions), then only
        the first ``rows`` kept (a view: the buffers keep their size until the batch ends)."""
        if self.is_initialized:
            if len(holes):
                for b in self.buffers:
                    b[holes, :, : self.length] = b[movers, :, : self.length]
            self.buffers = tuple(b[:rows] for b in self.buffers)
            self._views()


class RoomyCache(DynamicCache):
    """``num_layers`` roomy layers, each with room for ``room`` positions before it grows."""

    def __init__(self, num_layers: int, room: int):
        Cache.__init__(self, layers=[RoomyLayer(room) for _ in range(num_layers)])

    def keep_rows(self, keep: list[int]) -> list[int]:
        """Drop every row not in ``keep`` (ascending), moving as few rows as possible: each kept
        row past the new end fills the place of a dropped one before it, instead of every kept
        row being copied into new buffers (``batch_select_indices``). Returns the rows' new
        order: position p now holds the row that was at ``order[p]``."""
        rows, kept = len(keep), set(keep)
        holes = [p for p in range(rows) if p not in kept]
        movers = [p for p in keep if p >= rows]
        order = list(range(rows))
        for hole, mover in zip(holes, movers):
            order[hole] = mover
        device = self.layers[0].device if self.layers[0].is_initialized else None
        holes_t, movers_t = torch.tensor(holes, device=device), torch.tensor(movers, device=device)
        for layer in self.layers:
            layer.keep_rows(holes_t, movers_t, rows)
        return order

