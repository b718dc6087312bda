"""The chunk index: exact answers, persistence, no duplicates, atomic adds, encoder checks."""

import numpy as np
import pytest

from audiosearch.errors import IndexMismatchError
from audiosearch.index import ChunkIndex, ClipToAdd

ENCODER = "test/1"


def one_hot(*positions: int, dim: int = 8) -> np.ndarray:
    vectors = np.zeros((len(positions), dim), dtype=np.float32)
    vectors[np.arange(len(positions)), positions] = 1.0
    return vectors


def clip(uri: str, *positions: int, fingerprint: str | None = "f1") -> ClipToAdd:
    n = len(positions)
    starts = np.arange(n) * 2.0
    return ClipToAdd(uri, 2.0 * n + 2, starts, starts + 4, one_hot(*positions), fingerprint)


def test_each_query_chunk_finds_the_clip_holding_its_vector(tmp_path):
    index = ChunkIndex(tmp_path)
    index.add([clip("a", 0, 1), clip("b", 2, 3), clip("c", 4)], encoder=ENCODER)
    [hits_for_3, hits_for_0] = index.search(one_hot(3, 0), limit=2, encoder=ENCODER)
    assert [h.uri for h in hits_for_3] == ["b", hits_for_3[1].uri]
    assert hits_for_3[0].score == pytest.approx(1.0)
    assert (hits_for_3[0].start, hits_for_3[0].end) == (2.0, 6.0)  # b's second chunk
    assert hits_for_3[1].score == pytest.approx(0.0)
    assert hits_for_0[0].uri == "a" and (hits_for_0[0].start, hits_for_0[0].end) == (0.0, 4.0)


def test_a_clip_scores_by_its_best_chunk(tmp_path):
    index = ChunkIndex(tmp_path)
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    near = ClipToAdd("near", 6, np.array([0.0, 2.0]), np.array([4.0, 6.0]),
                     np.array([[0.0, 1.0], [0.9, 0.1]], dtype=np.float32))  # fmt: skip
    far = ClipToAdd("far", 4, np.array([0.0]), np.array([4.0]),
                    np.array([[0.5, 0.5]], dtype=np.float32))  # fmt: skip
    index.add([far, near], encoder=ENCODER)
    [hits] = index.search(query, limit=5, encoder=ENCODER)
    assert [h.uri for h in hits] == ["near", "far"]
    assert hits[0].score == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert hits[0].start == 2.0


def test_index_survives_reopening(tmp_path):
    ChunkIndex(tmp_path).add([clip("a", 0), clip("b", 1, 2)], encoder=ENCODER)
    reopened = ChunkIndex(tmp_path)
    assert (len(reopened), reopened.chunk_count) == (2, 3)
    [hits] = reopened.search(one_hot(2), limit=1, encoder=ENCODER)
    assert hits[0].uri == "b" and hits[0].score == pytest.approx(1.0)


def test_unchanged_file_is_not_stored_twice_and_a_changed_one_is_replaced(tmp_path):
    index = ChunkIndex(tmp_path)
    [first] = index.add([clip("a", 0, 1)], encoder=ENCODER)
    [again] = index.add([clip("a", 0, 1)], encoder=ENCODER)
    assert (first.status, again.status, again.clip_id) == ("added", "unchanged", first.clip_id)
    assert (len(index), index.chunk_count) == (1, 2)

    [changed] = index.add([clip("a", 5, fingerprint="f2")], encoder=ENCODER)
    assert changed.status == "replaced"
    assert (len(index), index.chunk_count) == (1, 1)
    [hits] = index.search(one_hot(0), limit=5, encoder=ENCODER)
    assert hits[0].score == pytest.approx(0.0)  # the old vectors are gone
    reopened = ChunkIndex(tmp_path)
    assert (len(reopened), reopened.chunk_count) == (1, 1)


def test_same_file_twice_in_one_request_is_stored_once(tmp_path):
    index = ChunkIndex(tmp_path)
    results = index.add([clip("a", 0), clip("a", 0)], encoder=ENCODER)
    assert [r.status for r in results] == ["added", "unchanged"]
    assert results[0].clip_id == results[1].clip_id and len(index) == 1


def test_uncommitted_vectors_left_by_a_crash_are_dropped_on_open(tmp_path):
    ChunkIndex(tmp_path).add([clip("a", 0)], encoder=ENCODER)
    # A crash after the vectors were written but before the transaction committed.
    with open(tmp_path / "vectors.f32", "ab") as f:
        f.write(one_hot(1).tobytes() * 3)
    reopened = ChunkIndex(tmp_path)
    assert (tmp_path / "vectors.f32").stat().st_size == 8 * 4
    reopened.add([clip("b", 2)], encoder=ENCODER)
    [hits] = ChunkIndex(tmp_path).search(one_hot(2), limit=2, encoder=ENCODER)
    assert [h.uri for h in hits] == ["b", "a"] and hits[0].score == pytest.approx(1.0)


def test_vectors_of_another_encoder_are_refused_with_a_clear_error(tmp_path):
    index = ChunkIndex(tmp_path)
    index.add([clip("a", 0)], encoder=ENCODER)
    with pytest.raises(IndexMismatchError, match="encoder 'test/1'.*'other/2'.*new workspace"):
        index.add([clip("b", 1)], encoder="other/2")
    with pytest.raises(IndexMismatchError, match="8-d"):
        ChunkIndex(tmp_path).search(np.ones((1, 4)), limit=1, encoder=ENCODER)


def test_empty_index_returns_no_hits(tmp_path):
    assert ChunkIndex(tmp_path).search(one_hot(0), limit=3, encoder=ENCODER) == [[]]
