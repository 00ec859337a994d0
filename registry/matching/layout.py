"""Chunk layouts and segments of the match index, and the cost model that chooses them.

A segment is a block of stored hashes with, per chunk of bits, a directory of buckets and their
postings (see registry.matching.index for the whole design).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from registry.matching.kernels import (
    HASH_BITS,
    U1,
    WORDS,
    Int64Array,
    Uint32Array,
    Uint64Array,
    index_chunk,
    pairs_within,
)

# A match, by default: Meta's recommended PDQ threshold.
MATCH_DISTANCE = 31
# Costs of the search model, in nanoseconds, measured on this code at 10M rows (AMD EPYC Zen 5,
# 2 cores): one bucket looked up (its bounds, then its postings), one candidate verified (a
# random 32-byte row, prefetched), one row of a scan of the main segment (sequential, strided).
_COST_LOOKUP_NS = 15.0
_COST_CANDIDATE_NS = 12.0
COST_SCAN_NS = 1.2
# ... and per posting counted (read in order, then marked and unmarked in a bitmap).
_COST_COUNT_NS = 3.0
# A cost that rules a plan out (finite: zero postings times it must stay zero, not NaN).
_NEVER = 1e30
COSTS, COSTS_SINGLE, COSTS_DOUBLE = (
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
# ... or, from _ESTIMATED_ROWS rows on, up to this much in all, when that is more (below 2.2
# million rows): a fixed 128 MiB costs a server nothing, and wider chunks meet fewer rows
# (at 1,000,000 PDQ-shaped hashes 12 chunks of 20 bits answer in two thirds of the time of
# the 13 of 17 that 60 bytes a hash allow; on uniform ones 17 of 15 in about half).
_SMALL_INDEX_TABLE_BYTES = 128 * 2**20
# A directory never holds more buckets than this many a row.
_BUCKETS_PER_ROW = 4
# From this many rows on, the shape is chosen on the rows a query would meet, estimated from
# the data (_rows_met), not on the uniform occupancy: skewed chunk values (PDQ-shaped hashes)
# fill buckets far beyond uniform, more so in narrow chunks. Below it a query costs tens of
# microseconds whatever the shape, and the estimate's fraction of a second is not spent.
_ESTIMATED_ROWS = 250_000
# Rows of the sample, and of its queries (other rows), that estimate the rows met.
_ESTIMATE_SAMPLE = 16_384
_ESTIMATE_QUERIES = 64
# Below this many rows a segment is scanned, never indexed.
MIN_INDEXED_ROWS = 4096
# Widest chunk accepted: its directory alone is 4 * 2**bits bytes.
_MAX_CHUNK_BITS = 26
# Rows sampled to choose which bits make each chunk.
_LAYOUT_SAMPLE = 1 << 16
# Below this many rows a segment's chunks are indexed in the calling thread: handing a few
# thousand rows to the pool costs more than indexing them, and the warm-up before a server's
# workers fork (kernels_load) must start no thread.
_POOLED_ROWS = 16_384


@lru_cache(maxsize=256)
def ball_size(bits: int, radius: int) -> int:
    """Number of b-bit values within ``radius`` bits of a given one (0 for radius -1)."""
    return sum(math.comb(bits, w) for w in range(min(radius, bits) + 1)) if radius >= 0 else 0


def even_radii(chunks: int, max_distance: int) -> list[int]:
    """Per-chunk radii, as even as possible, with ``sum >= max_distance - chunks + 1``."""
    base, extra = divmod(max_distance - chunks + 1, chunks)
    return [base + 1] * extra + [base] * (chunks - extra)


@lru_cache(maxsize=16)
def flip_masks(bits: int, radius: int) -> Int64Array:
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


def double_units(chunks: int, max_distance: int) -> list[int] | None:
    """Per-chunk units (radius + 1), as even as possible, of a double cover; None if none fits.

    A double cover needs ``max_distance + 1`` units plus those of its largest chunk (every
    match is then found twice: drop any one chunk and the rest still cover it), with no chunk
    probed beyond the widest radius a single cover uses (the buckets the search reads first).
    """
    top = max(even_radii(chunks, max_distance))
    base, extra = divmod(max_distance + 1 + top + 1, chunks)
    units = [base + 1] * extra + [base] * (chunks - extra)
    return units if max(units) <= top + 1 else None


def probe_cost_ns(chunks: int, bits: int, occupancy: float, max_distance: int) -> float:
    """Modelled cost of one query probed with even radii (what the kernel improves on).

    The cheaper of the two plans the search chooses between (registry.matching.kernels
    probe_search): the single cover verifies every row of the buckets probed; the double cover
    reads more buckets but counts their rows and verifies only those found twice, which this
    model leaves out (a few hundredths of the rows read, on uniform and on PDQ-shaped hashes).
    Modelling the single cover alone chose 11 chunks of 18 bits at 1,000,000 rows, where 13
    of 17 answer in half the time (below). Infinite when the chunks cannot certify
    ``max_distance``: when it exceeds what the pigeonhole bound covers even at a chunk's full
    radius. ``occupancy`` is the rows of a bucket, the same everywhere (uniform hashes);
    ``modelled_cost_ns`` takes the rows met as estimated from the data.
    """
    top = max(even_radii(chunks, max_distance))
    met = [[ball_size(bits, t) * occupancy for t in range(top + 1)]] * chunks
    return modelled_cost_ns(np.array(met, np.float64), bits, max_distance)


def modelled_cost_ns(met: NDArray[np.float64], bits: int, max_distance: int) -> float:
    """``probe_cost_ns`` with ``met[c, t]``: the rows within t bits on chunk c that a query meets.

    The chunks that meet fewest rows at the wider radius are given it.
    """
    chunks = met.shape[0]
    radii = even_radii(chunks, max_distance)
    top = max(radii)
    if top > bits or met.shape[1] <= top:
        return math.inf
    looked_up = chunks * ball_size(bits, top) * _COST_LOOKUP_NS
    order = np.argsort(met[:, top], kind="stable")
    single = float(looked_up) + _COST_CANDIDATE_NS * sum(
        float(met[c, t]) for c, t in zip(order, sorted(radii, reverse=True), strict=True)
    )
    units = double_units(chunks, max_distance)
    if units is None:
        return single
    counted = sum(
        float(met[c, u - 1]) for c, u in zip(order, sorted(units, reverse=True), strict=True)
    )
    return min(single, float(looked_up) + counted * _COST_COUNT_NS)


def _table_bytes_allowed(rows: int) -> float:
    """The most a segment's postings and directory may take (see _SMALL_INDEX_TABLE_BYTES)."""
    allowed = _INDEX_BYTES_PER_HASH * rows
    return max(allowed, _SMALL_INDEX_TABLE_BYTES) if rows >= _ESTIMATED_ROWS else allowed


