"""The chunk index: exact answers, persistence, library management, atomic adds, compaction."""

import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiosearch.errors import IndexMismatchError
from audiosearch.index import (
    ChunkIndex,
    ClipFilter,
    ClipToAdd,
    IndexLockedError,
    check_clip_filter,
    read_stored_clip,
    uri_shard,
)

ENCODER = "test/1"


def one_hot(*positions: int, dim: int = 8) -> np.ndarray:
    vectors = np.zeros((len(positions), dim), dtype=np.float32)
    vectors[np.arange(len(positions)), positions] = 1.0
    return vectors


def clip(uri: str, *positions: int, fingerprint: str | None = "f1") -> ClipToAdd:
    n = len(positions)
    starts = np.arange(n) * 2.0
    return ClipToAdd(uri, 2.0 * n + 2, starts, starts + 4, one_hot(*positions), fingerprint)


def random_clip(uri: str, rng: np.random.Generator, chunks: int, dim: int = 16) -> ClipToAdd:
    starts = np.arange(chunks) * 2.0
    vectors = rng.standard_normal((chunks, dim)).astype(np.float32)
    return ClipToAdd(uri, 2.0 * chunks + 2, starts, starts + 4, vectors, "f1")


def vector_files(workspace) -> list[str]:
    return sorted(p.name for p in workspace.glob("vectors.*"))


def test_each_query_chunk_finds_the_clip_holding_its_vector(tmp_path):
    with ChunkIndex(tmp_path) as index:
        index.add([clip("a", 0, 1), clip("b", 2, 3), clip("c", 4)], encoder=ENCODER)
        [hits_for_3, hits_for_0] = index.search(one_hot(3, 0), limit=2, encoder=ENCODER)
    assert [h.uri for h in hits_for_3] == ["b", hits_for_3[1].uri]
    assert hits_for_3[0].score == pytest.approx(1.0)
    assert (hits_for_3[0].start, hits_for_3[0].end) == (2.0, 6.0)  # b's second chunk
    assert hits_for_3[1].score == pytest.approx(0.0)
    assert hits_for_0[0].uri == "a" and (hits_for_0[0].start, hits_for_0[0].end) == (0.0, 4.0)


def test_a_clip_scores_by_its_best_chunk(tmp_path):
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    near = ClipToAdd("near", 6, np.array([0.0, 2.0]), np.array([4.0, 6.0]),
                     np.array([[0.0, 1.0], [0.9, 0.1]], dtype=np.float32))  # fmt: skip
    far = ClipToAdd("far", 4, np.array([0.0]), np.array([4.0]),
                    np.array([[0.5, 0.5]], dtype=np.float32))  # fmt: skip
    with ChunkIndex(tmp_path) as index:
        index.add([far, near], encoder=ENCODER)
        [hits] = index.search(query, limit=5, encoder=ENCODER)
    assert [h.uri for h in hits] == ["near", "far"]
    assert hits[0].score == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert hits[0].start == 2.0


def test_index_survives_reopening(tmp_path):
    with ChunkIndex(tmp_path) as index:
        index.add([clip("a", 0), clip("b", 1, 2)], encoder=ENCODER)
    with ChunkIndex(tmp_path) as reopened:
        assert (len(reopened), reopened.chunk_count) == (2, 3)
        [hits] = reopened.search(one_hot(2), limit=1, encoder=ENCODER)
    assert hits[0].uri == "b" and hits[0].score == pytest.approx(1.0)
    assert (hits[0].start, hits[0].end) == (2.0, 6.0)


def test_unchanged_file_is_not_stored_twice_and_a_changed_one_is_replaced(tmp_path):
    with ChunkIndex(tmp_path) as index:
        [first] = index.add([clip("a", 0, 1)], encoder=ENCODER)
        [again] = index.add([clip("a", 0, 1)], encoder=ENCODER)
        assert (first.status, again.status, again.clip_id) == ("added", "unchanged", first.clip_id)
        assert (len(index), index.chunk_count) == (1, 2)

        [changed] = index.add([clip("a", 5, fingerprint="f2")], encoder=ENCODER)
        assert (changed.status, changed.clip_id) == ("replaced", first.clip_id)  # id kept
        assert (len(index), index.chunk_count) == (1, 1)
        assert index.get(first.clip_id).fingerprint == "f2"
        [hits] = index.search(one_hot(0), limit=5, encoder=ENCODER)
        assert hits[0].score == pytest.approx(0.0)  # the old vectors are gone
    with ChunkIndex(tmp_path) as reopened:
        assert (len(reopened), reopened.chunk_count) == (1, 1)


