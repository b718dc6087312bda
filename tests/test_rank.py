"""Collapsing chunk hits to ranked clips: best cosine and the other strategies."""

import httpx
import pytest
import yaml

from audiosearch.errors import InvalidInputError
from audiosearch.rank import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    ChunkHit,
    QueryChunkHits,
    check_flag,
    check_limit,
    check_strategy,
    rank_by_best_chunk,
    rank_by_mean_chunk,
    rank_by_top_chunks,
    rank_by_votes,
    rank_clips,
)
from tests.conftest import ROOT, write_tone


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


# ------------------------------------------------------------------ ranking strategies
def test_one_lucky_chunk_wins_best_chunk_but_a_clip_matching_throughout_wins_mean_and_votes():
    # Clip 1 matches every part of the query well; clip 2 matches one part a little better.
    chunks = [hits(0.0, (2, 0.95), (1, 0.90)), hits(2.0, (1, 0.90), (2, 0.40)),
              hits(4.0, (1, 0.90), (2, 0.30))]  # fmt: skip
    assert [m.clip_id for m in rank_by_best_chunk(chunks)] == [2, 1]
    assert [m.clip_id for m in rank_by_mean_chunk(chunks)] == [1, 2]
    assert [m.clip_id for m in rank_by_votes(chunks)] == [1, 2]
    mean = {m.clip_id: m.score for m in rank_by_mean_chunk(chunks)}
    assert mean == pytest.approx({1: 0.90, 2: (0.95 + 0.40 + 0.30) / 3})


def test_top2_needs_two_good_chunks_but_forgives_a_third():
    # Clip 1 matches two of three query chunks very well and the third not at all.
    chunks = [hits(0.0, (1, 0.95), (2, 0.90)), hits(2.0, (1, 0.94), (2, 0.90)),
              hits(4.0, (2, 0.90), (1, 0.10))]  # fmt: skip
    assert [m.clip_id for m in rank_by_top_chunks(chunks)] == [1, 2]
    assert rank_by_top_chunks(chunks)[0].score == pytest.approx((0.95 + 0.94) / 2)
    assert [m.clip_id for m in rank_by_mean_chunk(chunks)] == [2, 1]
    # With one lucky chunk only, top2 sides with the clip that matches twice.
    lucky = [hits(0.0, (1, 0.99), (2, 0.90)), hits(2.0, (2, 0.90), (1, 0.20))]
    assert [m.clip_id for m in rank_by_top_chunks(lucky)] == [2, 1]


def test_a_clip_a_query_chunk_does_not_list_gets_that_chunks_lowest_listed_score():
    # Chunk 2 lists only its top clip; clip 2 is below 0.8 there, so it is scored 0.8 at most.
    chunks = [hits(0.0, (1, 0.9), (2, 0.85)), hits(2.0, (1, 0.8))]
    assert {m.clip_id: m.score for m in rank_by_mean_chunk(chunks)} == pytest.approx(
        {1: 0.85, 2: 0.825}
    )


def test_votes_count_ranks_not_cosines_and_reach_one_for_every_chunks_favourite():
    # Clip 1 is each chunk's favourite by a hair; clip 2 has the highest cosine of all.
    chunks = [hits(0.0, (1, 0.991), (2, 0.990), (3, 0.5)), hits(2.0, (2, 0.999), (1, 0.998)),
              hits(4.0, (1, 0.95), (3, 0.94), (2, 0.93))]  # fmt: skip
    ranked = rank_by_votes(chunks)
    assert [m.clip_id for m in ranked] == [1, 2, 3]
    assert [m.score for m in ranked] == pytest.approx(
        [(1 + 1 / 2 + 1) / 3, (1 / 2 + 1 + 1 / 3) / 3, (1 / 3 + 1 / 2) / 3]
    )
    assert rank_by_votes([hits(0.0, (4, 0.7), (5, 0.6))])[0].score == 1.0
    # Equal votes: the higher best cosine first.
    tie = [hits(0.0, (1, 0.9), (2, 0.8)), hits(2.0, (2, 0.95), (1, 0.7))]
    assert [m.clip_id for m in rank_by_votes(tie)] == [2, 1]


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_reports_the_best_pair_and_honours_limit_and_exclude(strategy):
    chunks = [hits(0.0, (1, 0.5), (2, 0.7), (3, 0.6)), hits(2.0, (1, 0.9), (3, 0.1))]
    ranked = rank_clips(chunks, strategy=strategy, limit=10)
    assert sorted(m.clip_id for m in ranked) == [1, 2, 3]
    one = next(m for m in ranked if m.clip_id == 1)
    assert (one.query_start, one.query_end, one.start, one.end) == (2.0, 6.0, 1.0, 5.0)
    assert len(rank_clips(chunks, strategy=strategy, limit=2)) == 2
    assert 1 not in [m.clip_id for m in rank_clips(chunks, strategy=strategy, exclude=1)]
    scores = [m.score for m in ranked]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_a_one_chunk_query_ranks_alike_under_every_strategy(strategy):
    chunks = [hits(0.0, (3, 0.9), (1, 0.8), (2, 0.7))]
    assert [m.clip_id for m in rank_clips(chunks, strategy=strategy)] == [3, 1, 2]