def _choose_shape(
    rows: int, rows_met: Callable[[int, int], NDArray[np.float64]] | None = None
) -> tuple[int, int] | None:
    """The (chunks, bits) with the least modelled cost at distance 31, or None: scan instead.

    Only shapes whose postings and directory fit ``_table_bytes_allowed`` are considered.
    Without ``rows_met`` (or below ``_ESTIMATED_ROWS`` rows) every shape is modelled with the
    uniform occupancy ``rows / 2**bits``; with it, the shapes of the most and one fewer chunks
    for their width, from 12 to 24 bits, that can count twice probing at most 2 bits a chunk
    are modelled on ``rows_met(chunks, bits)`` (the rows a query meets, estimated from the
    data: _rows_met). The model's costs were measured on such shapes; at 100 million
    PDQ-shaped hashes it would otherwise choose 10 chunks of 24 bits, probed at 3 bits (2,325
    buckets a chunk), never measured. Measured one query at a time on 2
    cores, mean CPU a query, PDQ-shaped / uniform hashes (tests/benchmarks/datasets.py):

    ========== ======================= =========================== ==========================
    rows       chosen before           chosen now                  also measured
    ========== ======================= =========================== ==========================
    1,000,000  11 x 18: 546 / 224 us   13 x 17: 293 / 164 us       12 x 17: 419 / 159 us
    3,000,000  11 x 20: 746 / 248 us   12 x 19: 512 / 168 us       13 x 18: 548 us
    10,000,000 12 x 21: 992 us         12 x 21 (unchanged)         13 x 19: 1,457; 14 x 18:
                                                                   1,669 us
    ========== ======================= =========================== ==========================

    That table is the uniform model within 60 bytes a hash (an AMD EPYC). With the estimate and
    the 128 MiB allowed below 2.2 million rows, on an Intel Xeon, p50 of 1,000 queries: at
    1,000,000 PDQ-shaped hashes 12 x 20, 0.121 to 0.135 ms against 0.173 to 0.192 for 13 x 17;
    uniform ones 17 x 15, 0.052 against 0.089 to 0.093; at 500,000 PDQ-shaped 17 x 15 (0.097,
    as 12 x 19; 13 x 16 0.118); at 2,000,000 13 x 19 (0.178; 12 x 19 0.217); at 3,000,000 and
    10,000,000 the shapes chosen before (12 x 19, 12 x 21) on both.
    """
    if rows < MIN_INDEXED_ROWS:
        return None
    estimated = rows_met is not None and rows >= _ESTIMATED_ROWS
    allowed = _table_bytes_allowed(rows)
    best: tuple[float, int, int] | None = None
    for bits in range(12 if estimated else 8, 25):
        most = HASH_BITS // bits
        for chunks in range(most - 1 if estimated else 8, most + 1):
            if chunks < 8 or 2**bits > _BUCKETS_PER_ROW * rows:
                continue
            if 4.0 * chunks * (rows + 2**bits + 1) > allowed:
                continue
            if estimated and rows_met is not None:
                if max(even_radii(chunks, MATCH_DISTANCE)) > 2 or not double_units(
                    chunks, MATCH_DISTANCE
                ):
                    continue
                cost = modelled_cost_ns(rows_met(chunks, bits), bits, MATCH_DISTANCE)
            else:
                cost = probe_cost_ns(chunks, bits, rows / 2**bits, MATCH_DISTANCE)
            if best is None or cost < best[0]:
                best = (cost, chunks, bits)
    if best is None or best[0] >= rows * COST_SCAN_NS:
        return None
    return best[1], best[2]


