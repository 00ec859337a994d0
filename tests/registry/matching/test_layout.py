"""The cost model that chooses a segment's chunk shape (registry.matching.layout)."""

from __future__ import annotations

import pytest

from registry.matching.layout import (
    _COST_CANDIDATE_NS,
    _COST_LOOKUP_NS,
    _INDEX_BYTES_PER_HASH,
    MATCH_DISTANCE,
    _choose_shape,
    ball_size,
    double_units,
    even_radii,
    probe_cost_ns,
)


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
    assert 4.0 * chunks * (1.0 + (2**bits + 1) / rows) <= _INDEX_BYTES_PER_HASH
    # Measured: at 1M and 3M rows a double-cover shape answers in half to two thirds of the
    # time of the single-cover shape chosen before (the docstring of _choose_shape).
    assert double_units(chunks, MATCH_DISTANCE) is not None


def test_small_segments_are_scanned() -> None:
    assert _choose_shape(4_000) is None
    assert _choose_shape(20_000) is None