def test_same_file_twice_in_one_request_is_stored_once(tmp_path):
    with ChunkIndex(tmp_path) as index:
        results = index.add([clip("a", 0), clip("a", 0)], encoder=ENCODER)
        assert [r.status for r in results] == ["added", "unchanged"]
        assert results[0].clip_id == results[1].clip_id and len(index) == 1


def test_uncommitted_vectors_left_by_a_crash_are_dropped_on_open(tmp_path):
    with ChunkIndex(tmp_path) as index:
        index.add([clip("a", 0)], encoder=ENCODER)
    [vectors] = tmp_path.glob("vectors.*.f32")
    with open(vectors, "ab") as f:  # written, but the transaction never committed
        f.write(one_hot(1).tobytes() * 3)
    with ChunkIndex(tmp_path) as reopened:
        assert vectors.stat().st_size == 8 * 4
        reopened.add([clip("b", 2)], encoder=ENCODER)
    with ChunkIndex(tmp_path) as index:
        [hits] = index.search(one_hot(2), limit=2, encoder=ENCODER)
    assert [h.uri for h in hits] == ["b", "a"] and hits[0].score == pytest.approx(1.0)


def test_vectors_of_another_encoder_are_refused_with_a_clear_error(tmp_path):
    with ChunkIndex(tmp_path) as index:
        index.add([clip("a", 0)], encoder=ENCODER)
        with pytest.raises(IndexMismatchError, match=r"encoder 'test/1'.*'other/2'.*new workspace"):
            index.add([clip("b", 1)], encoder="other/2")
    with (
        ChunkIndex(tmp_path) as index,
        pytest.raises(IndexMismatchError, match="8-d"),
    ):
        index.search(np.ones((1, 4)), limit=1, encoder=ENCODER)


def test_empty_index_returns_no_hits(tmp_path):
    with ChunkIndex(tmp_path) as index:
        assert index.search(one_hot(0), limit=3, encoder=ENCODER) == [[]]


def test_clips_are_listed_in_id_order_with_their_facts(tmp_path):
    with ChunkIndex(tmp_path) as index:
        results = index.add([clip("a", 0, 1, 2), clip("b", 3), clip("c", 4, 5)], encoder=ENCODER)
        ids = [r.clip_id for r in results]
        listed = index.clips()
        assert [c.clip_id for c in listed] == sorted(ids)
        assert [(c.uri, c.chunk_count, c.duration) for c in listed] == [
            ("a", 3, 8.0), ("b", 1, 4.0), ("c", 2, 6.0),
        ]  # fmt: skip
        assert all(c.indexed_at > 1.6e9 for c in listed)
        assert [c.uri for c in index.clips(offset=1, limit=1)] == ["b"]
        assert index.clips(offset=3, limit=10) == []
        assert index.find("c").clip_id == ids[2] and index.find("zzz") is None
        assert index.get(ids[0]).uri == "a" and index.get(999) is None
        stats = index.stats()
        assert (stats["clips"], stats["chunks"], stats["dim"]) == (3, 6, 8)
        assert (stats["encoder"], stats["audio_seconds"]) == (ENCODER, 18.0)


def test_deleted_clips_are_gone_from_search_and_counts_and_stay_gone(tmp_path):
    with ChunkIndex(tmp_path) as index:
        _, b, c = index.add([clip("a", 0), clip("b", 1), clip("c", 2)], encoder=ENCODER)
        assert index.delete([b.clip_id, 12345]) == [True, False]
        assert (len(index), index.chunk_count) == (2, 2)
        [hits] = index.search(one_hot(1), limit=5, encoder=ENCODER)
        assert sorted(h.uri for h in hits) == ["a", "c"]
        assert all(h.score == pytest.approx(0.0) for h in hits)
    with ChunkIndex(tmp_path) as reopened:
        assert [x.uri for x in reopened.clips()] == ["a", "c"]
        [d] = reopened.add([clip("d", 1)], encoder=ENCODER)
        assert d.clip_id > c.clip_id  # ids are never reused
        [hits] = reopened.search(one_hot(1), limit=1, encoder=ENCODER)
        assert hits[0].uri == "d"


