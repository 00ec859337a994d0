"""The cost model that chooses a segment's chunk shape (registry.matching.layout)."""

from __future__ import annotations

import numpy as np
import pytest

from registry.matching.index import _check_pairs
from registry.matching.layout import (
    _COST_CANDIDATE_NS,
    _COST_LOOKUP_NS,
    _INDEX_BYTES_PER_HASH,
    _SMALL_INDEX_TABLE_BYTES,
    MATCH_DISTANCE,
    _BitStatistics,
    _choose_shape,
    _Layout,
    _rows_met,
    _table_bytes_allowed,
    ball_size,
    build_segment,
    double_units,
    even_radii,
    modelled_cost_ns,
    probe_cost_ns,
)
from tests.benchmarks.datasets import make_dataset


def test_double_cover_units_reach_the_distance_plus_the_largest_chunk() -> None:
    # 12 chunks: single radii at most 2, so a double cover needs 32 + 3 units.
    assert double_units(12, MATCH_DISTANCE) == [3] * 11 + [2]
    # 11 chunks cannot give 35 units at radius 2 or less.
    assert double_units(11, MATCH_DISTANCE) is None
    for chunks in range(8, 17):
        units = double_units(chunks, MATCH_DISTANCE)
        if units is not None:
            top = max(even_radii(chunks, MATCH_DISTANCE))
            assert sum(units) >= MATCH_DISTANCE + 1 + top + 1
            assert max(units) <= top + 1


def test_the_model_counts_the_double_cover_where_it_is_cheaper() -> None:
    rows = 1_000_000
    occupancy = rows / 2**17
    single = (
        13 * ball_size(17, 2) * _COST_LOOKUP_NS
        + sum(ball_size(17, t) for t in even_radii(13, MATCH_DISTANCE))
        * occupancy
        * _COST_CANDIDATE_NS
    )
    assert probe_cost_ns(13, 17, occupancy, MATCH_DISTANCE) < single
    # Without a double cover, the single cover's cost is the model's.
    occupancy = rows / 2**18
    radii = even_radii(11, MATCH_DISTANCE)
    single = (
        11 * ball_size(18, max(radii)) * _COST_LOOKUP_NS
        + sum(ball_size(18, t) for t in radii) * occupancy * _COST_CANDIDATE_NS
    )
    assert probe_cost_ns(11, 18, occupancy, MATCH_DISTANCE) == pytest.approx(single)


@pytest.mark.parametrize("rows", [100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 10**8])
def test_large_segments_get_a_shape_that_can_count_twice_within_the_memory_budget(
    rows: int,
) -> None:
    shape = _choose_shape(rows)
    assert shape is not None
    chunks, bits = shape
    assert chunks * bits <= 256
    assert 4.0 * chunks * (rows + 2**bits + 1) <= _table_bytes_allowed(rows)
    # Measured: at 1M and 3M rows a double-cover shape answers in half to two thirds of the
    # time of the single-cover shape chosen before (the docstring of _choose_shape).
    assert double_units(chunks, MATCH_DISTANCE) is not None


def test_small_segments_are_scanned() -> None:
    assert _choose_shape(4_000) is None
    assert _choose_shape(20_000) is None


def test_tables_take_60_bytes_a_hash_or_128_mib_below_two_million_rows() -> None:
    assert _table_bytes_allowed(100_000) == 100_000 * _INDEX_BYTES_PER_HASH
    assert _table_bytes_allowed(1_000_000) == _SMALL_INDEX_TABLE_BYTES
    assert _table_bytes_allowed(10_000_000) == 10_000_000 * _INDEX_BYTES_PER_HASH
    # At 10 million rows and beyond the 60 bytes a hash still bind: 12 chunks of 21 bits.
    assert _choose_shape(10_000_000) == (12, 21)
    assert _choose_shape(10**8) == (12, 21)


def test_the_uniform_occupancy_is_the_estimate_of_uniform_rows_met() -> None:
    met = np.array([[ball_size(17, t) * 7.6 for t in range(3)]] * 13)
    assert modelled_cost_ns(met, 17, MATCH_DISTANCE) == pytest.approx(
        probe_cost_ns(13, 17, 7.6, MATCH_DISTANCE)
    )


def _words(kind: str, rows: int) -> np.ndarray:
    data = make_dataset(kind, rows, 2)
    return _check_pairs(data.ids, data.hashes)[1]


def test_rows_met_are_estimated_from_the_data() -> None:
    rows = 300_000
    uniform, shaped = _words("uniform", rows), _words("pdq", rows)
    for words, low, high in [(uniform, 0.7, 1.4), (shaped, 2.5, 1e9)]:
        layout = _Layout.from_groups(_BitStatistics.of(words).groups(12, 18))
        met = _rows_met(words, layout, 2)
        expected = np.array([ball_size(18, t) * rows / 2**18 for t in range(3)])
        # Never below uniform; uniform hashes meet about what uniform buckets hold, PDQ-shaped
        # ones many times more (their chunk values are skewed).
        assert (met >= expected - 1e-9).all()
        ratio = met[:, 2].mean() / expected[2]
        assert low < ratio < high


def test_skewed_data_chooses_wider_chunks_than_its_uniform_model() -> None:
    # A model that fills narrow chunks far more than wide ones, as skewed data does.
    def skewed(chunks: int, bits: int) -> np.ndarray:
        rows = 1_000_000
        factor = 4.0 ** (20 - bits) if bits < 20 else 1.0
        return np.array([[ball_size(bits, t) * rows / 2**bits * factor for t in range(3)]] * chunks)

    assert _choose_shape(1_000_000) == (17, 15)
    assert _choose_shape(1_000_000, skewed) == (12, 20)
    # Below 250,000 rows the estimate is not made.
    assert _choose_shape(200_000, skewed) == _choose_shape(200_000)


def test_a_segment_built_on_pdq_shaped_hashes_takes_the_estimated_shape() -> None:
    rows = 1_000_000
    words = _words("pdq", rows)
    segment = build_segment(np.arange(rows, dtype=np.int64), words)
    assert segment.layout is not None
    chunks, bits = segment.layout.chunks, segment.layout.bits
    assert 4.0 * chunks * (rows + 2**bits + 1) <= _table_bytes_allowed(rows)
    # The uniform model chooses 17 chunks of 15 bits within the same budget; on these hashes
    # the estimate rules it out (their 15-bit chunks meet several times the rows of uniform).
    assert _choose_shape(rows) == (17, 15)
    assert bits >= 18
