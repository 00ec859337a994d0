"""Exact in-memory search of PDQ hashes within a Hamming distance: multi-index hashing.

Structure
---------
The index answers "which stored hashes are within ``max_distance`` bits of this query?" exactly:
every such hash, and no other. It holds:

* a **main segment**, immutable once built, its rows sorted by id (an id is found by binary
  search; no separate id map). ``m`` disjoint *chunks* of ``b`` bits are taken from the 256
  (``m * b <= 256``; bits in no chunk are still compared when verifying). Per chunk, a CSR
  table: ``offsets[c]`` (``2**b + 1`` uint32) over ``postings[c]`` (uint32 row numbers grouped
  by the value of the rows' chunk ``c``). At 10 million hashes: 12 chunks of 21 bits, so 32
  bytes of hash, 8 of id, 48 of postings and 10 of directory: 98 bytes a hash;
* a **removed-rows bitmap** over the main segment (one bit a row);
* a small **delta segment** of recent additions, stored by column and scanned (vectorized).

Search by the pigeonhole principle in its general form. Give chunk ``c`` a radius ``t[c]``
(``-1``: not probed) and call ``t[c] + 1`` its *units*. If the units sum to at least ``r + 1``,
any hash within ``r`` bits differs by at most ``t[c]`` in some chunk (otherwise the distance
would be at least the sum of the units). So the index reads every bucket within ``t[c]`` bits of
the query's value of each chunk and verifies the rows found with a full 256-bit popcount (a
random read of the row: the dominant cost). The radii are chosen per query, by a small knapsack
over the actual bucket sizes (read first, cheaply), between two plans:

* **single cover** (units >= r + 1): verify every row found; a row found in several chunks is
  reported only from the first chunk that could find it;
* **double cover** (units >= r + 1 plus the largest chunk's): every match is then in at least
  two of the buckets read, so rows are counted in a per-thread bitmap and only rows seen twice
  are verified. More postings, read in order, but far fewer random reads: at 10 million
  PDQ-shaped hashes a typical unrelated query reads 110,000 postings, of which 2,600 rows twice,
  where the single cover verifies 46,000 rows.

When the modelled cost of probing exceeds a scan (large ``max_distance``, small segments), the
segment is scanned, so any ``max_distance`` from 0 to 256 is exact.

Why this structure (all measured on this code, 10M hashes, 2 cores of an AMD EPYC): Meta's HMA
uses faiss ``IndexBinaryMultiHash`` (16 chunks of 16 bits at radius 1, hash maps of id vectors):
about 41,000 candidates a query at 10M uniform hashes, 3.5 ms and 300 bytes a hash. Chunks of 21
bits at radius <= 2 meet about 9,000, dense CSR arrays cost no pointers, and prefetching the
next pass's data (bucket bounds, then postings, then rows 20 candidates ahead) overlaps the
cache misses: 0.47 ms a query without it, under 0.2 ms with it. The chunk shape is chosen per
segment by a cost model (``_choose_shape``) within 60 bytes a hash of tables; at 10M, 11 chunks
of 22 or 23 bits would meet fewer candidates but do not fit. Which bits form a chunk is chosen
from the data (``_assign_bits``): PDQ bits are correlated with their neighbours in DCT order and
unevenly likely, and contiguous chunks made buckets 100 times fuller than uniform (588 rows met
per bucket instead of 5.8 on PDQ-shaped data), a fixed random spread 173, the data-driven one 100.

Updates and threads
-------------------
All state is an immutable ``_Snapshot`` (main segment, removed bitmap, delta). Writers (``add``,
``remove``, ``merge``) serialize on a lock, build a new snapshot (copy-on-write of the bitmap and
of the small delta) and publish it with one attribute assignment; a search reads that attribute
once and works on that snapshot only, without any lock. So a search sees each write entirely or
not at all (a replaced id is found with its old hash or its new one, never neither), and a
search that starts after ``remove()`` (or ``add()``) has returned sees its effect; a search
already running when a write returns may still report what it saw when it started.

When the delta reaches ``merge_threshold`` rows (or removed rows pass a quarter of the main
segment), the writer rebuilds the main segment from the live rows, in its own thread, while
searches go on with the previous snapshot; other writers wait. The kernels release the GIL, so
searches from several threads, and the parts of a batch, run in parallel.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, cast

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numpy.typing import NDArray

__all__ = ["HASH_BYTES", "MATCH_DISTANCE", "HashIndex", "Matches"]

HASH_BYTES = 32
HASH_BITS = 256
_WORDS = 4

# A match, by default: Meta's recommended PDQ threshold.
MATCH_DISTANCE = 31
# Costs of the search model, in nanoseconds, measured on this code at 10M rows (AMD EPYC Zen 5,
# 2 cores): one bucket looked up (its bounds, then its postings), one candidate verified (a
# random 32-byte row, prefetched), one row of a scan of the main segment (sequential, strided).
_COST_LOOKUP_NS = 15.0
_COST_CANDIDATE_NS = 12.0
_COST_SCAN_NS = 1.2
# ... and per posting counted (read in order, then marked and unmarked in a bitmap).
_COST_COUNT_NS = 3.0
# A cost that rules a plan out (finite: zero postings times it must stay zero, not NaN).
_NEVER = 1e30
_COSTS, _COSTS_SINGLE, _COSTS_DOUBLE = (
    np.array([_COST_LOOKUP_NS, candidate, count])
    for candidate, count in [
        (_COST_CANDIDATE_NS, _COST_COUNT_NS),
        (_COST_CANDIDATE_NS, _NEVER),
        (_NEVER, _COST_COUNT_NS),
    ]
)
# Postings plus directory allowed per hash when choosing a chunk shape: with 32 bytes of hash
# and 8 of id a segment stays under 100 bytes a hash.
_INDEX_BYTES_PER_HASH = 60.0
# Below this many rows a segment is scanned, never indexed.
_MIN_INDEXED_ROWS = 4096
# Widest chunk accepted: its directory alone is 4 * 2**bits bytes.
_MAX_CHUNK_BITS = 26
# Rows sampled to choose which bits make each chunk.
_LAYOUT_SAMPLE = 1 << 16
# The delta is scanned by every query: about 12 us a query at this size (0.36 ns a row,
# measured), 5% of a search of 10M hashes; a merge at 10M takes about 5 s of the writer's time.
DEFAULT_MERGE_THRESHOLD = 32_768
# A batch is split across threads only with at least this many queries a part.
_MIN_QUERIES_PER_THREAD = 4
# Candidates ahead whose rows are prefetched while verifying (best of 12..64, measured).
_PREFETCH_AHEAD = 20
# Rows whose distances a scan computes at a time (fits in L1 with the four words).
_SCAN_BLOCK = 1024

_U1 = np.uint64(1)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1 = np.uint64(1)
_S2 = np.uint64(2)
_S4 = np.uint64(4)
_S56 = np.uint64(56)

Int64Array = NDArray[np.int64]
Int32Array = NDArray[np.int32]
Uint32Array = NDArray[np.uint32]
Uint64Array = NDArray[np.uint64]


class Matches(NamedTuple):
    """The stored hashes matching one query, nearest first (ties by id)."""

    ids: Int64Array
    distances: Int32Array


# ---------------------------------------------------------------------------------------------
# Kernels. Hashes are uint64 words (four a hash, native order); all kernels release the GIL.


@njit(cache=True, nogil=True, inline="always")
def _popcount(x: np.uint64) -> int:
    # The SWAR idiom: LLVM recognizes it and emits a single popcnt instruction.
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return int((x * _H01) >> _S56)


def _prefetch_intrinsic(typingctx: Any, array: Any, row: Any) -> tuple[Any, Any]:
    """Numba intrinsic: hint the CPU to fetch ``array[row]`` (an element or a row) into cache.

    Numba has no prefetch of its own; this emits LLVM's ``llvm.prefetch`` (a no-op where the
    target has none).
    """
    signature = types.void(array, row)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        array_type = sig.args[0]
        data = context.make_array(array_type)(context, builder, args[0])
        indices = [args[1]] + [ir.Constant(ir.IntType(64), 0)] * (array_type.ndim - 1)
        helpers: Any = cgutils
        pointer = helpers.get_item_pointer(
            context, builder, array_type, data, indices, wraparound=False
        )
        byte_pointer = ir.IntType(8).as_pointer()
        function = helpers.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer] + [ir.IntType(32)] * 3),
            "llvm.prefetch.p0",
        )
        # Arguments: read (0), high temporal locality (3), data cache (1).
        flags = [ir.Constant(ir.IntType(32), v) for v in (0, 3, 1)]
        builder.call(function, [builder.bitcast(pointer, byte_pointer), *flags])
        return context.get_dummy_value()

    return signature, codegen


_prefetch = cast(Callable[[NDArray[Any], Any], None], intrinsic(_prefetch_intrinsic))


@njit(cache=True, nogil=True)
def _index_chunk(
    words: Uint64Array,
    pos_word: Int64Array,
    pos_bit: Uint64Array,
    offsets: Uint32Array,
    postings: Uint32Array,
) -> None:
    """Fill one chunk's CSR table: ``offsets`` (2**b + 1, zeroed) and ``postings`` (n)."""
    n = words.shape[0]
    b = pos_word.shape[0]
    keys = np.empty(n, np.uint32)
    for i in range(n):
        key = np.uint64(0)
        for j in range(b):
            key |= ((words[i, pos_word[j]] >> pos_bit[j]) & _U1) << np.uint64(j)
        keys[i] = np.uint32(key)
        offsets[key + 1] += 1
    for k in range(1, offsets.shape[0]):
        offsets[k] += offsets[k - 1]
    cursor = offsets[:-1].copy()
    for i in range(n):
        key = keys[i]
        postings[cursor[key]] = i
        cursor[key] += 1