def test_dead_rows_are_compacted_away_once_they_outnumber_the_live_ones(tmp_path):
    with ChunkIndex(tmp_path) as index:
        results = index.add([clip(f"c{i}", i % 8) for i in range(8)], encoder=ENCODER)
        assert vector_files(tmp_path) == ["vectors.0.f32"]
        index.delete([r.clip_id for r in results[:3]])
        assert index.stats()["dead_chunks"] == 3 and vector_files(tmp_path) == ["vectors.0.f32"]
        index.delete([results[3].clip_id])  # 4 dead, 4 live: copy the live rows
        assert vector_files(tmp_path) == ["vectors.1.f32"]
        assert (tmp_path / "vectors.1.f32").stat().st_size == 4 * 8 * 4
        assert index.stats()["dead_chunks"] == 0
        [hits] = index.search(one_hot(6), limit=4, encoder=ENCODER)
        assert hits[0].uri == "c6" and hits[0].score == pytest.approx(1.0)
        assert (hits[0].start, hits[0].end) == (0.0, 4.0)
    with ChunkIndex(tmp_path) as reopened:
        [hits] = reopened.search(one_hot(5), limit=1, encoder=ENCODER)
        assert hits[0].uri == "c5"


def test_files_left_by_an_interrupted_compaction_are_removed_on_open(tmp_path):
    with ChunkIndex(tmp_path) as index:
        index.add([clip("a", 0)], encoder=ENCODER)
    (tmp_path / "vectors.1.f32").write_bytes(b"\0" * 64)  # written, never switched to
    with ChunkIndex(tmp_path) as index:
        assert vector_files(tmp_path) == ["vectors.0.f32"]
        assert index.search(one_hot(0), limit=1, encoder=ENCODER)[0][0].uri == "a"


def test_exclude_and_filters_leave_clips_out(tmp_path):
    with ChunkIndex(tmp_path) as index:
        a, *_ = index.add(
            [clip("/lib/drums/a.wav", 0, 0), clip("/lib/drums/b.flac", 0),
             clip("/lib/keys/c.wav", 0, 1, 2, 3), clip("/lib/keys/d.wav", 1)],
            encoder=ENCODER,
        )  # fmt: skip
        query = normalize(np.array([[1.0, 0.5, 0, 0, 0, 0, 0, 0]]))

        def uris(**kwargs) -> list[str]:
            [hits] = index.search(query, limit=10, encoder=ENCODER, **kwargs)
            return [h.uri.rsplit("/", 1)[1] for h in hits]

        assert sorted(uris()) == ["a.wav", "b.flac", "c.wav", "d.wav"]
        assert "a.wav" not in uris(exclude=a.clip_id)
        assert sorted(uris(where=ClipFilter(path_glob="*/keys/*"))) == ["c.wav", "d.wav"]
        assert uris(where=ClipFilter(path_glob="*.flac")) == ["b.flac"]
        assert sorted(uris(where=ClipFilter(min_duration=5.0))) == ["a.wav", "c.wav"]
        assert sorted(uris(where=ClipFilter(max_duration=4.0))) == ["b.flac", "d.wav"]
        assert uris(where=ClipFilter(min_duration=5, max_duration=7)) == ["a.wav"]
        assert uris(where=ClipFilter(path_glob="/elsewhere/*")) == []


def test_a_clips_stored_chunks_find_clips_like_it_even_from_another_process(tmp_path):
    with ChunkIndex(tmp_path) as index:
        a, *_ = index.add([clip("a", 0, 1), clip("b", 1), clip("c", 2)], encoder=ENCODER)
        stored = read_stored_clip(tmp_path, a.clip_id)  # while the index is open
        assert (stored.info.uri, stored.info.chunk_count, stored.encoder) == ("a", 2, ENCODER)
        assert stored.starts.tolist() == [0.0, 2.0] and stored.ends.tolist() == [4.0, 6.0]
        np.testing.assert_allclose(stored.vectors, one_hot(0, 1))
        hits = index.search(stored.vectors, limit=1, encoder=ENCODER, exclude=a.clip_id)
        assert [h[0].uri for h in hits][1] == "b"
        assert read_stored_clip(tmp_path, 999) is None
    with pytest.raises(FileNotFoundError):
        read_stored_clip(tmp_path / "nothing here", a.clip_id)


