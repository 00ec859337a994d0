"""Benchmark of registry.matching.HashIndex against faiss (HMA's index) and a brute force.

Run: ``.venv/bin/python -m tests.benchmarks.bench_matching [--sizes 100000,1000000,10000000]
[--queries 1000] [--datasets uniform,pdq,real]``. Progress goes to stderr; the machine and
Markdown tables go to stdout: the timings, then the bit statistics of each size's data sets
(tests/benchmarks/hash_stats.py).

The data sets: ``uniform`` and ``pdq`` (PDQ-shaped) are synthetic (tests/benchmarks/datasets.py);
``real`` is real PDQ hashes of crops of real photographs and video frames
(tests/benchmarks/real_hashes.py), as many as its pool holds: a larger size is not run for it,
and the output says so (it is never padded with synthetic hashes).

For each data set and size, side by side in one process:

* ``HashIndex``: this project's index (``HashIndex.build``);
* ``faiss MultiHash``: ``IndexBinaryIDMap2(IndexBinaryMultiHash(256, 16, 16))`` with
  ``nflip = 1`` and ``range_search`` at radius 32 (exclusive: distance <= 31), the configuration
  of Meta's Hasher-Matcher-Actioner. Its memory is the growth of the process's RSS while adding,
  an estimate;
* ``numpy brute force``: XOR and ``np.bitwise_count`` over every stored hash, timed on a few
  queries only (``--brute-queries``, fewer at larger sizes), its throughput extrapolated from them.

After them, at the largest size of each synthetic set, the video rows (tests/benchmarks/
bench_video.py): a 600-frame video searched and grouped into vPDQ decisions, beside a plain
batch of 600 hashes, on an index holding registered videos' frames (``--no-video`` leaves them
out).

Recall and false positives are against the exact answer for every query, computed by a separate
exhaustive scan in this file (a numba kernel, checked against the numpy brute force on the
queries that it runs). Queries: half near-duplicates (0 to 31 bits) of stored hashes, half
unrelated hashes from the same distribution; for the real set, half real edits of stored
windows (re-hashed; some land beyond 31 bits) and half hashes of held-out photos. Latency is one
query per call, in one thread; batch throughput is one call with all the queries, using both
cores (best of two runs).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numba
import numpy as np
from numpy.typing import NDArray

from registry.matching.index import MATCH_DISTANCE, HashIndex
from tests import photos
from tests.benchmarks import bench_video, real_hashes, real_queries
from tests.benchmarks.datasets import Dataset, make_dataset
from tests.benchmarks.exact import Results, exact_answer
from tests.benchmarks.hash_stats import HashStats, hash_stats
from tests.benchmarks.hash_stats import table as stats_table


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def machine() -> list[str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    try:
        import faiss  # optional: the bench extra, imported only when run

        faiss_version = faiss.__version__
    except ImportError:
        faiss_version = "not installed"
    return [
        f"- CPU: {model}, {len(os.sched_getaffinity(0))} usable cores, "
        f"{memory_kib / 2**20:.0f} GiB RAM",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, faiss {faiss_version}",
    ]


# ---------------------------------------------------------------------------------------------
# The contenders, behind one small interface.


class Contender:
    name = ""
    note = ""

    def build(self, data: Dataset) -> None:
        raise NotImplementedError

    def search(self, queries: NDArray[np.uint8]) -> Results:
        raise NotImplementedError

    def bytes_per_hash(self, n: int) -> float:
        raise NotImplementedError

    def close(self) -> None:
        """Release the index."""

    def single_queries(self, n: int) -> int:
        """How many queries to time one by one at this size."""
        return 10**9

    def batch_queries(self, n: int) -> int:
        return 10**9


class HashIndexContender(Contender):
    name = "HashIndex"

    def build(self, data: Dataset) -> None:
        self.index = HashIndex.build(data.ids, data.hashes)
        layout = self.index._snapshot.main.layout
        shape = f"{layout.chunks} x {layout.bits} bits" if layout else "scan only"
        self.note = f"{shape}, mean bucket size met {self.index._snapshot.main.occupancy:.1f}"

    def search(self, queries: NDArray[np.uint8]) -> Results:
        return [(m.ids, m.distances.astype(np.int64)) for m in self.index.search(queries)]

    def bytes_per_hash(self, n: int) -> float:
        return self.index.nbytes / n

    def close(self) -> None:
        del self.index


class FaissContender(Contender):
    name = "faiss MultiHash"

    def build(self, data: Dataset) -> None:
        import faiss  # optional: the bench extra, imported only when run

        self.faiss = faiss
        before = rss_bytes()
        base = faiss.IndexBinaryMultiHash(256, 16, 16)
        base.nflip = 1
        self.index = faiss.IndexBinaryIDMap2(base)
        self.index.add_with_ids(data.hashes, data.ids)
        self.grown = rss_bytes() - before
        self.note = "16 x 16 bits, nflip 1; bytes from RSS growth"

    def search(self, queries: NDArray[np.uint8]) -> Results:
        lims, dists, ids = self.index.range_search(queries, MATCH_DISTANCE + 1)
        return [
            (ids[lims[i] : lims[i + 1]].astype(np.int64), dists[lims[i] : lims[i + 1]])
            for i in range(queries.shape[0])
        ]

    def bytes_per_hash(self, n: int) -> float:
        return self.grown / n

    def close(self) -> None:
        del self.index


class BruteForceContender(Contender):
    name = "numpy brute force"

    def __init__(self, brute_queries: int) -> None:
        self.brute_queries = brute_queries

    def build(self, data: Dataset) -> None:
        self.ids = data.ids.copy()
        self.words = data.hashes.view("<u8").astype(np.uint64)
        self.note = ""

    def search(self, queries: NDArray[np.uint8]) -> Results:
        out: Results = []
        for query in queries.view("<u8").astype(np.uint64):
            dists = np.bitwise_count(self.words ^ query).sum(axis=1, dtype=np.int64)
            hits = np.flatnonzero(dists <= MATCH_DISTANCE)
            out.append((self.ids[hits], dists[hits]))
        return out

    def bytes_per_hash(self, n: int) -> float:
        return (self.ids.nbytes + self.words.nbytes) / n

    def close(self) -> None:
        del self.ids, self.words

    def single_queries(self, n: int) -> int:
        # About a second of scanning: 5 queries at 10M, 50 at 1M.
        return max(5, min(self.brute_queries, 5 * 10**9 // max(1, n * 100)))

    def batch_queries(self, n: int) -> int:
        return self.single_queries(n)


# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    index: str
    data: str
    size: int
    build_s: float
    bytes_per_hash: float
    p50_ms: float
    p99_ms: float
    batch_qps: float
    recall: float
    false_positives: int
    queries_timed: int
    note: str


def check(results: Results, answer: Results) -> tuple[int, int, int]:
    """(true results found, true results in total, results that are not true)."""
    found = total = wrong = 0
    for (ids, dists), (true_ids, true_dists) in zip(results, answer, strict=True):
        truth = dict(zip(true_ids.tolist(), true_dists.tolist(), strict=True))
        got = dict(zip(ids.tolist(), np.asarray(dists).tolist(), strict=True))
        total += len(truth)
        found += sum(1 for i, d in got.items() if truth.get(i) == d)
        wrong += sum(1 for i, d in got.items() if truth.get(i) != d)
        wrong += len(ids) - len(got)  # an id reported twice
    return found, total, wrong


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run_one(contender: Contender, data: Dataset, answer: Results) -> Row:
    n = data.ids.shape[0]
    gc.collect()
    build_s = timed(lambda: contender.build(data))
    log(f"  {contender.name}: built in {build_s:.1f} s")
    queries = data.queries
    singles = min(queries.shape[0], contender.single_queries(n))
    # Near-duplicates first, unrelated after: take both halves when timing a few.
    pick = np.unique(
        np.r_[: (singles + 1) // 2, data.near_queries : data.near_queries + singles // 2]
    )
    contender.search(queries[:1])
    latencies = np.array([timed(partial(contender.search, queries[i : i + 1])) for i in pick])
    batch = min(queries.shape[0], contender.batch_queries(n))
    chosen = queries[pick] if batch < queries.shape[0] else queries
    results: Results = []

    def run_batch() -> None:
        results[:] = contender.search(chosen)

    best = min(timed(run_batch) for _ in range(1 if batch < queries.shape[0] else 2))
    truth = [answer[i] for i in pick] if batch < queries.shape[0] else answer
    found, total, wrong = check(results, truth)
    p50 = np.median(latencies) * 1e3
    log(f"  {contender.name}: p50 {p50:.3f} ms, batch {len(chosen) / best:.0f} q/s")
    row = Row(
        index=contender.name,
        data=data.name,
        size=n,
        build_s=build_s,
        bytes_per_hash=contender.bytes_per_hash(n),
        p50_ms=float(np.median(latencies) * 1e3),
        p99_ms=float(np.percentile(latencies, 99) * 1e3),
        batch_qps=len(chosen) / best,
        recall=found / total if total else 1.0,
        false_positives=wrong,
        queries_timed=len(pick),
        note=contender.note,
    )
    contender.close()
    gc.collect()
    return row


def run_in_child(contender: Contender, data: Dataset, answer: Results) -> Row:
    """``run_one`` in a forked process, so that its RSS growth is the index's alone."""
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[Row] = context.Queue()
    child = context.Process(target=lambda: queue.put(run_one(contender, data, answer)))
    child.start()
    row = queue.get()
    child.join()
    return row


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| index | data | size | build s | bytes/hash | p50 ms | p99 ms | batch q/s | recall "
        "| false pos. | queries timed | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.index} | {r.data} | {r.size:,} | {r.build_s:.2f} | {r.bytes_per_hash:.1f} "
            f"| {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.batch_qps:,.0f} | {r.recall:.4f} "
            f"| {r.false_positives} | {r.queries_timed} | {r.note} |"
        )
    return lines


