"""Judgments in the index, on constructed vectors whose neighbours are known."""

import numpy as np
import pytest

from audiosearch.errors import InvalidInputError
from audiosearch.feedback import Judgments, check_judgments, spread
from audiosearch.index import ChunkIndex, ClipToAdd

ENCODER = "test/1"
DIM = 16


def family_library(rng: np.random.Generator) -> tuple[list[ClipToAdd], dict[str, list[str]]]:
    """Three families of 6 clips, each family a cluster around its own direction; the
    families' directions are close enough that the query's family does not win alone."""
    centres = {"a": rng.normal(size=DIM), "b": rng.normal(size=DIM), "c": rng.normal(size=DIM)}
    shared = rng.normal(size=DIM) * 2.5  # every clip leans the same way: cosines crowd
    clips, families = [], {}
    for name, centre in centres.items():
        families[name] = []
        for i in range(6):
            uri = f"/{name}{i}.wav"
            vectors = shared + centre + 0.35 * rng.normal(size=(2, DIM))
            clips.append(ClipToAdd(uri, 6.0, np.array([0.0, 2.0]), np.array([4.0, 6.0]),
                                   vectors, uri))  # fmt: skip
            families[name].append(uri)
    return clips, families


@pytest.fixture
def library(tmp_path):
    clips, families = family_library(np.random.default_rng(7))
    index = ChunkIndex(tmp_path / "ws")
    results = index.add(clips, encoder=ENCODER)
    ids = {clip.uri: r.clip_id for clip, r in zip(clips, results, strict=True)}
    query = clips[0].vectors + 0.3 * np.random.default_rng(8).normal(size=(2, DIM))
    yield index, ids, families, query, {clip.uri: clip.vectors for clip in clips}
    index.close()


def ranked(index, query, judgments: Judgments | None = None, **kwargs) -> list[str]:
    judgments = judgments or Judgments()
    hits = index.search_judged(
        query, np.array([[0.0, 4.0], [2.0, 6.0]]), judgments=judgments, limit=18,
        encoder=ENCODER, expand=True, **kwargs,
    )  # fmt: skip
    return [h.uri for h in hits]


def mean_rank(order: list[str], uris: list[str]) -> float:
    return float(np.mean([order.index(u) for u in uris if u in order]))


def test_without_judgments_the_order_is_the_plain_search_order(library):
    index, _, _, query, _ = library
    per_chunk = index.search(query, limit=18, encoder=ENCODER, expand=True)
    best: dict[str, float] = {}
    for hits in per_chunk:
        for h in hits:
            best[h.uri] = max(best.get(h.uri, -1.0), h.score)
    assert ranked(index, query) == sorted(best, key=lambda u: -best[u])


def test_a_liked_clip_lifts_its_family_and_a_disliked_one_sinks_its_own(library):
    index, ids, families, query, _ = library
    before = ranked(index, query)
    liked = families["b"][0]
    after = ranked(index, query, Judgments(liked=(ids[liked],)))
    assert after[0] == liked
    assert mean_rank(after, families["b"][1:]) < mean_rank(before, families["b"][1:]) - 3
    disliked = families["a"][1]
    sunk = ranked(index, query, Judgments(disliked=(ids[disliked],)))
    assert disliked not in sunk
    others = [u for u in families["a"] if u != disliked]
    assert mean_rank(sunk, others) > mean_rank(before, others)


def test_liked_audio_alone_is_a_query(library):
    index, _, families, _, vectors = library
    sound = vectors[families["c"][0]]  # c0's sound, sent as audio: not a judged clip
    hits = index.search_judged(
        np.zeros((0, DIM)), np.zeros((0, 2)), judgments=Judgments(), liked_audio=[sound],
        limit=5, encoder=ENCODER,
    )  # fmt: skip
    assert families["c"][0] in [h.uri for h in hits[:3]]
    assert {h.uri for h in hits} <= set(families["c"])
    assert all(h.query_start == h.query_end == 0 and h.judged is None for h in hits)


def test_bad_judgments_say_what_to_fix(library):
    index, _, _, query, _ = library
    with pytest.raises(InvalidInputError, match="like: clip_id=999 is not in the index"):
        ranked(index, query, Judgments(liked=(999,)))
    with pytest.raises(InvalidInputError, match="clip_id=3: both liked and disliked"):
        check_judgments([3, 4], [3])
    with pytest.raises(InvalidInputError, match="101 judged clips: a search takes at most 100"):
        check_judgments(list(range(60)), list(range(100, 141)))


def test_the_spread_reaches_a_liked_nodes_neighbours_first():
    # A chain 0-1-2-3-4-5: liking 0 ranks 1 above 2 above 3 ...; disliking 5 pushes 4 below 0.
    similarity = np.eye(6) + np.diag(np.full(5, 0.9), 1) + np.diag(np.full(5, 0.9), -1)
    relevance = spread(similarity, np.array([1.0, 0, 0, 0, 0, -0.5]), neighbours=2)
    assert list(np.argsort(-relevance)) == [0, 1, 2, 3, 4, 5]
    assert relevance[4] < 0 < relevance[2] and np.abs(relevance).max() == pytest.approx(1.0)
