"""The scanning kernels of the match index: a whole segment (or the delta) compared with each
query, the merge of two results, and the removed-rows bitmap's writes (numba; the GIL is
released). The probing kernels are in registry/matching/kernels.py."""

from __future__ import annotations

import numpy as np
from numba import njit

from registry.matching.kernels import (
    U1,
    Int32Array,
    Int64Array,
    Uint64Array,
    _grow_i32,
    _grow_i64,
    _popcount,
)

# Rows whose distances a scan computes at a time (fits in L1 with the four words).
_SCAN_BLOCK = 1024


@njit(cache=True, nogil=True)
def _block_distances(
    q0: np.uint64,
    q1: np.uint64,
    q2: np.uint64,
    q3: np.uint64,
    c0: Uint64Array,
    c1: Uint64Array,
    c2: Uint64Array,
    c3: Uint64Array,
    out: Int64Array,
    max_distance: int,
) -> int:
    """Fill ``out`` with the distances of a block of rows (given by column); count the matches.

    A function of its own: in the caller's loop nest, next to the code that appends results,
    LLVM left this loop scalar (measured 30 times slower in the benchmark's exhaustive scan).
    """
    for r in range(c0.shape[0]):
        out[r] = (
            _popcount(q0 ^ c0[r])
            + _popcount(q1 ^ c1[r])
            + _popcount(q2 ^ c2[r])
            + _popcount(q3 ^ c3[r])
        )
    matches = 0
    for r in range(c0.shape[0]):
        matches += out[r] <= max_distance
    return matches


@njit(cache=True, nogil=True)
def scan_search(
    queries: Uint64Array,
    columns: Uint64Array,
    dead: Uint64Array,
    max_distance: int,
) -> tuple[Int64Array, Int64Array, Int32Array]:
    """Compare every row, skipping rows set in ``dead`` unless it is empty; same output.

    ``columns`` is (4, n): word w of every row, for w = 0..3. The delta is stored so (a
    transposed view of the main segment's rows works too, strided): the distances of a block
    of rows then vectorize (AVX-512 vpopcntq where the CPU has it), 0.2 ns a row against 1.2
    for rows of four words (measured).
    """
    nq = queries.shape[0]
    n = columns.shape[1]
    check_dead = dead.shape[0] > 0
    starts = np.zeros(nq + 1, np.int64)
    rows = np.empty(64, np.int64)
    dists = np.empty(64, np.int32)
    block = np.empty(_SCAN_BLOCK, np.int64)
    found = 0
    for qi in range(nq):
        q0 = queries[qi, 0]
        q1 = queries[qi, 1]
        q2 = queries[qi, 2]
        q3 = queries[qi, 3]
        for lo in range(0, n, _SCAN_BLOCK):
            size = min(_SCAN_BLOCK, n - lo)
            c0 = columns[0, lo : lo + size]
            c1 = columns[1, lo : lo + size]
            c2 = columns[2, lo : lo + size]
            c3 = columns[3, lo : lo + size]
            if _block_distances(q0, q1, q2, q3, c0, c1, c2, c3, block, max_distance) == 0:
                continue
            for r in range(size):
                d = block[r]
                if d > max_distance:
                    continue
                row = lo + r
                if check_dead and (dead[row >> 6] >> np.uint64(row & 63)) & U1:
                    continue
                if found == rows.shape[0]:
                    rows = _grow_i64(rows)
                    dists = _grow_i32(dists)
                rows[found] = row
                dists[found] = d
                found += 1
        starts[qi + 1] = found
    return starts, rows[:found], dists[:found]


@njit(cache=True, nogil=True)
def combine(
    starts_a: Int64Array,
    ids_a: Int64Array,
    dists_a: Int32Array,
    starts_b: Int64Array,
    ids_b: Int64Array,
    dists_b: Int32Array,
) -> tuple[Int64Array, Int64Array, Int32Array]:
    """Merge two per-query result lists; sort each query's results by (distance, id)."""
    nq = starts_a.shape[0] - 1
    total = ids_a.shape[0] + ids_b.shape[0]
    starts = np.zeros(nq + 1, np.int64)
    ids = np.empty(total, np.int64)
    dists = np.empty(total, np.int32)
    k = 0
    for qi in range(nq):
        lo = k
        for p in range(starts_a[qi], starts_a[qi + 1]):
            ids[k] = ids_a[p]
            dists[k] = dists_a[p]
            k += 1
        for p in range(starts_b[qi], starts_b[qi + 1]):
            ids[k] = ids_b[p]
            dists[k] = dists_b[p]
            k += 1
        if k - lo > 1:
            seg_ids = ids[lo:k].copy()
            seg_d = dists[lo:k].copy()
            by_id = np.argsort(seg_ids, kind="mergesort")
            order = by_id[np.argsort(seg_d[by_id], kind="mergesort")]
            for i in range(k - lo):
                ids[lo + i] = seg_ids[order[i]]
                dists[lo + i] = seg_d[order[i]]
        starts[qi + 1] = k
    return starts, ids, dists


@njit(cache=True, nogil=True)
def set_bits(bitmap: Uint64Array, rows: Int64Array) -> None:
    for row in rows:
        bitmap[row >> 6] |= U1 << np.uint64(row & 63)
