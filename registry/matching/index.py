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
  two of the buckets read, so rows are counted and only rows seen twice are verified. More
  postings, read in order, but far fewer random reads: at 10 million PDQ-shaped hashes the
  median unrelated query reads 83,000 postings, of which 1,400 rows twice, where the single
  cover would verify 44,000 rows. Counting is most of a search's time, so it is done where it
  is cheap: the postings are copied into groups of 65,536 consecutive rows (prefetched a few
  buckets ahead), then each group is counted in a bitmap of 16 KB, which stays in the L1
  cache; one bitmap of the whole segment (2.5 MB) missed the cache on nearly every posting.
  Up to 2**24 rows a row is copied as its 16-bit place in its group (p99 at 10M PDQ-shaped
  hashes 1.70 to 1.83 ms against 1.90 to 2.06 for 32 bits, the median unchanged).
  Measured back to back on a shared 2-core EPYC, 10M PDQ-shaped hashes: the median query from
  0.83 to 0.57 ms, a batch of 1,000 from 2,100 to 3,350 queries/s (uniform: 0.29 to 0.23 ms,
  5,700 to 9,800 queries/s).

When the modelled cost of probing exceeds a scan (large ``max_distance``, small segments), the
segment is scanned, so any ``max_distance`` from 0 to 256 is exact.

Why this structure (all measured on this code, 10M hashes, 2 cores of an AMD EPYC): Meta's HMA
uses faiss ``IndexBinaryMultiHash`` (16 chunks of 16 bits at radius 1, hash maps of id vectors):
about 41,000 candidates a query at 10M uniform hashes, 3.5 ms and 300 bytes a hash. Chunks of 21
bits at radius <= 2 meet about 9,000, dense CSR arrays cost no pointers, and prefetching the
next pass's data (bucket bounds, then postings, then rows 20 candidates ahead) overlaps the
cache misses: 0.47 ms a query without it, under 0.2 ms with it. The chunk shape is chosen per
segment by a cost model (``_choose_shape``, which models both plans below) within 60 bytes a
hash of tables (or 128 MiB below 2.2 million rows), on the rows a query meets as estimated from
the segment's own rows (``_rows_met``) from 250,000 rows on; at 10M, 11 chunks of 22 or 23 bits
would meet fewer candidates but do not fit, and cannot make the double cover. Which bits form a
chunk is chosen from the data (``_BitStatistics``): PDQ bits are correlated with their
neighbours in DCT order and unevenly likely, and contiguous chunks made buckets 100 times fuller
than uniform (588 rows met per bucket instead of 5.8 on PDQ-shaped data), a fixed random spread
173, the data-driven one 100.

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
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from registry.matching.kernels import (
    HASH_BITS,
    U1,
    WORDS,
    Int32Array,
    Int64Array,
    Uint64Array,
    probe_search,
)
from registry.matching.layout import (
    COST_SCAN_NS,
    COSTS,
    COSTS_DOUBLE,
    COSTS_SINGLE,
    MATCH_DISTANCE,
    MIN_INDEXED_ROWS,
    Segment,
    ball_size,
    build_segment,
    empty_words,
    even_radii,
    executor,
    flip_masks,
    kernels_load,
    probe_cost_ns,
    usable_cores,
)
from registry.matching.scan import combine, scan_search, set_bits

__all__ = ["HASH_BYTES", "MATCH_DISTANCE", "HashIndex", "Matches", "merge_kernels_load"]

HASH_BYTES = 32

# The delta is scanned by every query: about 12 us a query at this size (0.36 ns a row,
# measured), 5% of a search of 10M hashes; a merge at 10M takes about 5 s of the writer's time.
DEFAULT_MERGE_THRESHOLD = 32_768
# A batch is split across threads only with at least this many queries a part: a part costs a
# hand-off to a thread and the scratch of a kernel call, which parts of 12 queries (a batch of
# 100 in 8 parts) paid with half again the CPU of one call, for little gain in time.
_MIN_QUERIES_PER_THREAD = 32