@njit(cache=True, nogil=True)
def _grow_i64(a: Int64Array) -> Int64Array:
    b = np.empty(a.shape[0] * 2, a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def _grow_i32(a: Int32Array) -> Int32Array:
    b = np.empty(a.shape[0] * 2, a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def _choose_radii(
    within: Int64Array,
    balls: Int64Array,
    need: int,
    lookup_ns: float,
    entry_ns: float,
    best: NDArray[np.float64],
    choice: Int64Array,
    radii: Int64Array,
) -> float:
    """Per-chunk radii (-1: skip) whose units (radius + 1) sum to ``need``, at least cost.

    The cost of chunk c at radius t is its ``balls[t]`` bucket reads plus ``within[c, t]``
    postings; a knapsack over chunks and units. Returns the cost (inf if ``need`` is out of
    reach); ``best`` and ``choice`` are scratch of shape (m + 1, need + 1) and (m, need + 1).
    """
    m = within.shape[0]
    top = within.shape[1] - 1
    best[m, :need] = np.inf
    best[m, need] = 0.0
    for c in range(m - 1, -1, -1):
        for u in range(need + 1):
            best[c, u] = best[c + 1, u]
            choice[c, u] = 0
            for t in range(top + 1):
                cost = best[c + 1, min(need, u + t + 1)]
                cost += balls[t] * lookup_ns + within[c, t] * entry_ns
                if cost < best[c, u]:
                    best[c, u] = cost
                    choice[c, u] = t + 1
    u = 0
    for c in range(m):
        radii[c] = choice[c, u] - 1
        u = min(need, u + choice[c, u])
    return float(best[0, 0])


@njit(cache=True, nogil=True)
def _probe_search(
    queries: Uint64Array,
    words: Uint64Array,
    dead: Uint64Array,
    offsets: Uint32Array,
    postings: Uint32Array,
    pos_word: Int64Array,
    pos_bit: Uint64Array,
    masks: Uint64Array,
    flips: Int64Array,
    balls: Int64Array,
    max_distance: int,
    marks: Uint64Array,
    costs: NDArray[np.float64],
) -> tuple[Int64Array, Int64Array, Int32Array]:
    """Search an indexed segment; return (per-query offsets, rows, distances).

    ``flips`` lists the b-bit masks by weight; ``balls[t]`` is how many have weight <= t, for
    t up to the largest radius a chunk may be probed at. ``marks`` is zeroed scratch of two
    bits a row, left zeroed. ``costs``: ns per bucket read, per candidate verified, per posting
    counted.

    For each query, one of two plans, whichever the actual bucket sizes make cheaper:

    * single cover: radii whose units reach ``max_distance + 1``; every match is in some probed
      ball, so every row found is verified (a random read of its hash);
    * double cover: units reaching ``max_distance + 1`` plus the largest chunk's, so that every
      match is in at least two probed balls (drop any one chunk and the rest still cover it).
      Rows are counted in ``marks`` and only those seen twice are verified: more postings
      read, in order, but far fewer random reads (measured at 10M PDQ-shaped rows: 110k
      postings but 2.6k rows seen twice, against 46k rows to verify by the single cover).
    """
    nq = queries.shape[0]
    m = pos_word.shape[0]
    b = pos_word.shape[1]
    top = balls.shape[0] - 1
    per_chunk = balls[top]
    lookup_ns, candidate_ns, count_ns = costs[0], costs[1], costs[2]
    # Units (radius + 1) a query needs from its chunks, for a single and for a double cover.
    need = max_distance + 1
    need_twice = need + top + 1
    starts = np.zeros(nq + 1, np.int64)
    rows = np.empty(64, np.int64)
    dists = np.empty(64, np.int32)
    found = 0
    lo = np.empty(m * per_chunk, np.int64)
    hi = np.empty(m * per_chunk, np.int64)
    within = np.zeros((m, top + 1), np.int64)
    best = np.empty((m + 1, need_twice + 1), np.float64)
    choice = np.empty((m, need_twice + 1), np.int64)
    radii = np.empty(m, np.int64)
    radii_twice = np.empty(m, np.int64)
    cand = np.empty(1024, np.int64)
    cand_chunk = np.empty(1024, np.int64)
    for qi in range(nq):
        q0 = queries[qi, 0]
        q1 = queries[qi, 1]
        q2 = queries[qi, 2]
        q3 = queries[qi, 3]
        # Pass 1: the bounds of every bucket within `top` bits of the query, in every chunk.
        # Each pass below is a loop of independent random reads, which the CPU overlaps; the
        # prefetches bring in the next pass's data (measured: 0.47 -> 0.18 ms at 10M rows).
        for c in range(m):
            key = np.uint64(0)
            for j in range(b):
                key |= ((queries[qi, pos_word[c, j]] >> pos_bit[c, j]) & _U1) << np.uint64(j)
            base = np.int64(key)
            at = c * per_chunk
            total = np.int64(0)
            t = 0
            for f in range(per_chunk):
                probe = base ^ flips[f]
                start = np.int64(offsets[c, probe])
                stop = np.int64(offsets[c, probe + 1])
                lo[at + f] = start
                hi[at + f] = stop
                _prefetch(postings[c], start)
                total += stop - start
                while t <= top and f + 1 == balls[t]:
                    within[c, t] = total
                    t += 1
        single = _choose_radii(within, balls, need, lookup_ns, candidate_ns, best, choice, radii)
        double = np.inf
        if m * (top + 1) >= need_twice:
            double = _choose_radii(
                within, balls, need_twice, lookup_ns, count_ns, best, choice, radii_twice
            )
        twice = double < single
        if twice:
            radii[:] = radii_twice
        # Pass 2: the row numbers in the chosen buckets (with the double cover: those seen
        # twice, the second time they are seen).
        entries = 0
        for c in range(m):
            if radii[c] >= 0:
                entries += within[c, radii[c]]
        if entries > cand.shape[0]:
            cand = np.empty(2 * entries, np.int64)
            cand_chunk = np.empty(2 * entries, np.int64)
        nc = 0
        for c in range(m):
            if radii[c] < 0:
                continue
            at = c * per_chunk
            for f in range(balls[radii[c]]):
                for p in range(lo[at + f], hi[at + f]):
                    row = np.int64(postings[c, p])
                    if twice:
                        word = row >> 5
                        shift = np.uint64(2 * (row & 31))
                        state = (marks[word] >> shift) & np.uint64(3)
                        if state == 2:
                            continue
                        marks[word] += _U1 << shift
                        if state == 0:
                            continue
                    cand[nc] = row
                    cand_chunk[nc] = c
                    nc += 1
        if twice:
            for c in range(m):
                if radii[c] < 0:
                    continue
                at = c * per_chunk
                for f in range(balls[radii[c]]):
                    for p in range(lo[at + f], hi[at + f]):
                        marks[np.int64(postings[c, p]) >> 5] = 0
        # Pass 3: verify each candidate against the full hash.
        for i in range(nc):
            if i + _PREFETCH_AHEAD < nc:
                _prefetch(words, cand[i + _PREFETCH_AHEAD])
            row = cand[i]
            x0 = q0 ^ words[row, 0]
            x1 = q1 ^ words[row, 1]
            x2 = q2 ^ words[row, 2]
            x3 = q3 ^ words[row, 3]
            d = _popcount(x0) + _popcount(x1) + _popcount(x2) + _popcount(x3)
            if d > max_distance:
                continue
            if (dead[row >> 6] >> np.uint64(row & 63)) & _U1:
                continue
            if not twice:
                # Reported already if an earlier chunk was within its own radius.
                c = cand_chunk[i]
                seen = False
                for e in range(c):
                    if radii[e] >= 0:
                        de = (
                            _popcount(x0 & masks[e, 0])
                            + _popcount(x1 & masks[e, 1])
                            + _popcount(x2 & masks[e, 2])
                            + _popcount(x3 & masks[e, 3])
                        )
                        if de <= radii[e]:
                            seen = True
                            break
                if seen:
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
def _scan_search(
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
                if check_dead and (dead[row >> 6] >> np.uint64(row & 63)) & _U1:
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
def _combine(
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
def _set_bits(bitmap: Uint64Array, rows: Int64Array) -> None:
    for row in rows:
        bitmap[row >> 6] |= _U1 << np.uint64(row & 63)


# ---------------------------------------------------------------------------------------------
# Segments and snapshots.


# ---------------------------------------------------------------------------------------------
# Chunk layouts, segments and snapshots.


@lru_cache(maxsize=256)
def _ball_size(bits: int, radius: int) -> int:
    """Number of b-bit values within ``radius`` bits of a given one (0 for radius -1)."""
    return sum(math.comb(bits, w) for w in range(min(radius, bits) + 1)) if radius >= 0 else 0


def _radii(chunks: int, max_distance: int) -> list[int]:
    """Per-chunk radii, as even as possible, with ``sum >= max_distance - chunks + 1``."""
    base, extra = divmod(max_distance - chunks + 1, chunks)
    return [base + 1] * extra + [base] * (chunks - extra)


@lru_cache(maxsize=16)
def _flip_masks(bits: int, radius: int) -> Int64Array:
    """Every ``bits``-bit mask of weight at most ``radius``, lightest first (read-only)."""
    masks = [0]
    for weight in range(1, radius + 1):
        # Gosper's hack enumerates the masks of one weight in increasing order.
        v = (1 << weight) - 1
        while v < (1 << bits):
            masks.append(v)
            low = v & -v
            ripple = v + low
            v = (((ripple ^ v) >> 2) // low) | ripple
    out = np.array(masks, dtype=np.int64)
    out.flags.writeable = False
    return out


def _probe_cost_ns(chunks: int, bits: int, occupancy: float, max_distance: int) -> float:
    """Modelled cost of one query probed with even radii (what the kernel improves on).

    Infinite when the chunks cannot certify ``max_distance``: when it exceeds what the
    pigeonhole bound covers even at a chunk's full radius.
    """
    radii = _radii(chunks, max_distance)
    if max(radii) > bits:
        return math.inf
    looked_up = chunks * _ball_size(bits, max(radii))
    probed = sum(_ball_size(bits, t) for t in radii)
    return looked_up * _COST_LOOKUP_NS + probed * occupancy * _COST_CANDIDATE_NS


def _choose_shape(rows: int) -> tuple[int, int] | None:
    """The (chunks, bits) with the least modelled cost at distance 31, or None: scan instead.

    Only shapes whose postings and directory take at most ``_INDEX_BYTES_PER_HASH`` are
    considered, with the uniform occupancy ``rows / 2**bits``.
    """
    if rows < _MIN_INDEXED_ROWS:
        return None
    best: tuple[float, int, int] | None = None
    for bits in range(8, 25):
        for chunks in range(8, HASH_BITS // bits + 1):
            if 4.0 * chunks * (1.0 + (2**bits + 1) / rows) > _INDEX_BYTES_PER_HASH:
                continue
            cost = _probe_cost_ns(chunks, bits, rows / 2**bits, MATCH_DISTANCE)
            if best is None or cost < best[0]:
                best = (cost, chunks, bits)
    if best is None or best[0] >= rows * _COST_SCAN_NS:
        return None
    return best[1], best[2]


def _word_position(text_bit: int) -> tuple[int, int]:
    """Where text-order bit ``p`` (0 = first bit of the first hex digit) is in the uint64 view.

    Text bit p is bit 7 - p % 8 of byte p // 8, and byte k is bits 8 * (k % 8) onwards of word
    k // 8 in the little-endian view.
    """
    return divmod((text_bit // 8) * 8 + 7 - text_bit % 8, 64)


def _assign_bits(words: Uint64Array, chunks: int, bits: int) -> list[list[int]]:
    """Group text-order bit positions into chunks so that each chunk's bits correlate little.

    PDQ bits are not independent (neighbouring DCT coefficients move together, and some bits
    are set far more often than others), and a chunk of correlated or biased bits spreads its
    rows over few buckets. Measured on PDQ-shaped data at 10M rows (12 chunks of 21 bits; mean
    rows per bucket met by a query, 4.8 if uniform): contiguous bits 588, a fixed random
    permutation 173, this greedy assignment 101. On uniform data it is no worse than random.

    Greedy, from a sample of rows: the most balanced bits first (the least balanced are left
    out when ``chunks * bits < 256``), each to the chunk with room whose members it correlates
    with least (sum of squared correlations).
    """
    n = words.shape[0]
    sample = words[np.unique(np.linspace(0, n - 1, min(n, _LAYOUT_SAMPLE)).astype(np.int64))]
    values = np.empty((sample.shape[0], HASH_BITS), np.float32)
    for p in range(HASH_BITS):
        word, bit = _word_position(p)
        values[:, p] = (sample[:, word] >> np.uint64(bit)) & _U1
    mean = values.mean(axis=0)
    centred = values - mean
    cov = centred.T @ centred / max(1, values.shape[0])
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    scale = np.outer(std, std)
    corr2 = np.where(scale > 0, cov / np.where(scale > 0, scale, 1.0), 0.0) ** 2
    np.fill_diagonal(corr2, 0.0)
    balance = np.minimum(mean, 1.0 - mean)
    order = np.argsort(-balance, kind="stable")[: chunks * bits]
    groups: list[list[int]] = [[] for _ in range(chunks)]
    for p in order.tolist():
        best_chunk, best_cost = -1, math.inf
        for c, members in enumerate(groups):
            if len(members) == bits:
                continue
            cost = float(corr2[p, members].sum()) if members else 0.0
            if cost < best_cost:
                best_chunk, best_cost = c, cost
        groups[best_chunk].append(int(p))
    return groups


@dataclass(frozen=True, slots=True)
class _Layout:
    """Which bits make each chunk, as word/bit positions in the (n, 4) uint64 view."""

    pos_word: Int64Array  # (chunks, bits)
    pos_bit: Uint64Array  # (chunks, bits)
    masks: Uint64Array  # (chunks, 4): each chunk's bits as a mask over the four words

    @classmethod
    def from_groups(cls, groups: list[list[int]]) -> _Layout:
        chunks, bits = len(groups), len(groups[0])
        pos_word = np.empty((chunks, bits), np.int64)
        pos_bit = np.empty((chunks, bits), np.uint64)
        masks = np.zeros((chunks, _WORDS), np.uint64)
        for c, members in enumerate(groups):
            for j, text_bit in enumerate(members):
                word, bit = _word_position(text_bit)
                pos_word[c, j] = word
                pos_bit[c, j] = bit
                masks[c, word] |= np.uint64(1 << bit)
        return cls(pos_word, pos_bit, masks)

    @property
    def chunks(self) -> int:
        return int(self.pos_word.shape[0])

    @property
    def bits(self) -> int:
        return int(self.pos_word.shape[1])

    @property
    def nbytes(self) -> int:
        return self.pos_word.nbytes + self.pos_bit.nbytes + self.masks.nbytes


@dataclass(frozen=True, slots=True)
class _Segment:
    """Immutable rows sorted by id, with their chunk tables when the segment is indexed."""

    ids: Int64Array  # (n,), strictly increasing
    words: Uint64Array  # (n, 4)
    layout: _Layout | None
    offsets: Uint32Array  # (chunks, 2**bits + 1)
    postings: Uint32Array  # (chunks, n)
    # Rows per bucket met by a query drawn like the stored hashes: sum(size**2) / n over the
    # buckets, averaged over the chunks; above rows / 2**bits when chunk values are skewed.
    occupancy: float

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def nbytes(self) -> int:
        held = self.ids.nbytes + self.words.nbytes + self.offsets.nbytes + self.postings.nbytes
        return held + (self.layout.nbytes if self.layout is not None else 0)


def _build_segment(
    ids: Int64Array, words: Uint64Array, shape: tuple[int, int] | None = None
) -> _Segment:
    """Index rows whose ids are unique and increasing; ``shape`` overrides the chosen one."""
    n = int(ids.shape[0])
    if shape is None:
        shape = _choose_shape(n)
    if shape is None or n == 0:
        tables = np.empty((0, 1), np.uint32), np.empty((0, 0), np.uint32)
        return _Segment(ids, words, None, *tables, occupancy=0.0)
    chunks, bits = shape
    if not (1 <= bits <= _MAX_CHUNK_BITS and chunks >= 1 and chunks * bits <= HASH_BITS):
        raise ValueError(f"no chunk shape {chunks} x {bits} bits fits in {HASH_BITS} bits")
    if n >= 2**32:
        raise ValueError("a segment holds fewer than 2**32 rows")
    layout = _Layout.from_groups(_assign_bits(words, chunks, bits))
    offsets = np.zeros((chunks, 2**bits + 1), np.uint32)
    postings = np.empty((chunks, n), np.uint32)

    def index(c: int) -> None:
        _index_chunk(words, layout.pos_word[c], layout.pos_bit[c], offsets[c], postings[c])

    # The chunks are independent and the kernel releases the GIL: one per core at a time.
    for _ in _executor().map(index, range(chunks)):
        pass
    sizes = np.diff(offsets, axis=1).astype(np.float64)
    occupancy = float((sizes * sizes).sum() / (n * chunks))
    return _Segment(ids, words, layout, offsets, postings, occupancy)


def _empty_words() -> Uint64Array:
    return np.empty((0, _WORDS), np.uint64)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything a search reads. Never modified once published."""

    main: _Segment
    dead: Uint64Array  # one bit per main row: removed (or replaced) rows
    dead_count: int
    delta_ids: Int64Array  # unique, in no order, none of them live in the main segment
    delta_columns: Uint64Array  # (4, len(delta_ids)): column w is word w of each delta row

    @classmethod
    def of(cls, main: _Segment) -> _Snapshot:
        dead = np.zeros((len(main) + 63) // 64, np.uint64)
        return cls(main, dead, 0, np.empty(0, np.int64), np.empty((_WORDS, 0), np.uint64))

    def __len__(self) -> int:
        return len(self.main) - self.dead_count + int(self.delta_ids.shape[0])

    @property
    def nbytes(self) -> int:
        delta = self.delta_ids.nbytes + self.delta_columns.nbytes
        return self.main.nbytes + self.dead.nbytes + delta


_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _executor() -> ThreadPoolExecutor:
    """A process-wide pool, one thread per usable core (made anew in a forked child)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(_threads(), thread_name_prefix="hashindex"))
        return _pool[1]


_scratch = threading.local()


def _marks(rows: int) -> Uint64Array:
    """This thread's zeroed bitmap of two bits a row, for the double-cover plan to count in.

    One per thread, kept between searches (the kernel leaves it zeroed): allocating 2.5 MB a
    search would cost more in page faults than the search itself.
    """
    words = (rows + 31) // 32
    marks: Uint64Array | None = getattr(_scratch, "marks", None)
    if marks is None or marks.shape[0] < words:
        marks = np.zeros(max(words, 1), np.uint64)
        _scratch.marks = marks
    return marks


def _as_words(hashes: NDArray[np.uint8]) -> Uint64Array:
    """View (n, 32) bytes as (n, 4) native uint64 words of the little-endian byte order."""
    data = np.ascontiguousarray(hashes, dtype=np.uint8)
    return data.view(np.dtype("<u8")).astype(np.uint64, copy=False)


def _check_hashes(hashes: NDArray[np.uint8], name: str) -> Uint64Array:
    array = np.asarray(hashes)
    if array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != HASH_BYTES:
        raise ValueError(f"{name} must be a uint8 array of shape (n, {HASH_BYTES})")
    return _as_words(array)


def _check_ids(ids: NDArray[np.int64] | Sequence[int]) -> Int64Array:
    array = np.asarray(ids)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError("ids must be a one-dimensional integer array")
    return array.astype(np.int64, copy=False)


def _check_pairs(
    ids: NDArray[np.int64] | Sequence[int], hashes: NDArray[np.uint8]
) -> tuple[Int64Array, Uint64Array]:
    """Validate ids and hashes; sort by id, keeping the last hash of an id given twice."""
    id_array = _check_ids(ids)
    words = _check_hashes(hashes, "hashes")
    if id_array.shape[0] != words.shape[0]:
        raise ValueError("ids and hashes must have the same length")
    order = np.argsort(id_array)
    sorted_ids = id_array[order]
    repeated = sorted_ids[1:] == sorted_ids[:-1]
    if repeated.any():
        # Only a stable sort keeps the given order among equal ids, so the last one is known.
        order = np.argsort(id_array, kind="stable")
        sorted_ids = id_array[order]
        last = np.ones(sorted_ids.shape[0], dtype=bool)
        last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
        order, sorted_ids = order[last], sorted_ids[last]
    return sorted_ids, words[order]


class HashIndex:
    """Exact Hamming-distance search over 256-bit PDQ hashes, each stored under an int64 id.

    Hashes are uint8 arrays of shape (n, 32): the 32 bytes of the hash's text form. Each id is
    stored at most once: adding an id already present replaces its hash, and within one
    ``add`` (or ``build``) the last occurrence of an id wins.

    Any number of threads may search while other threads add or remove: writers serialize on a
    lock and publish immutable snapshots; each search reads one snapshot (module docstring).
    """

    def __init__(
        self,
        *,
        merge_threshold: int = DEFAULT_MERGE_THRESHOLD,
        chunk_shape: tuple[int, int] | None = None,
    ) -> None:
        """``merge_threshold``: delta rows that trigger a merge into the main segment.

        ``chunk_shape`` (chunks, bits per chunk) fixes the main segment's shape instead of
        choosing it by size; for tests and tuning.
        """
        if merge_threshold < 1:
            raise ValueError("merge_threshold must be at least 1")
        self.merge_threshold = merge_threshold
        self.chunk_shape = chunk_shape
        # "auto": probe or scan, whichever costs less. Tests force one path: "scan", "probe"
        # (whenever exact), "single" or "double" (probe with that plan, see _probe_search).
        self._strategy = "auto"
        self._write_lock = threading.Lock()
        self._snapshot = _Snapshot.of(_build_segment(np.empty(0, np.int64), _empty_words()))

    @classmethod
    def build(
        cls,
        ids: NDArray[np.int64] | Sequence[int],
        hashes: NDArray[np.uint8],
        *,
        merge_threshold: int = DEFAULT_MERGE_THRESHOLD,
        chunk_shape: tuple[int, int] | None = None,
    ) -> HashIndex:
        """An index of these hashes, built at once as one main segment (the start-up path)."""
        index = cls(merge_threshold=merge_threshold, chunk_shape=chunk_shape)
        sorted_ids, words = _check_pairs(ids, hashes)
        index._snapshot = _Snapshot.of(_build_segment(sorted_ids, words, chunk_shape))
        return index

    def __len__(self) -> int:
        """The number of ids stored."""
        return len(self._snapshot)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays of the current snapshot (hashes, ids, tables, bitmap).

        Not counted: each searching thread's scratch bitmap (2 bits a row, shared by all
        indexes) and, during a merge, the segment being built.
        """
        return self._snapshot.nbytes

    def add(self, ids: NDArray[np.int64] | Sequence[int], hashes: NDArray[np.uint8]) -> None:
        """Store each hash under its id, replacing the hash of an id already present.

        Rows go to the delta; reaching ``merge_threshold`` merges them into the main segment
        (so a large ``add`` to an empty index builds it like ``build``).
        """
        new_ids, new_words = _check_pairs(ids, hashes)
        if new_ids.shape[0] == 0:
            return
        with self._write_lock:
            s = _without(self._snapshot, new_ids)
            s = _Snapshot(
                s.main,
                s.dead,
                s.dead_count,
                np.concatenate([s.delta_ids, new_ids]),
                np.concatenate([s.delta_columns, new_words.T], axis=1),
            )
            self._snapshot = self._merged_if_due(s)

    def remove(self, ids: NDArray[np.int64] | Sequence[int]) -> None:
        """Remove these ids; ids not present are ignored."""
        gone = np.unique(_check_ids(ids))
        if gone.shape[0] == 0:
            return
        with self._write_lock:
            self._snapshot = self._merged_if_due(_without(self._snapshot, gone))

    def merge(self) -> None:
        """Fold the delta and the removed rows into a new main segment now."""
        with self._write_lock:
            self._snapshot = self._merged(self._snapshot)

    def _merged_if_due(self, s: _Snapshot) -> _Snapshot:
        # A small main segment merges sooner, so the delta never dwarfs it; rebuilding a small
        # segment is cheap, and the geometric growth keeps the total work linear.
        limit = min(self.merge_threshold, max(_MIN_INDEXED_ROWS, len(s.main) // 4))
        if s.delta_ids.shape[0] >= limit or s.dead_count > max(1024, len(s.main) // 4):
            return self._merged(s)
        return s

    def _merged(self, s: _Snapshot) -> _Snapshot:
        """A snapshot whose main segment holds every live row, with no delta or removals."""
        main = s.main
        ids, words = main.ids, main.words
        if s.dead_count:
            removed = np.unpackbits(s.dead.view(np.uint8), bitorder="little")[: len(main)]
            live = removed == 0
            ids, words = ids[live], words[live]
        ids = np.concatenate([ids, s.delta_ids])
        words = np.concatenate([words, s.delta_columns.T])
        order = np.argsort(ids)
        return _Snapshot.of(_build_segment(ids[order], words[order], self.chunk_shape))

    def search(self, queries: NDArray[np.uint8], max_distance: int = 31) -> list[Matches]:
        """For each query row, every stored hash within ``max_distance`` bits (inclusive).

        ``queries`` is a uint8 array of shape (q, 32); ``max_distance`` is from 0 to 256.
        Returns one ``Matches`` per query, nearest first (ties by id). A batch is spread over
        the cores.
        """
        if isinstance(max_distance, bool) or not isinstance(max_distance, int | np.integer):
            raise TypeError("max_distance must be an integer")
        if not 0 <= max_distance <= HASH_BITS:
            raise ValueError(f"max_distance must be from 0 to {HASH_BITS}")
        radius = int(max_distance)
        qwords = _check_hashes(queries, "queries")
        s = self._snapshot
        count = qwords.shape[0]
        if count == 0:
            return []
        threads = _threads()
        parts = min(4 * threads, count // _MIN_QUERIES_PER_THREAD) if threads > 1 else 1
        if parts <= 1:
            starts, ids, dists = _search_snapshot(s, qwords, radius, self._strategy)
        else:
            # More parts than threads, so that a part of slow queries does not hold up the rest.
            edges = np.linspace(0, count, parts + 1).astype(np.int64).tolist()
            pieces = list(
                _executor().map(
                    lambda k: _search_snapshot(
                        s, qwords[edges[k] : edges[k + 1]], radius, self._strategy
                    ),
                    range(parts),
                )
            )
            found = np.cumsum([0] + [piece[1].shape[0] for piece in pieces])
            starts = np.concatenate(
                [np.zeros(1, np.int64)]
                + [piece[0][1:] + base for piece, base in zip(pieces, found, strict=False)]
            )
            ids = np.concatenate([piece[1] for piece in pieces])
            dists = np.concatenate([piece[2] for piece in pieces])
        cuts = starts[1:-1].tolist()
        return [
            Matches(i, d) for i, d in zip(np.split(ids, cuts), np.split(dists, cuts), strict=True)
        ]


def _search_snapshot(
    s: _Snapshot, qwords: Uint64Array, max_distance: int, strategy: str
) -> tuple[Int64Array, Int64Array, Int32Array]:
    """Search the main segment and the delta; (per-query offsets, ids, distances)."""
    main = s.main
    layout = main.layout
    probe = False
    costs = _COSTS
    if layout is not None:
        cost = _probe_cost_ns(layout.chunks, layout.bits, main.occupancy, max_distance)
        if strategy == "auto":
            probe = cost < len(main) * _COST_SCAN_NS
        elif strategy != "scan":
            probe = cost < math.inf
            if strategy == "single":
                costs = _COSTS_SINGLE
            elif strategy == "double":
                costs = _COSTS_DOUBLE
    if layout is not None and probe:
        top = max(_radii(layout.chunks, max_distance))
        starts_a, rows_a, dists_a = _probe_search(
            qwords,
            main.words,
            s.dead,
            main.offsets,
            main.postings,
            layout.pos_word,
            layout.pos_bit,
            layout.masks,
            _flip_masks(layout.bits, top),
            np.array([_ball_size(layout.bits, t) for t in range(top + 1)], np.int64),
            max_distance,
            _marks(len(main)),
            costs,
        )
    else:
        # A rare path (large distances, small segments): the strided view is fast enough.
        starts_a, rows_a, dists_a = _scan_search(qwords, main.words.T, s.dead, max_distance)
    starts_b, rows_b, dists_b = _scan_search(
        qwords, s.delta_columns, np.zeros(0, np.uint64), max_distance
    )
    return _combine(starts_a, main.ids[rows_a], dists_a, starts_b, s.delta_ids[rows_b], dists_b)


def _without(s: _Snapshot, ids: Int64Array) -> _Snapshot:
    """``s`` with these ids (unique) marked removed in the main segment and cut from the delta."""
    main_ids = s.main.ids
    dead, dead_count = s.dead, s.dead_count
    if main_ids.shape[0]:
        at = np.minimum(np.searchsorted(main_ids, ids), main_ids.shape[0] - 1)
        rows = at[main_ids[at] == ids].astype(np.int64)
        rows = rows[(dead[rows >> 6] >> (rows & 63).astype(np.uint64)) & _U1 == 0]
        if rows.shape[0]:
            # Copy on write: searches still reading the old snapshot keep the old bitmap.
            dead = dead.copy()
            _set_bits(dead, rows)
            dead_count += int(rows.shape[0])
    delta_ids, delta_columns = s.delta_ids, s.delta_columns
    if delta_ids.shape[0]:
        keep = ~np.isin(delta_ids, ids)
        if not keep.all():
            delta_ids, delta_columns = delta_ids[keep], delta_columns[:, keep]
    return _Snapshot(s.main, dead, dead_count, delta_ids, delta_columns)
