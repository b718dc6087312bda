"""Collapsing chunk hits to clips by their best cosine score."""

import pytest

from audiosearch.errors import InvalidInputError
from audiosearch.index import ChunkHit
from audiosearch.rank import QueryChunkHits, check_limit, rank_by_best_chunk


def hits(query_start: float, *scored: tuple[int, float]) -> QueryChunkHits:
    return QueryChunkHits(
        query_start,
        query_start + 4,
        [ChunkHit(clip, f"clip{clip}", score, clip * 1.0, clip + 4.0) for clip, score in scored],
    )


def test_clips_rank_by_their_best_chunk_pair_and_report_where_it_matched():
    ranked = rank_by_best_chunk(
        [hits(0.0, (1, 0.5), (2, 0.7)), hits(2.0, (1, 0.9), (3, 0.1))], limit=10
    )
    assert [(m.clip_id, m.score) for m in ranked] == [(1, 0.9), (2, 0.7), (3, 0.1)]
    best = ranked[0]
    assert (best.query_start, best.query_end) == (2.0, 6.0)
    assert (best.start, best.end) == (1.0, 5.0)


def test_limit_and_exclude():
    chunks = [hits(0.0, (1, 0.99), (2, 0.8), (3, 0.7))]
    assert [m.clip_id for m in rank_by_best_chunk(chunks, limit=1)] == [1]
    assert [m.clip_id for m in rank_by_best_chunk(chunks, limit=5, exclude=1)] == [2, 3]


@pytest.mark.parametrize("bad", [0, -1, 10**9, 2.5, "10", True, None])
def test_limit_out_of_range_names_the_value_and_the_range(bad):
    with pytest.raises(InvalidInputError, match=r"limit=.*expected a whole number from 1 to 1000"):
        check_limit(bad)


def test_limit_from_json_floats_is_accepted():
    assert check_limit(5.0) == 5 and check_limit(1000) == 1000