@dataclass
class RealSource:
    """The real pool and its sources, loaded once; ``missing`` says why there is none."""

    pool: real_hashes.Pool | None
    sources: list[real_hashes.Source]
    missing: str

    @classmethod
    def load(cls, crops: int) -> RealSource:
        try:
            sources, _ = real_hashes.load_sources(real_hashes.DEFAULT_SEED)
        except photos.PhotosUnavailable as error:
            return cls(None, [], f"photos unavailable: {error}")
        return cls(real_hashes.pool(real_hashes.DEFAULT_SEED, crops, sources=sources), sources, "")


def generate(kind: str, n: int, queries: int, real: RealSource | None) -> tuple[Dataset, str]:
    """The data set, and a note on its queries (empty for the synthetic sets).

    Raises real_queries.NotEnoughRealHashes for a real set larger than the pool."""
    if kind != "real":
        return make_dataset(kind, n, queries, seed=n), ""
    if real is None or real.pool is None:
        raise real_queries.NotEnoughRealHashes(real.missing if real else "no real pool")
    data, distances = real_queries.real_dataset(
        n, queries, seed=n, real=real.pool, sources=real.sources
    )
    within = float((distances <= MATCH_DISTANCE).mean()) if distances.size else 0.0
    note = (
        f"real {n:,}: near queries are real edits, {within:.0%} of them within 31 bits of the "
        f"hash edited (median {np.median(distances):.0f} bits)"
    )
    return data, note


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--datasets", default="uniform,pdq,real")
    parser.add_argument(
        "--brute-queries", type=int, default=200, help="most queries timed on the brute force"
    )
    parser.add_argument("--no-faiss", action="store_true", help="leave faiss out")
    parser.add_argument(
        "--no-video", action="store_true", help="leave out the 600-frame video rows (bench_video)"
    )
    parser.add_argument(
        "--real-crops",
        type=int,
        default=real_hashes.DEFAULT_CROPS,
        help="windows a photo for the real pool (tests/benchmarks/real_hashes.py)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kinds = [k for k in args.datasets.split(",") if k]
    unknown = set(kinds) - {"uniform", "pdq", "real"}
    if unknown:
        parser.error(f"unknown data sets: {', '.join(sorted(unknown))}")
    threads = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    real = None
    if "real" in kinds:
        log("real: loading the photos and the pool (built once, then cached)")
        real = RealSource.load(args.real_crops)
    rows: list[Row] = []
    stats: dict[int, list[HashStats]] = {}
    notes: list[str] = []
    for kind in kinds:
        for n in sizes:
            log(f"{kind} {n:,}: generating")
            try:
                data, note = generate(kind, n, args.queries, real)
            except real_queries.NotEnoughRealHashes as error:
                notes.append(f"real {n:,}: not run ({error})")
                log(notes[-1])
                continue
            if note:
                notes.append(note)
            log(f"{kind} {n:,}: exact answer by exhaustive scan")
            answer = exact_answer(data, threads)
            matched = sum(1 for ids, _ in answer[data.near_queries :] if ids.shape[0])
            unrelated = data.queries[data.near_queries :]
            stats.setdefault(n, []).append(
                hash_stats(kind, data.hashes, unrelated, np.random.default_rng(n), matched=matched)
            )
            contenders: list[Contender] = [HashIndexContender()]
            if not args.no_faiss:
                contenders.append(FaissContender())
            contenders.append(BruteForceContender(args.brute_queries))
            for contender in contenders:
                if isinstance(contender, FaissContender):
                    rows.append(run_in_child(contender, data, answer))
                else:
                    rows.append(run_one(contender, data, answer))
            del data, answer
            gc.collect()
    video_kinds = [kind for kind in kinds if kind != "real"]
    video_rows: list[bench_video.VideoRow] = []
    videos = bench_video.videos_for(max(sizes))
    if not args.no_video and video_kinds:
        for kind in video_kinds:
            log(f"video rows, {kind} {max(sizes):,}")
            video_rows += bench_video.run(kind, max(sizes), videos=videos, repeats=5)
    print("## HashIndex benchmark\n")
    print("\n".join(machine()))
    print(
        f"- {args.queries} queries a data set: half near-duplicates (0-31 bits) of stored hashes, "
        "half unrelated; max distance 31; 1% of stored hashes are planted near-duplicates of "
        "others"
    )
    if real is not None:
        if real.pool is None:
            print(f"- real: {real.missing}")
        else:
            report = real.pool.report
            print(
                f"- real: {len(real.pool):,} distinct real PDQ hashes (every two more than 31 "
                f"bits apart) of {report['windows kept']:,.0f} windows of real photos and "
                f"video frames, {args.real_crops} windows a photo "
                "(tests/benchmarks/real_hashes.py); near "
                "queries and planted near-duplicates are real edits (JPEG, resizing, a small "
                "crop, brightness) re-hashed, unrelated queries hashes of held-out photos"
            )
    for note in notes:
        print(f"- {note}")
    print(
        "- latency: one query a call, one thread; batch: one call with all the queries, both "
        "cores, best of two runs (the brute force: one run over the queries it timed)"
    )
    print(
        "- faiss bytes/hash: growth of the RSS of a fresh (forked) process while adding, an "
        "estimate; HashIndex: its arrays (nbytes); brute force: hashes and ids"
    )
    print(
        "- recall and false positives: against an exhaustive scan of every query; the brute "
        "force is timed (and checked) on the first and last queries only, see 'queries timed'"
    )
    print(f"- total run time {time.perf_counter() - started:.0f} s\n")
    print("\n".join(table(rows)))
    if video_rows:
        print("\n" + "\n".join(bench_video.table(video_rows, videos)))
    for n, measured in stats.items():
        print(f"\n### Bit statistics of the data sets at {n:,} hashes\n")
        print("\n".join(stats_table(measured)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