class Matches(NamedTuple):
    """The stored hashes matching one query, nearest first (ties by id)."""

    ids: Int64Array
    distances: Int32Array


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything a search reads. Never modified once published."""

    main: Segment
    dead: Uint64Array  # one bit per main row: removed (or replaced) rows
    dead_count: int
    delta_ids: Int64Array  # unique, in no order, none of them live in the main segment
    delta_columns: Uint64Array  # (4, len(delta_ids)): column w is word w of each delta row

    @classmethod
    def of(cls, main: Segment) -> _Snapshot:
        dead = np.zeros((len(main) + 63) // 64, np.uint64)
        return cls(main, dead, 0, np.empty(0, np.int64), np.empty((WORDS, 0), np.uint64))

    def __len__(self) -> int:
        return len(self.main) - self.dead_count + int(self.delta_ids.shape[0])

    @property
    def nbytes(self) -> int:
        delta = self.delta_ids.nbytes + self.delta_columns.nbytes
        return self.main.nbytes + self.dead.nbytes + delta


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
        # (whenever exact), "single" or "double" (probe with that plan, see probe_search).
        self._strategy = "auto"
        self._write_lock = threading.Lock()
        self._snapshot = _Snapshot.of(build_segment(np.empty(0, np.int64), empty_words()))

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
        index._snapshot = _Snapshot.of(build_segment(sorted_ids, words, chunk_shape))
        return index

    @classmethod
    def of_segment(
        cls, main: Segment, *, merge_threshold: int = DEFAULT_MERGE_THRESHOLD
    ) -> HashIndex:
        """An index whose main segment is ``main``, used as it is: a checkpoint's, mapped
        read-only (registry.matching.checkpoint). Writes never touch its arrays."""
        index = cls(merge_threshold=merge_threshold)
        index._snapshot = _Snapshot.of(main)
        return index

    def main_segment(self) -> Segment:
        """The main segment once it holds every stored row (merging first if need be)."""
        with self._write_lock:
            if self._snapshot.dead_count or self._snapshot.delta_ids.shape[0]:
                self._snapshot = self._merged(self._snapshot)
            return self._snapshot.main

    def __len__(self) -> int:
        """The number of ids stored."""
        return len(self._snapshot)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays of the current snapshot (hashes, ids, tables, bitmap).

        Not counted: a search's scratch (a few bytes a posting it reads) and, during a merge,
        the segment being built.
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
        limit = min(self.merge_threshold, max(MIN_INDEXED_ROWS, len(s.main) // 4))
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
        return _Snapshot.of(build_segment(ids[order], words[order], self.chunk_shape))

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
        threads = usable_cores() if count >= 2 * _MIN_QUERIES_PER_THREAD else 1
        # More parts than threads in a large batch, so that a part of slow queries does not
        # hold up the rest; one a thread in a small one.
        parts = threads
        if threads > 1 and count >= 4 * threads * _MIN_QUERIES_PER_THREAD:
            parts = 4 * threads
        if parts <= 1:
            starts, ids, dists = _search_snapshot(s, qwords, radius, self._strategy)
        else:
            edges = np.linspace(0, count, parts + 1).astype(np.int64).tolist()

            def part(k: int) -> tuple[Int64Array, Int64Array, Int32Array]:
                return _search_snapshot(s, qwords[edges[k] : edges[k + 1]], radius, self._strategy)

            if parts == threads:
                # The calling thread searches the first part while the pool takes the others.
                others = executor().map(part, range(1, parts))
                pieces = [part(0), *others]
            else:  # As many searching at once as there are threads.
                pieces = list(executor().map(part, range(parts)))
            found = np.cumsum([0] + [piece[1].shape[0] for piece in pieces])
            starts = np.concatenate(
                [np.zeros(1, np.int64)]
                + [piece[0][1:] + base for piece, base in zip(pieces, found, strict=False)]
            )
            ids = np.concatenate([piece[1] for piece in pieces])
            dists = np.concatenate([piece[2] for piece in pieces])
        bounds = starts.tolist()
        return [Matches(ids[a:b], dists[a:b]) for a, b in pairwise(bounds)]


class _Plan(NamedTuple):
    """What a search of one segment at one distance needs beyond the query (see _plan)."""

    probe: bool
    flips: Int64Array
    balls: Int64Array
    costs: NDArray[np.float64]


@lru_cache(maxsize=1024)
def _plan(
    chunks: int, bits: int, occupancy: float, rows: int, max_distance: int, strategy: str
) -> _Plan:
    """Probe or scan, and the probe's constants: computed once, not on every search."""
    cost = probe_cost_ns(chunks, bits, occupancy, max_distance)
    costs = COSTS
    if strategy == "auto":
        probe = cost < rows * COST_SCAN_NS
    else:
        probe = strategy != "scan" and cost < math.inf
        costs = {"single": COSTS_SINGLE, "double": COSTS_DOUBLE}.get(strategy, COSTS)
    top = max(even_radii(chunks, max_distance)) if probe else 0
    balls = np.array([ball_size(bits, t) for t in range(top + 1)], np.int64)
    return _Plan(probe, flip_masks(bits, top), balls, costs)


