"""Synthetic PDQ hashes for the matching tests and benchmark: uniform, and shaped like real ones.

Hashes are uint8 arrays of shape (n, 32), the bytes of the hash's text form (byte 0 = its first
two hex digits), as ``registry.matching.HashIndex`` takes them.

Real PDQ hashes are not uniform. PDQ sets bit ``k`` when DCT coefficient ``k`` (16 x 16, row
major; bit 255 is the first of the text) is above the median of the 256, so every hash has
exactly 128 bits set; coefficients move together (images share structure: neighbouring
frequencies correlate), and some are above the median more often than others. ``PdqShape`` models
that: a low-rank Gaussian latent whose loadings are smooth over the 16 x 16 grid (so neighbouring
bits correlate), plus a fixed bias per coefficient, plus independent noise, thresholded at each
row's median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

HASH_BITS = 256
HASH_BYTES = 32
_BLOCK = 1 << 17

Hashes = NDArray[np.uint8]


def uniform_hashes(n: int, rng: np.random.Generator) -> Hashes:
    """``n`` independent uniform 256-bit hashes."""
    return rng.integers(0, 256, size=(n, HASH_BYTES), dtype=np.uint8)


@dataclass(frozen=True)
class PdqShape:
    """A generative model of PDQ-like hashes; see the module docstring.

    ``loadings`` is (rank, 256), ``bias`` (256,), both over bit index k (coefficient order).
    """

    loadings: NDArray[np.float32]
    bias: NDArray[np.float32]
    noise: float

    @classmethod
    def create(
        cls,
        seed: int = 2024,
        *,
        rank: int = 16,
        smoothness: float = 1.5,
        latent_share: float = 0.6,
        bias_scale: float = 0.35,
    ) -> PdqShape:
        """A model whose latent part explains ``latent_share`` of each coefficient's variance.

        ``smoothness`` is the width, in grid cells, of the Gaussian that smooths each loading
        over the 16 x 16 grid; ``bias_scale`` the standard deviation of the per-coefficient bias
        (in units of the coefficient's standard deviation; 0.35 makes bits set from about 35%
        to 65% of the time).
        """
        rng = np.random.default_rng(seed)
        grid = np.arange(16)
        kernel = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / smoothness) ** 2)
        raw = rng.standard_normal((rank, 16, 16))
        smooth = np.einsum("ij,fjk,lk->fil", kernel, raw, kernel).reshape(rank, HASH_BITS)
        # A decaying spectrum: a few strong factors, many weak ones, as in image statistics.
        smooth *= (1.0 / np.sqrt(np.arange(1, rank + 1)))[:, None]
        scale = np.sqrt((smooth**2).sum(axis=0))
        loadings = smooth / scale * np.sqrt(latent_share)
        bias = rng.standard_normal(HASH_BITS) * bias_scale
        return cls(
            loadings=loadings.astype(np.float32),
            bias=bias.astype(np.float32),
            noise=float(np.sqrt(1.0 - latent_share)),
        )

    def sample(self, n: int, rng: np.random.Generator) -> Hashes:
        """``n`` independent hashes from the model, each with exactly 128 bits set."""
        out = np.empty((n, HASH_BYTES), np.uint8)
        rank = self.loadings.shape[0]
        for start in range(0, n, _BLOCK):
            rows = min(_BLOCK, n - start)
            values = rng.standard_normal((rows, HASH_BITS), dtype=np.float32)
            values *= np.float32(self.noise)
            values += self.bias
            values += rng.standard_normal((rows, rank), dtype=np.float32) @ self.loadings
            median = np.partition(values, 127, axis=1)[:, 127:128]
            # Continuous values never tie, so exactly the 128 above the 128th smallest are set.
            out[start : start + rows] = coefficients_to_bytes(values > median)
        return out


def coefficients_to_bytes(bits: NDArray[np.bool_]) -> Hashes:
    """Pack (n, 256) bits in coefficient order k into text-order bytes (bit 255 first)."""
    return np.packbits(bits[:, ::-1], axis=1)


def bytes_to_coefficients(hashes: Hashes) -> NDArray[np.bool_]:
    """The inverse of ``coefficients_to_bytes``."""
    return np.unpackbits(hashes, axis=1)[:, ::-1].astype(bool)


def flip_bits(
    hashes: Hashes,
    distances: NDArray[np.int64],
    rng: np.random.Generator,
    *,
    keep_weight: bool = False,
) -> Hashes:
    """Copies of ``hashes`` with row i exactly ``distances[i]`` bits away from the original.

    With ``keep_weight`` the flips swap set and unset bits in pairs, so the count of bits set is
    kept (as a re-encoded image keeps PDQ's 128): odd distances are rounded down to even.
    """
    out = np.empty_like(hashes)
    for start in range(0, hashes.shape[0], _BLOCK):
        stop = min(start + _BLOCK, hashes.shape[0])
        bits = np.unpackbits(hashes[start:stop], axis=1).astype(bool)
        dist = np.asarray(distances[start:stop], dtype=np.int64)
        keys = rng.random(bits.shape, dtype=np.float32)
        if keep_weight:
            half = dist // 2
            # Rank the set bits and the unset bits separately; flip the first `half` of each.
            set_rank = _rank_within(np.where(bits, keys, np.float32(2.0)))
            unset_rank = _rank_within(np.where(bits, np.float32(2.0), keys))
            flip = np.where(bits, set_rank, unset_rank) < half[:, None]
        else:
            flip = _rank_within(keys) < dist[:, None]
        out[start:stop] = np.packbits(bits ^ flip, axis=1)
    return out


def _rank_within(keys: NDArray[np.float32]) -> NDArray[np.int64]:
    """Each element's rank within its row (0 = smallest)."""
    order = np.argsort(keys, axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(keys.shape[1])[None, :], axis=1)
    return ranks


@dataclass(frozen=True)
class Dataset:
    """Stored hashes with their ids, and queries: near-duplicates first, then unrelated ones."""

    name: str
    ids: NDArray[np.int64]
    hashes: Hashes
    queries: Hashes
    near_queries: int


def make_dataset(
    kind: str,
    n: int,
    queries: int,
    seed: int = 0,
    *,
    planted_fraction: float = 0.01,
    max_planted_distance: int = 31,
) -> Dataset:
    """A data set of ``n`` stored hashes of ``kind`` ("uniform" or "pdq") and its queries.

    A ``planted_fraction`` of the stored hashes are near-duplicates (0 to
    ``max_planted_distance`` bits) of other stored hashes, as when one photo is registered twice
    after re-encoding. Half the queries are near-duplicates (0 to 31 bits) of stored hashes;
    the rest are drawn independently from the same distribution.
    """
    rng = np.random.default_rng(seed)
    if kind == "uniform":

        def draw(count: int) -> Hashes:
            return uniform_hashes(count, rng)

        keep_weight = False
    elif kind == "pdq":
        shape = PdqShape.create()

        def draw(count: int) -> Hashes:
            return shape.sample(count, rng)

        keep_weight = True
    else:
        raise ValueError(f"unknown data set kind {kind!r}")
    hashes = draw(n)
    planted = int(n * planted_fraction)
    if planted and n > 1:
        targets = rng.choice(n, size=planted, replace=False)
        sources = rng.integers(0, n, size=planted)
        distances = rng.integers(0, max_planted_distance + 1, size=planted)
        hashes[targets] = flip_bits(hashes[sources], distances, rng, keep_weight=keep_weight)
    near = queries // 2
    near_sources = rng.integers(0, n, size=near) if n else np.zeros(0, np.int64)
    near_queries = flip_bits(
        hashes[near_sources], rng.integers(0, 32, size=near), rng, keep_weight=keep_weight
    )
    query_hashes = np.concatenate([near_queries, draw(queries - near)])
    ids = rng.permutation(np.arange(n, dtype=np.int64) * 7 + 1_000_000)
    return Dataset(f"{kind}", ids, hashes, query_hashes, near)
