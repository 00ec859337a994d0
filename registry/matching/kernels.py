"""The numba kernels of the match index: popcounts, bucket probes, scans and merges.

Hashes are uint64 words (four a hash, native order); every kernel releases the GIL. The
index (registry.matching.index) chooses which kernel runs; registry.matching.layout builds
the structures they read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numpy.typing import NDArray

HASH_BITS = 256
WORDS = 4  # uint64 words a hash

# Candidates ahead whose rows are prefetched while verifying (best of 12..64, measured).
_PREFETCH_AHEAD = 20
# Rows a group of the double cover's count spans at least (2**16 rows: 16 KB of marks).
_PART_SHIFT = 16
# Buckets ahead whose postings are prefetched while the double cover copies them (best of
# 4, 8 and 16, measured).
_BUCKETS_AHEAD = 8

U1 = np.uint64(1)
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
def index_chunk(
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
            key |= ((words[i, pos_word[j]] >> pos_bit[j]) & U1) << np.uint64(j)
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
def pairs_within(
    sample: Uint64Array, queries: Uint64Array, pos_word: Int64Array, pos_bit: Uint64Array, top: int
) -> Int64Array:
    """Per chunk c and radius t <= ``top``: how many (query, sample row) pairs of rows are
    within t bits of each other on chunk c (the estimate of rows met, layout._rows_met)."""
    m = pos_word.shape[0]
    b = pos_word.shape[1]
    out = np.zeros((m, top + 1), np.int64)
    keys = np.empty(sample.shape[0], np.uint64)
    for c in range(m):
        for i in range(sample.shape[0]):
            key = np.uint64(0)
            for j in range(b):
                key |= ((sample[i, pos_word[c, j]] >> pos_bit[c, j]) & U1) << np.uint64(j)
            keys[i] = key
        for qi in range(queries.shape[0]):
            key = np.uint64(0)
            for j in range(b):
                key |= ((queries[qi, pos_word[c, j]] >> pos_bit[c, j]) & U1) << np.uint64(j)
            for i in range(sample.shape[0]):
                d = _popcount(keys[i] ^ key)
                if d <= top:
                    out[c, d] += 1
        for t in range(1, top + 1):
            out[c, t] += out[c, t - 1]
    return out


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
def _group_rows(
    postings: Uint32Array,
    bucket_lo: Int64Array,
    bucket_hi: Int64Array,
    bucket_chunk: Int64Array,
    buckets: int,
    part_shift: int,
    first: Int64Array,
    limit: Int64Array,
    ends: Int64Array,
    grouped: NDArray[Any],
) -> bool:
    """Copy the rows of these buckets into ``grouped`` by group (``row >> part_shift``).

    Group g is written from ``first[g]`` on, its end left in ``ends[g]``; False (and the copy
    unfinished) as soon as a group would pass ``limit[g]``. The buckets' postings are
    prefetched a few buckets ahead: a bucket's rows are a short run, and without it each run
    was a cache miss the CPU could not overlap (a quarter of a search, measured).
    """
    local = np.uint32((1 << part_shift) - 1)
    ends[:] = first
    for e in range(buckets):
        if e + _BUCKETS_AHEAD < buckets:
            ahead = postings[bucket_chunk[e + _BUCKETS_AHEAD]]
            for p in range(bucket_lo[e + _BUCKETS_AHEAD], bucket_hi[e + _BUCKETS_AHEAD], 16):
                _prefetch(ahead, p)
            _prefetch(ahead, bucket_hi[e + _BUCKETS_AHEAD] - 1)
        chunk = postings[bucket_chunk[e]]
        for p in range(bucket_lo[e], bucket_hi[e]):
            row = chunk[p]
            g = row >> part_shift
            k = ends[g]
            if k == limit[g]:
                return False
            grouped[k] = row & local
            ends[g] = k + 1
    return True


@njit(cache=True, nogil=True)
def _count_twice(
    grouped: NDArray[Any],
    first: Int64Array,
    ends: Int64Array,
    part_shift: int,
    marks: Uint64Array,
    out: Int64Array,
) -> int:
    """Write to ``out`` each row found at least twice in the groups; return how many.

    Group g is ``grouped[first[g]:ends[g]]``, rows ``g << part_shift`` onwards, counted in
    ``marks`` (two bits for each row of a group, left zeroed): a group's marks stay in the L1
    cache, where counting in one bitmap of the whole segment (2.5 MB at 10M rows) missed it on
    nearly every posting.
    """
    local = np.uint32((1 << part_shift) - 1)
    found = 0
    for g in range(first.shape[0]):
        base = np.int64(g) << part_shift
        for i in range(first[g], ends[g]):
            row = np.uint32(grouped[i]) & local
            word = row >> 5
            shift = np.uint64(2 * (row & 31))
            state = (marks[word] >> shift) & np.uint64(3)
            if state == 2:
                continue
            marks[word] += U1 << shift
            if state == 1:
                out[found] = base | np.int64(row)
                found += 1
        for i in range(first[g], ends[g]):
            marks[(np.uint32(grouped[i]) & local) >> 5] = 0
    return found


@njit(cache=True, nogil=True)
def _found_twice(
    postings: Uint32Array,
    bucket_lo: Int64Array,
    bucket_hi: Int64Array,
    bucket_chunk: Int64Array,
    buckets: int,
    entries: int,
    part_shift: int,
    first: Int64Array,
    limit: Int64Array,
    ends: Int64Array,
    marks: Uint64Array,
    out: Int64Array,
    grouped: NDArray[Any],
) -> tuple[int, NDArray[Any]]:
    """The double cover's rows found twice in these buckets, written to ``out``: how many, and
    ``grouped`` (the scratch the rows are copied into by group; grown, of the same dtype, when
    too small)."""
    groups = first.shape[0]
    # Rows are spread evenly over the groups (rows are in id order, unrelated to the hash), so
    # twice the mean is room enough; else the exact sizes are counted.
    room = 2 * (entries // groups) + 64
    if groups * room > grouped.shape[0]:
        grouped = np.empty(2 * groups * room, grouped.dtype)
    for g in range(groups):
        first[g] = g * room
        limit[g] = first[g] + room
    args = (bucket_lo, bucket_hi, bucket_chunk, buckets, part_shift, first, limit, ends)
    if not _group_rows(postings, *args, grouped):
        ends[:] = 0
        for e in range(buckets):
            for p in range(bucket_lo[e], bucket_hi[e]):
                ends[postings[bucket_chunk[e], p] >> part_shift] += 1
        filled = 0
        for g in range(groups):
            first[g] = filled
            filled += ends[g]
            limit[g] = filled
        _group_rows(postings, *args, grouped)
    return _count_twice(grouped, first, ends, part_shift, marks, out), grouped


@njit(cache=True, nogil=True)
def probe_search(
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
    costs: NDArray[np.float64],
) -> tuple[Int64Array, Int64Array, Int32Array]:
    """Search an indexed segment; return (per-query offsets, rows, distances).

    ``flips`` lists the b-bit masks by weight; ``balls[t]`` is how many have weight <= t, for
    t up to the largest radius a chunk may be probed at. ``costs``: ns per bucket read, per
    candidate verified, per posting counted.

    For each query, one of two plans, whichever the actual bucket sizes make cheaper:

    * single cover: radii whose units reach ``max_distance + 1``; every match is in some probed
      ball, so every row found is verified (a random read of its hash);
    * double cover: units reaching ``max_distance + 1`` plus the largest chunk's, so that every
      match is in at least two probed balls (drop any one chunk and the rest still cover it).
      Rows are counted (_count_twice) and only those seen twice are verified: more postings
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
    # The double cover counts rows by groups of 2**part_shift consecutive rows (at most 256
    # groups), each group in ``marks``: two bits a row, small enough for the L1 cache.
    part_shift = _PART_SHIFT
    while (words.shape[0] >> part_shift) >= 256:
        part_shift += 1
    groups = (words.shape[0] >> part_shift) + 1
    first = np.empty(groups, np.int64)
    limit = np.empty(groups, np.int64)
    ends = np.empty(groups, np.int64)
    # A group's rows fit in 16 bits up to 2**24 rows: half the bytes to copy and count.
    narrow = part_shift == 16
    grouped = np.empty(1024 if narrow else 0, np.uint16)
    grouped_wide = np.empty(0 if narrow else 1024, np.uint32)
    marks = np.zeros(((1 << part_shift) + 31) // 32, np.uint64)
    bucket_lo = np.empty(m * per_chunk, np.int64)
    bucket_hi = np.empty(m * per_chunk, np.int64)
    bucket_chunk = np.empty(m * per_chunk, np.int64)
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
                key |= ((queries[qi, pos_word[c, j]] >> pos_bit[c, j]) & U1) << np.uint64(j)
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
        # twice, found by counting, see _count_twice).
        entries = 0
        for c in range(m):
            if radii[c] >= 0:
                entries += within[c, radii[c]]
        if entries > cand.shape[0]:
            cand = np.empty(2 * entries, np.int64)
            cand_chunk = np.empty(2 * entries, np.int64)
        nc = 0
        if twice:
            buckets = 0
            for c in range(m):
                at = c * per_chunk
                for f in range(balls[radii[c]] if radii[c] >= 0 else 0):
                    if hi[at + f] > lo[at + f]:
                        bucket_lo[buckets] = lo[at + f]
                        bucket_hi[buckets] = hi[at + f]
                        bucket_chunk[buckets] = c
                        buckets += 1
            args = (bucket_lo, bucket_hi, bucket_chunk, buckets, entries, part_shift)
            scratch = (first, limit, ends, marks, cand)
            if narrow:
                nc, grouped = _found_twice(postings, *args, *scratch, grouped)
            else:
                nc, grouped_wide = _found_twice(postings, *args, *scratch, grouped_wide)
        else:
            for c in range(m):
                if radii[c] < 0:
                    continue
                at = c * per_chunk
                for f in range(balls[radii[c]]):
                    for p in range(lo[at + f], hi[at + f]):
                        cand[nc] = np.int64(postings[c, p])
                        cand_chunk[nc] = c
                        nc += 1
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
            if (dead[row >> 6] >> np.uint64(row & 63)) & U1:
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