def test_float16_storage_halves_the_file_and_ranks_like_float32(tmp_path):
    rng = np.random.default_rng(3)
    clips = [random_clip(f"c{i}", rng, int(rng.integers(1, 6))) for i in range(60)]
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    with ChunkIndex(tmp_path / "f32") as index:
        index.add(clips, encoder=ENCODER)
        exact = index.search(queries, limit=5, encoder=ENCODER)
    with ChunkIndex(tmp_path / "f16", dtype="float16") as index:
        index.add(clips, encoder=ENCODER)
        half = index.search(queries, limit=5, encoder=ENCODER)
    assert (tmp_path / "f16/vectors.0.f16").stat().st_size * 2 == (
        (tmp_path / "f32/vectors.0.f32").stat().st_size
    )
    for e, h in zip(exact, half, strict=True):  # near-ties may swap, nothing else
        assert [x.score for x in h] == pytest.approx([x.score for x in e], abs=2e-3)
        assert len({x.uri for x in h} & {x.uri for x in e}) >= 4
    with ChunkIndex(tmp_path / "f32", dtype="float16") as converted:  # converted on opening
        assert vector_files(tmp_path / "f32") == ["vectors.1.f16"]
        assert [x.uri for x in converted.search(queries, limit=5, encoder=ENCODER)[0]] == [
            x.uri for x in exact[0]
        ]


def test_shards_allocate_disjoint_ids_and_refuse_another_shard_count(tmp_path):
    with ChunkIndex(tmp_path / "0", shard=0, shards=2) as s0:
        ids0 = [r.clip_id for r in s0.add([clip("a", 0), clip("b", 1)], encoder=ENCODER)]
    with ChunkIndex(tmp_path / "1", shard=1, shards=2) as s1:
        ids1 = [r.clip_id for r in s1.add([clip("c", 0), clip("d", 1)], encoder=ENCODER)]
        assert s1.owns_clip(ids1[0]) and not s1.owns_clip(ids0[0])
    assert {i % 2 for i in ids0} == {0} and {i % 2 for i in ids1} == {1}
    with pytest.raises(IndexMismatchError, match=r"shard 0 of 2, not 0 of 1.*shards back to 2"):
        ChunkIndex(tmp_path / "0")
    owners = [uri_shard(f"/music/{i}.wav", 2) for i in range(200)]
    assert 60 < sum(owners) < 140  # uris spread over the shards


def test_a_second_opener_of_a_workspace_is_refused_until_the_first_closes(tmp_path):
    first = ChunkIndex(tmp_path)
    with pytest.raises(IndexLockedError, match=r"open in another process.*shards, not replicas"):
        ChunkIndex(tmp_path)
    first.close()
    ChunkIndex(tmp_path).close()


def normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 5), min_size=1, max_size=12),
    deleted=st.sets(st.integers(0, 11)),
    limit=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_search_equals_a_brute_force_best_chunk_per_clip(counts, deleted, limit, seed):
    rng = np.random.default_rng(seed)
    clips = [random_clip(f"c{i}", rng, n, dim=6) for i, n in enumerate(counts)]
    queries = rng.standard_normal((3, 6)).astype(np.float32)
    with tempfile.TemporaryDirectory() as workspace, ChunkIndex(workspace) as index:
        ids = [r.clip_id for r in index.add(clips, encoder=ENCODER)]
        index.delete([ids[i] for i in deleted if i < len(ids)])
        results = index.search(queries, limit=limit, encoder=ENCODER)
    live = [c for i, c in enumerate(clips) if i not in deleted]
    for query, hits in zip(normalize(queries), results, strict=True):
        best = sorted((max(normalize(c.vectors) @ query), c.uri) for c in live)[::-1][:limit]
        assert [h.score for h in hits] == pytest.approx([s for s, _ in best], abs=1e-5)
        assert {h.uri for h in hits} <= {c.uri for c in live}
        assert len({h.uri for h in hits}) == len(hits)


def test_filter_parameters_are_checked_with_messages_that_say_what_to_send():
    assert check_clip_filter() is None
    assert check_clip_filter(1.0, 5, "*.wav") == ClipFilter(1.0, 5.0, "*.wav")
    with pytest.raises(ValueError, match=r"min_duration=-1: expected a number >= 0; try"):
        check_clip_filter(min_duration=-1)
    with pytest.raises(ValueError, match=r"max_duration='ten'"):
        check_clip_filter(max_duration="ten")
    with pytest.raises(ValueError, match="no clip can match; swap them"):
        check_clip_filter(10, 2)
    with pytest.raises(ValueError, match=r"path_glob=3: expected an fnmatch pattern"):
        check_clip_filter(path_glob=3)


