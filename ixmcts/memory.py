"""Where the process's memory comes from (glibc's allocator settings)."""

from __future__ import annotations


def keep_freed_memory(keep: bool = True) -> None:
    """Keep memory the process frees in its heap for its next use (glibc only; a no-op
    elsewhere). By default glibc maps large allocations fresh from the kernel and unmaps them
    when freed (every one over 32 MB; smaller ones until a freed one of their size has raised
    its threshold) and hands the heap's free top back to the kernel, so each
    training step (the logits of a batch, their gradients) and each decoding step or prefill
    (KV buffers, logits) pays to fault in and zero the same memory again:
    bench/train_throughput.py measures it for training; for the search bench's batched run it
    was 3.2 million page faults and about 2% of the wall time. The setting stays for the rest
    of the process. Numerics are untouched: only where the bytes come from.
    ``keep=False`` restores glibc's default limits (the bench's "before")."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    # kept: large blocks come from the heap, so freed ones are reused, not unmapped, and the
    # heap's free top is not handed back after every step
    mallopt(M_MMAP_MAX, 0 if keep else 65536)
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1 if keep else 128 * 1024)
