"""Bit statistics of the benchmark's hash sets, side by side: uniform, PDQ-shaped and real.

``python -m tests.benchmarks.hash_stats [--size 1000000] [--crops N]`` prints a Markdown table;
the index benchmark (bench_matching) prints the same table for the data sets it ran. Measured:

* bits set per hash (a real PDQ hash has 128 unless DCT values tie; never more);
* how often each of the 256 bits is set, over the hashes (min, median, max);
* the Hamming distance of unrelated pairs: one stored hash and one drawn independently (for the
  synthetic sets a fresh draw; for the real set a hash of a held-out photo, which was never
  compared with the pool): median, 1st percentile, and how many pairs are under 32 bits;
* the mean absolute correlation of neighbouring bits (right and below in the 16 x 16 grid of
  DCT coefficients), and of all pairs of bits for comparison;
* the index's layout at this size and its bucket occupancy: the rows per bucket a query drawn
  like the stored hashes meets (``Segment.occupancy``), against ``n / 2**bits`` if uniform;
* how many of the unrelated hashes have a stored hash within 31 bits (a match by chance).

The command adds a column of the real pool's unrotated hashes alone (one a window, so fewer),
against the same held-out hashes: the registry stores all 8 dihedral variants of an image, whose
flips and rotations negate every DCT coefficient of odd frequency in some direction in half of
the 8 (and whose transposes swap the directions), which evens out the per-bit rates and the
correlations that a single orientation has.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from registry.matching.index import HashIndex
from registry.matching.layout import build_segment
from registry.pdq import MATCH_DISTANCE
from tests import photos
from tests.benchmarks import real_hashes
from tests.benchmarks.datasets import Hashes, PdqShape, bytes_to_coefficients, uniform_hashes

PAIRS = 1_000_000
CORRELATION_SAMPLE = 100_000
MAX_UNRELATED = 5000
LABELS = {
    "uniform": "uniform",
    "pdq": "PDQ-shaped",
    "real": "real",
    "real-original": "real, unrotated only",
}


@dataclass(frozen=True)
class HashStats:
    name: str
    size: int
    bits_mean: float
    bits_min: int
    bits_max: int
    exactly_128: float
    rate_min: float
    rate_median: float
    rate_max: float
    distance_median: float
    distance_p1: float
    under_32: int
    pairs: int
    neighbour_correlation: float
    any_correlation: float
    layout: str
    occupancy: float
    uniform_occupancy: float
    unrelated_matched: int
    unrelated: int


def _grid_neighbours() -> tuple[list[int], list[int]]:
    """Pairs of coefficient indices k = 16 i + j that are neighbours right or below."""
    first, second = [], []
    for i in range(16):
        for j in range(16):
            if j < 15:
                first.append(16 * i + j)
                second.append(16 * i + j + 1)
            if i < 15:
                first.append(16 * i + j)
                second.append(16 * (i + 1) + j)
    return first, second


def hash_stats(
    name: str,
    hashes: Hashes,
    unrelated: Hashes,
    rng: np.random.Generator,
    *,
    matched: int | None = None,
    pairs: int = PAIRS,
) -> HashStats:
    """The statistics of stored ``hashes`` against ``unrelated`` ones (module docstring).

    ``matched``, when the caller knows it, is how many unrelated hashes match a stored one;
    otherwise it is found with the index.
    """
    n = hashes.shape[0]
    counts = np.bitwise_count(hashes).sum(axis=1, dtype=np.int64)
    rates = np.zeros(256)
    for start in range(0, n, 1 << 18):
        rates += bytes_to_coefficients(hashes[start : start + (1 << 18)]).sum(axis=0)
    rates /= max(1, n)
    left = hashes[rng.integers(0, n, pairs)]
    right = unrelated[rng.integers(0, unrelated.shape[0], pairs)]
    distances = np.bitwise_count(left ^ right).sum(axis=1, dtype=np.int64)
    sample = hashes[np.unique(rng.integers(0, n, min(n, CORRELATION_SAMPLE)))]
    bits = bytes_to_coefficients(sample).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.atleast_2d(np.nan_to_num(np.corrcoef(bits.T)))
    first, second = _grid_neighbours()
    off_diagonal = ~np.eye(256, dtype=bool)
    words = np.ascontiguousarray(hashes).view("<u8").astype(np.uint64)
    segment = build_segment(np.arange(n, dtype=np.int64), words)
    if segment.layout is not None:
        layout = f"{segment.layout.chunks} x {segment.layout.bits} bits"
        uniform_occupancy = n / 2**segment.layout.bits
    else:
        layout, uniform_occupancy = "scan only", float("nan")
    occupancy = segment.occupancy
    del segment
    if matched is None:
        index = HashIndex.build(np.arange(n, dtype=np.int64), hashes)
        results = index.search(unrelated[:MAX_UNRELATED], MATCH_DISTANCE)
        matched = sum(1 for found in results if found.ids.shape[0])
        del index
    return HashStats(
        name=name,
        size=n,
        bits_mean=float(counts.mean()),
        bits_min=int(counts.min()),
        bits_max=int(counts.max()),
        exactly_128=float((counts == 128).mean()),
        rate_min=float(rates.min()),
        rate_median=float(np.median(rates)),
        rate_max=float(rates.max()),
        distance_median=float(np.median(distances)),
        distance_p1=float(np.percentile(distances, 1)),
        under_32=int((distances <= MATCH_DISTANCE).sum()),
        pairs=pairs,
        neighbour_correlation=float(np.abs(corr[first, second]).mean()),
        any_correlation=float(np.abs(corr[off_diagonal]).mean()),
        layout=layout,
        occupancy=occupancy,
        uniform_occupancy=uniform_occupancy,
        unrelated_matched=matched,
        unrelated=min(MAX_UNRELATED, unrelated.shape[0]),
    )


def table(stats: Sequence[HashStats]) -> list[str]:
    """A Markdown table: one row a measure, one column a data set."""
    rows: list[tuple[str, list[str]]] = [
        ("hashes stored", [f"{s.size:,}" for s in stats]),
        (
            "bits set per hash: mean (min to max)",
            [f"{s.bits_mean:.2f} ({s.bits_min} to {s.bits_max})" for s in stats],
        ),
        ("hashes with exactly 128 bits set", [f"{s.exactly_128:.2%}" for s in stats]),
        (
            "how often a bit is set: min / median / max",
            [f"{s.rate_min:.3f} / {s.rate_median:.3f} / {s.rate_max:.3f}" for s in stats],
        ),
        (
            "unrelated pairs: median distance / 1st percentile",
            [f"{s.distance_median:.0f} / {s.distance_p1:.0f}" for s in stats],
        ),
        (
            "unrelated pairs within 31 bits",
            [f"{s.under_32:,} of {s.pairs:,}" for s in stats],
        ),
        (
            "mean abs. correlation: neighbouring bits / all pairs",
            [f"{s.neighbour_correlation:.3f} / {s.any_correlation:.3f}" for s in stats],
        ),
        ("index layout at this size", [s.layout for s in stats]),
        (
            "rows per bucket met (if uniform)",
            [f"{s.occupancy:.1f} ({s.uniform_occupancy:.1f})" for s in stats],
        ),
        (
            "unrelated hashes matching a stored one",
            [f"{s.unrelated_matched:,} of {s.unrelated:,}" for s in stats],
        ),
    ]
    header = "| measure | " + " | ".join(LABELS.get(s.name, s.name) for s in stats) + " |"
    lines = [header, "|---|" + "---:|" * len(stats)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1_000_000, help="capped at the real pool's")
    parser.add_argument("--crops", type=int, default=real_hashes.DEFAULT_CROPS)
    parser.add_argument("--seed", type=int, default=real_hashes.DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        real = real_hashes.pool(args.seed, args.crops)
    except photos.PhotosUnavailable as error:
        print(f"photos unavailable: {error}", file=sys.stderr)
        return 2
    n = min(args.size, len(real))
    unrelated_count = min(MAX_UNRELATED, real.held_out.shape[0])
    rng = np.random.default_rng(args.seed)
    shape = PdqShape.create()
    sets = {
        "uniform": (uniform_hashes(n, rng), uniform_hashes(unrelated_count, rng)),
        "pdq": (shape.sample(n, rng), shape.sample(unrelated_count, rng)),
        "real": (real.hashes[:n], real.held_out[:unrelated_count]),
        # Each window's own orientation only: the statistics of one hash an image.
        "real-original": (real.hashes[real.variant == 0][:n], real.held_out[:unrelated_count]),
    }
    stats = [hash_stats(name, stored, others, rng) for name, (stored, others) in sets.items()]
    print(f"## Bit statistics at {n:,} hashes (real pool: seed {args.seed}, {args.crops} crops)\n")
    print("\n".join(table(stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