def _search_snapshot(
    s: _Snapshot, qwords: Uint64Array, max_distance: int, strategy: str
) -> tuple[Int64Array, Int64Array, Int32Array]:
    """Search the main segment and the delta; (per-query offsets, ids, distances)."""
    main = s.main
    layout = main.layout
    plan = None
    if layout is not None:
        shape = (layout.chunks, layout.bits, main.occupancy, len(main))
        plan = _plan(*shape, max_distance, strategy)
    if layout is not None and plan is not None and plan.probe:
        starts_a, rows_a, dists_a = probe_search(
            qwords,
            main.words,
            s.dead,
            main.offsets,
            main.postings,
            layout.pos_word,
            layout.pos_bit,
            layout.masks,
            plan.flips,
            plan.balls,
            max_distance,
            plan.costs,
        )
    else:
        # A rare path (large distances, small segments): the strided view is fast enough.
        starts_a, rows_a, dists_a = scan_search(qwords, main.words.T, s.dead, max_distance)
    starts_b, rows_b, dists_b = scan_search(
        qwords, s.delta_columns, np.zeros(0, np.uint64), max_distance
    )
    return combine(starts_a, main.ids[rows_a], dists_a, starts_b, s.delta_ids[rows_b], dists_b)


def merge_kernels_load(queries: NDArray[np.uint8]) -> None:
    """Load, in this thread, the compiled passes that a merge and the searches after it use.

    A main segment mapped from a checkpoint is read-only, and numba compiles a pass apart for
    each kind of array it is given: the first merge of a process builds a writable segment, and
    the first search of it loaded its own version of ``probe_search`` (tens of ms, in a call).
    This builds a small segment as a merge does (layout.kernels_load) and searches it by its
    tables with ``queries`` (made as the calls will make theirs: read-only ones, for a server's).
    """
    segment = kernels_load()
    _search_snapshot(
        _Snapshot.of(segment), _check_hashes(queries, "queries"), MATCH_DISTANCE, "probe"
    )


def _without(s: _Snapshot, ids: Int64Array) -> _Snapshot:
    """``s`` with these ids (unique) marked removed in the main segment and cut from the delta."""
    main_ids = s.main.ids
    dead, dead_count = s.dead, s.dead_count
    if main_ids.shape[0]:
        at = np.minimum(np.searchsorted(main_ids, ids), main_ids.shape[0] - 1)
        rows = at[main_ids[at] == ids].astype(np.int64)
        rows = rows[(dead[rows >> 6] >> (rows & 63).astype(np.uint64)) & U1 == 0]
        if rows.shape[0]:
            # Copy on write: searches still reading the old snapshot keep the old bitmap.
            dead = dead.copy()
            set_bits(dead, rows)
            dead_count += int(rows.shape[0])
    delta_ids, delta_columns = s.delta_ids, s.delta_columns
    if delta_ids.shape[0]:
        keep = ~np.isin(delta_ids, ids)
        if not keep.all():
            delta_ids, delta_columns = delta_ids[keep], delta_columns[:, keep]
    return _Snapshot(s.main, dead, dead_count, delta_ids, delta_columns)