def test_the_default_strategy_is_the_one_rank_clips_uses():
    chunks = [hits(0.0, (2, 0.95), (1, 0.90)), hits(2.0, (1, 0.90), (2, 0.40))]
    assert rank_clips(chunks) == STRATEGIES[DEFAULT_STRATEGY](chunks)


@pytest.mark.parametrize("bad", ["best", "", None, 3, "BEST_CHUNK", ["votes"]])
def test_unknown_strategy_names_the_choices(bad):
    with pytest.raises(InvalidInputError, match=r"strategy=.*expected one of best_chunk, "):
        check_strategy(bad)


def test_flags_take_booleans_only():
    assert check_flag("duplicates", True) is True
    assert check_flag("duplicates", None) is False
    with pytest.raises(InvalidInputError, match=r"duplicates='yes': expected true or false"):
        check_flag("duplicates", "yes")


# ------------------------------------------------------------------ through the service
@pytest.mark.slow
def test_the_service_ranks_with_flow_yml_strategy_or_the_one_a_request_names(sfx_server, tmp_path):
    # Tones of their own (not 440 Hz, which other tests of this shared server index).
    tones = [write_tone(tmp_path / f"tone_{hz}.wav", 10.0, freq=hz) for hz in (523, 659, 784, 988)]
    sfx_server.post("index", [{"uri": str(t)} for t in tones])
    query = [{"uri": str(tones[0])}]  # 10 s: four query chunks
    flow = yaml.safe_load((ROOT / "flow.yml").read_text())
    [ranker] = [e for e in flow["executors"] if e["name"] == "ranker"]
    by_strategy = {
        s: sfx_server.post("search", query, limit=3, strategy=s)[0]["matches"] for s in STRATEGIES
    }
    for strategy, matches in by_strategy.items():
        # The clip itself matches every query chunk best: best cosine 1, mean 1, every vote.
        assert matches[0]["uri"] == str(tones[0]), strategy
        assert matches[0]["score"] == pytest.approx(1, abs=1e-4) and len(matches) == 3
    [default] = sfx_server.post("search", query, limit=3)
    assert [(m["uri"], m["score"]) for m in default["matches"]] == [
        (m["uri"], m["score"]) for m in by_strategy[ranker["uses_with"]["strategy"]]
    ]
    # A bad strategy is refused at the edge, as a bad limit is, naming the choices.
    bad = httpx.post(
        f"{sfx_server.url}/search", json={"data": query, "parameters": {"strategy": "best"}}
    )
    assert bad.status_code == 422
    assert "parameters.strategy='best': expected one of" in bad.json()["detail"]


@pytest.mark.slow
def test_the_service_expands_queries_as_flow_yml_says_unless_a_request_says_otherwise(
    sfx_server, tmp_path
):
    tones = [write_tone(tmp_path / f"tone_{hz}.wav", 6.0, freq=hz) for hz in (330, 370, 415)]
    sfx_server.post("index", [{"uri": str(t)} for t in tones])
    flow = yaml.safe_load((ROOT / "flow.yml").read_text())
    [indexer] = [e for e in flow["executors"] if e["name"] == "indexer"]
    assert indexer["uses_with"]["query_expansion"] is True

    def answer(query: list[dict], **parameters) -> list[tuple[str, float]]:
        [doc] = sfx_server.post("search", query, limit=5, **parameters)
        return [(m["uri"], round(m["score"], 5)) for m in doc["matches"]]

    # A query not in the index: expanded with its nearest chunk, its cosines change.
    query = [{"uri": str(write_tone(tmp_path / "query_349hz.wav", 6.0, freq=349))}]
    default, expanded = answer(query), answer(query, query_expansion=True)
    plain = answer(query, query_expansion=False)
    assert default == expanded != plain and len(plain) == 5
    # An indexed clip is its own nearest chunk: expanding it changes nothing.
    itself = [{"uri": str(tones[1])}]
    assert answer(itself)[0] == (str(tones[1]), 1.0)
    assert answer(itself) == answer(itself, query_expansion=False)
    bad = httpx.post(
        f"{sfx_server.url}/search", json={"data": query, "parameters": {"query_expansion": "yes"}}
    )
    assert bad.status_code == 422
    assert "parameters.query_expansion='yes': expected true or false" in bad.json()["detail"]
