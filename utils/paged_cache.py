"""A paged KV cache: fixed-size blocks from a shared pool, one block table per sequence.

A contiguous cache reserves ``max_length`` time steps per sequence up front, and most of that
is never used when sequences stop early. Paging (vLLM's PagedAttention, Kwon et al., 2023)
splits the cache into blocks of ``block_size`` time steps taken from one pool as a sequence
grows; a per-sequence *block table* maps logical block ``i`` (time steps
``i * block_size .. (i + 1) * block_size - 1``) to a physical block of the pool. At most one
block per sequence is partly empty. Blocks are reference counted, so two sequences can share
the blocks of a common prefix (:meth:`PagedKVCache.fork`); a shared block is copied before it
is written (copy on write).

This module keeps the logic readable, not fast: a real engine reads the blocks inside the
attention kernel; here :meth:`PagedKVCache.update` gathers them into a contiguous tensor.

>>> pool = BlockPool(n_layers=4, n_blocks=64, block_size=16)
>>> cache = PagedKVCache(pool)             # use it wherever a KVCache goes
>>> logits, _ = model(prompt, cache=cache)
>>> other = cache.fork()                   # shares the prompt's blocks
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class BlockPool:
    """Physical storage of a paged cache: ``n_blocks`` blocks of ``block_size`` time steps.

    The tensors are allocated at the first write, when the number of heads, the head size,
    the dtype and the device are known: keys and values of shape
    ``(n_layers, n_blocks, H_kv, block_size, head_dim)`` each.

    Args:
        n_layers: Attention layers (every block holds all layers of its time steps).
        n_blocks: Blocks in the pool.
        block_size: Time steps per block.

    Raises:
        ValueError: If a size is below 1.
    """

    def __init__(self, n_layers: int, n_blocks: int, block_size: int) -> None:
        if min(n_layers, n_blocks, block_size) < 1:
            raise ValueError(
                f"sizes must be >= 1, got n_layers={n_layers}, n_blocks={n_blocks}, "
                f"block_size={block_size}"
            )
        self.n_layers, self.n_blocks, self.block_size = n_layers, n_blocks, block_size
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.refcount = [0] * n_blocks
        self._free = list(range(n_blocks - 1, -1, -1))  # pop() hands out block 0 first

    @property
    def n_free(self) -> int:
        """Blocks not held by any sequence."""
        return len(self._free)

    @property
    def n_used(self) -> int:
        """Blocks held by at least one sequence."""
        return self.n_blocks - len(self._free)

    def bytes_per_block(self) -> int:
        """Bytes of one block (keys and values, all layers); 0 before the first write."""
        if self.k is None:
            return 0
        return 2 * self.k[:, 0].numel() * self.k.element_size()

    def _storage(self, k: Tensor) -> None:
        if self.k is None:
            _, H, _, D = k.shape
            shape = (self.n_layers, self.n_blocks, H, self.block_size, D)
            self.k = torch.zeros(shape, dtype=k.dtype, device=k.device)
            self.v = torch.zeros_like(self.k)

    def allocate(self) -> int:
        """Take a free block (reference count 1).

        Raises:
            RuntimeError: If the pool is exhausted.
        """
        if not self._free:
            raise RuntimeError(f"the pool's {self.n_blocks} blocks are all in use")
        block = self._free.pop()
        self.refcount[block] = 1
        return block

    def release(self, block: int) -> None:
        """Drop one reference to ``block``; it returns to the pool when none is left."""
        self.refcount[block] -= 1
        if self.refcount[block] == 0:
            self._free.append(block)


class PagedKVCache:
    """A KV cache for a batch of sequences whose time steps live in blocks of a :class:`BlockPool`.

    It has the interface of :class:`~utils.attention.KVCache` (``length``, ``update``,
    ``reset``, ``n_layers``), so ``TinyGPT(idx, cache=PagedKVCache(pool))`` and
    :func:`~utils.generation.generate` work with it unchanged.

    Args:
        pool: The shared block pool.

    Attributes:
        block_tables: One list of physical block ids per sequence of the batch.
    """

    def __init__(self, pool: BlockPool) -> None:
        self.pool = pool
        self.n_layers = pool.n_layers
        self.block_tables: list[list[int]] = []
        self._len = [0] * pool.n_layers

    @property
    def length(self) -> int:
        """Number of cached time steps (read from layer 0)."""
        return self._len[0]

    @property
    def n_blocks(self) -> int:
        """Physical blocks this cache refers to (shared ones counted once per sequence)."""
        return sum(len(table) for table in self.block_tables)

    def _make_room(self, batch: int, end: int, start: int) -> None:
        """Give every sequence blocks for time steps ``< end``; unshare the blocks it writes."""
        if not self.block_tables:
            self.block_tables = [[] for _ in range(batch)]
        if len(self.block_tables) != batch:
            raise ValueError(f"cache holds {len(self.block_tables)} sequences, got {batch}")
        bs = self.pool.block_size
        for table in self.block_tables:
            while len(table) < math.ceil(end / bs):
                table.append(self.pool.allocate())
            for i in range(start // bs, math.ceil(end / bs)):  # blocks written by this update
                if self.pool.refcount[table[i]] > 1:  # shared with another sequence: copy
                    fresh = self.pool.allocate()
                    self.pool.k[:, fresh] = self.pool.k[:, table[i]]
                    self.pool.v[:, fresh] = self.pool.v[:, table[i]]
                    self.pool.release(table[i])
                    table[i] = fresh

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write new keys/values of ``layer`` into the blocks; return everything cached.

        Args:
            layer: Layer index in ``[0, n_layers)``.
            k: New keys ``(B, Hkv, T_new, D)``.
            v: New values ``(B, Hkv, T_new, D)``.

        Returns:
            ``(k_all, v_all)``, each ``(B, Hkv, T_cached + T_new, D)``, gathered from the blocks.

        Raises:
            ValueError: If ``layer`` is out of range or the batch size changed.
            RuntimeError: If the pool runs out of blocks.
        """
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer}")
        B, _, T, _ = k.shape
        start = self._len[layer]
        end = start + T
        self.pool._storage(k)
        self._make_room(B, end, start)  # a no-op for every layer after the first
        bs = self.pool.block_size
        pos = torch.arange(start, end, device=k.device)
        offsets = pos % bs  # (T,)
        k_all, v_all = [], []
        for b, table in enumerate(self.block_tables):
            ids = torch.tensor(table, device=k.device)
            blocks = ids[pos // bs]  # (T,) physical block of each new time step
            # pool.k[layer] (n_blocks, H, bs, D) indexed [blocks, :, offsets] is (T, H, D)
            self.pool.k[layer][blocks, :, offsets] = k[b].transpose(0, 1)
            self.pool.v[layer][blocks, :, offsets] = v[b].transpose(0, 1)
            for store, out in ((self.pool.k, k_all), (self.pool.v, v_all)):
                gathered = store[layer][ids]  # (n_table, H, bs, D)
                H, D = gathered.shape[1], gathered.shape[-1]
                out.append(gathered.transpose(0, 1).reshape(H, -1, D)[:, :end])  # (H, end, D)
        self._len[layer] = end
        return torch.stack(k_all), torch.stack(v_all)

    def fork(self) -> PagedKVCache:
        """A new cache that continues the same sequences, sharing every block (no copy)."""
        other = PagedKVCache(self.pool)
        other.block_tables = [list(table) for table in self.block_tables]
        other._len = list(self._len)
        for table in self.block_tables:
            for block in table:
                self.pool.refcount[block] += 1
        return other

    def reset(self) -> None:
        """Forget everything cached and give the blocks back to the pool."""
        for table in self.block_tables:
            for block in table:
                self.pool.release(block)
        self.block_tables = []
        self._len = [0] * self.n_layers