def unit(*xyz: float) -> np.ndarray:
    return normalize(np.array([xyz], dtype=np.float32))


def test_query_expansion_lets_the_nearest_clips_kin_outrank_a_lure(tmp_path):
    # The query is nearest "same"; "sibling" is like "same" but less like the query than "lure"
    # is. Expanded with "same", the query leans towards what "same" and "sibling" share.
    vectors = {
        "same": unit(0.95, 0.31, 0),
        "sibling": unit(0.7, 0.71, 0),
        "lure": unit(0.75, 0, 0.66),
    }
    with ChunkIndex(tmp_path) as index:
        for uri, vector in vectors.items():
            index.add([ClipToAdd(uri, 4.0, np.zeros(1), np.full(1, 4.0), vector)], encoder=ENCODER)
        query = unit(1, 0, 0)
        [plain] = index.search(query, limit=3, encoder=ENCODER)
        [expanded] = index.search(query, limit=3, encoder=ENCODER, expand=True)
        # Excluding "same" from the answer does not change the expansion: it is still nearest.
        [without_same] = index.search(
            query, limit=2, encoder=ENCODER, exclude=expanded[0].clip_id, expand=True
        )
        # A filter does: then the nearest chunk that passes it (lure) expands the query.
        [filtered] = index.search(
            query, limit=2, encoder=ENCODER, where=ClipFilter(path_glob="*l*"), expand=True
        )
    assert [h.uri for h in plain] == ["same", "lure", "sibling"]
    assert [h.uri for h in expanded] == ["same", "sibling", "lure"]
    expanded_query = normalize(query + vectors["same"])[0]
    assert [h.score for h in expanded] == pytest.approx(
        [float(vectors[h.uri][0] @ expanded_query) for h in expanded], abs=1e-6
    )
    assert [(h.uri, h.score) for h in without_same] == [(h.uri, h.score) for h in expanded[1:]]
    assert [h.uri for h in filtered] == ["lure", "sibling"]
    lure_query = normalize(query + vectors["lure"])[0]
    assert filtered[1].score == pytest.approx(float(vectors["sibling"][0] @ lure_query))


def test_query_expansion_leaves_a_query_that_is_an_indexed_chunk_as_it_is(tmp_path):
    rng = np.random.default_rng(3)
    clips = [random_clip(f"c{i}", rng, 3) for i in range(6)]
    with ChunkIndex(tmp_path) as index:
        index.add(clips, encoder=ENCODER)
        plain = index.search(clips[2].vectors, limit=6, encoder=ENCODER)
        expanded = index.search(clips[2].vectors, limit=6, encoder=ENCODER, expand=True)
    for p, e in zip(plain, expanded, strict=True):
        assert e[0].uri == "c2" and e[0].score == pytest.approx(1.0)
        assert [(h.uri, h.start) for h in e] == [(h.uri, h.start) for h in p]
        assert [h.score for h in e] == pytest.approx([h.score for h in p], abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 4), min_size=2, max_size=10),
    limit=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["float32", "float16"]),
)
def test_expanded_search_equals_brute_force_with_the_nearest_chunk_added(
    counts, limit, seed, dtype
):
    rng = np.random.default_rng(seed)
    clips = [random_clip(f"c{i}", rng, n, dim=6) for i, n in enumerate(counts)]
    queries = rng.standard_normal((3, 6)).astype(np.float32)
    with tempfile.TemporaryDirectory() as workspace, ChunkIndex(workspace, dtype=dtype) as index:
        ids = [r.clip_id for r in index.add(clips, encoder=ENCODER)]
        results = index.search(queries, limit=limit, encoder=ENCODER, exclude=ids[0], expand=True)
    allowed = clips[1:]  # in the answer; the nearest chunk may be the excluded clip's
    tolerance = 1e-5 if dtype == "float32" else 2e-3
    for query, hits in zip(normalize(queries), results, strict=True):
        chunks = np.concatenate([normalize(c.vectors) for c in clips])
        expanded = normalize((query + chunks[np.argmax(chunks @ query)])[None])[0]
        best = sorted((max(normalize(c.vectors) @ expanded), c.uri) for c in allowed)[::-1]
        assert [h.score for h in hits] == pytest.approx([s for s, _ in best[:limit]], abs=tolerance)
        assert "c0" not in {h.uri for h in hits}