def _word_position(text_bit: int) -> tuple[int, int]:
    """Where text-order bit ``p`` (0 = first bit of the first hex digit) is in the uint64 view.

    Text bit p is bit 7 - p % 8 of byte p // 8, and byte k is bits 8 * (k % 8) onwards of word
    k // 8 in the little-endian view.
    """
    return divmod((text_bit // 8) * 8 + 7 - text_bit % 8, 64)


@dataclass(frozen=True, slots=True)
class _BitStatistics:
    """Each bit's balance and the squared correlations between bits, from a sample of rows.

    They group the bits into chunks (``groups``) so that each chunk's bits correlate little.
    PDQ bits are not independent (neighbouring DCT coefficients move together, and some bits
    are set far more often than others), and a chunk of correlated or biased bits spreads its
    rows over few buckets. Measured on PDQ-shaped data at 10M rows (12 chunks of 21 bits; mean
    rows per bucket met by a query, 4.8 if uniform): contiguous bits 588, a fixed random
    permutation 173, this greedy grouping 101. On uniform data it is no worse than random.
    """

    corr2: NDArray[np.float64]  # (256, 256), zero diagonal
    balance: NDArray[np.float64]  # (256,): min(P(set), P(clear))

    @classmethod
    def of(cls, words: Uint64Array) -> _BitStatistics:
        n = words.shape[0]
        sample = words[np.unique(np.linspace(0, n - 1, min(n, _LAYOUT_SAMPLE)).astype(np.int64))]
        values = np.empty((sample.shape[0], HASH_BITS), np.float32)
        for p in range(HASH_BITS):
            word, bit = _word_position(p)
            values[:, p] = (sample[:, word] >> np.uint64(bit)) & U1
        mean = values.mean(axis=0)
        centred = values - mean
        cov = (centred.T @ centred / max(1, values.shape[0])).astype(np.float64)
        std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        scale = np.outer(std, std)
        corr2 = np.where(scale > 0, cov / np.where(scale > 0, scale, 1.0), 0.0) ** 2
        np.fill_diagonal(corr2, 0.0)
        return cls(corr2, np.minimum(mean, 1.0 - mean).astype(np.float64))

    def groups(self, chunks: int, bits: int) -> list[list[int]]:
        """Greedy: the most balanced bits first (the least balanced are left out when
        ``chunks * bits < 256``), each to the chunk with room whose members it correlates with
        least (sum of squared correlations; the first such chunk on a tie)."""
        order = np.argsort(-self.balance, kind="stable")[: chunks * bits]
        groups: list[list[int]] = [[] for _ in range(chunks)]
        # against[c, p]: the sum of p's squared correlations with chunk c's members.
        against = np.zeros((chunks, HASH_BITS), np.float64)
        full = np.zeros(chunks, np.bool_)
        for p in order.tolist():
            costs = np.where(full, math.inf, against[:, p])
            c = int(np.argmin(costs))
            groups[c].append(int(p))
            against[c] += self.corr2[p]
            full[c] = len(groups[c]) == bits
        return groups


def _rows_met(words: Uint64Array, layout: _Layout, top: int) -> NDArray[np.float64]:
    """(chunks, top + 1): the rows within t bits of a query on each chunk, estimated.

    Queries are stored rows (a platform's uploads are drawn like what is registered, and
    near-duplicates of it), none of them in the sample; the estimate is never below what
    uniform hashes would meet (a few pairs, or none, are seen at the narrowest radii).
    """
    n = words.shape[0]
    sample_rows = np.unique(np.linspace(0, n - 1, min(n, _ESTIMATE_SAMPLE)).astype(np.int64))
    query_rows = np.setdiff1d(
        np.linspace(0, n - 1, _ESTIMATE_QUERIES).astype(np.int64) + 1, sample_rows
    )
    query_rows = query_rows[query_rows < n]
    sample, queries = words[sample_rows], words[query_rows]
    pairs = pairs_within(sample, queries, layout.pos_word, layout.pos_bit, top)
    met = pairs * (n / max(1, sample.shape[0] * queries.shape[0]))
    bits = layout.bits
    uniform = np.array([ball_size(bits, t) * n / 2**bits for t in range(top + 1)], np.float64)
    estimate: NDArray[np.float64] = np.maximum(met, uniform[None, :])
    return estimate


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
        masks = np.zeros((chunks, WORDS), np.uint64)
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
class Segment:
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


def build_segment(
    ids: Int64Array, words: Uint64Array, shape: tuple[int, int] | None = None
) -> Segment:
    """Index rows whose ids are unique and increasing; ``shape`` overrides the chosen one."""
    n = int(ids.shape[0])
    layouts: dict[tuple[int, int], _Layout] = {}

    @lru_cache(maxsize=1)
    def statistics() -> _BitStatistics:
        return _BitStatistics.of(words)

    def rows_met(chunks: int, bits: int) -> NDArray[np.float64]:
        layout = _Layout.from_groups(statistics().groups(chunks, bits))
        layouts[(chunks, bits)] = layout
        return _rows_met(words, layout, max(even_radii(chunks, MATCH_DISTANCE)))

    if shape is None:
        shape = _choose_shape(n, rows_met)
    if shape is None or n == 0:
        tables = np.empty((0, 1), np.uint32), np.empty((0, 0), np.uint32)
        return Segment(ids, words, None, *tables, occupancy=0.0)
    chunks, bits = shape
    if not (1 <= bits <= _MAX_CHUNK_BITS and chunks >= 1 and chunks * bits <= HASH_BITS):
        raise ValueError(f"no chunk shape {chunks} x {bits} bits fits in {HASH_BITS} bits")
    if n >= 2**32:
        raise ValueError("a segment holds fewer than 2**32 rows")
    layout = layouts.get(shape) or _Layout.from_groups(statistics().groups(chunks, bits))
    offsets = np.zeros((chunks, 2**bits + 1), np.uint32)
    postings = np.empty((chunks, n), np.uint32)

    def index(c: int) -> None:
        index_chunk(words, layout.pos_word[c], layout.pos_bit[c], offsets[c], postings[c])

    if n < _POOLED_ROWS:
        for c in range(chunks):
            index(c)
    else:  # The chunks are independent and the kernel releases the GIL: one per core at a time.
        for _ in executor().map(index, range(chunks)):
            pass
    sizes = np.diff(offsets, axis=1).astype(np.float64)
    occupancy = float((sizes * sizes).sum() / (n * chunks))
    return Segment(ids, words, layout, offsets, postings, occupancy)


def kernels_load() -> Segment:
    """Build a small segment in this thread as a merge builds one, and return it.

    Building runs compiled passes (numba: ``index_chunk``, and ``pairs_within`` for the shape
    estimate of a large segment), each loaded by its first use in a process; a server's main
    process calls this before its workers fork (registry.matching.index.merge_kernels_load), so
    that a worker's first merge does not load them, holding the interpreter's lock meanwhile.
    The segment's arrays are writable, as a merge's are.
    """
    rows = MIN_INDEXED_ROWS
    words = np.random.default_rng(0).integers(0, 2**64, (rows, WORDS), np.uint64, endpoint=False)
    chunks = 8
    segment = build_segment(np.arange(rows, dtype=np.int64), words, (chunks, 16))
    if segment.layout is not None:
        _rows_met(words, segment.layout, max(even_radii(chunks, MATCH_DISTANCE)))
    return segment


def empty_words() -> Uint64Array:
    return np.empty((0, WORDS), np.uint64)


_pool_lock = threading.Lock()


_pool: tuple[int, ThreadPoolExecutor] | None = None


def usable_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def executor() -> ThreadPoolExecutor:
    """A process-wide pool, one thread per usable core (made anew in a forked child)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (
                os.getpid(),
                ThreadPoolExecutor(usable_cores(), thread_name_prefix="hashindex"),
            )
        return _pool[1]
