"""Approximate search: faiss IVF candidates, exactly re-scored, kept in step with the index."""

import shutil

import faiss
import numpy as np
import pytest

from audiosearch.feedback import Judgments
from audiosearch.index import AnnSettings, ChunkIndex, ClipFilter, ClipToAdd, normalize_rows
from audiosearch.index.ann import IvfCandidates
from audiosearch.index.scoring import guess_nearest

ENCODER = "test/1"
DIM = 128  # 4-bit codes of 4 dims each: a real embedding has 512, 32 would quantise too coarsely
ANN = AnnSettings(min_chunks=1000, nprobe=16)  # about a fifth of the clusters


def clustered_clips(n: int, rng: np.random.Generator, *, prefix: str = "c") -> list[ClipToAdd]:
    """Clips of 2..8 chunks around one of 20 sound classes each, as real libraries cluster."""
    classes = rng.standard_normal((20, DIM))
    clips = []
    for i in range(n):
        centre = classes[rng.integers(20)] + 0.5 * rng.standard_normal(DIM)
        chunks = int(rng.integers(2, 9))
        vectors = centre + 0.4 * rng.standard_normal((chunks, DIM))
        starts = np.arange(chunks) * 2.0
        clips.append(ClipToAdd(f"/lib/{prefix}{i}.wav", 2.0 * chunks + 2, starts, starts + 4,
                               vectors.astype(np.float32), "f1"))  # fmt: skip
    return clips


@pytest.fixture(scope="module")
def library() -> tuple[list[ClipToAdd], np.ndarray]:
    """400 clips (about 2000 chunks) and 30 queries drawn like them."""
    rng = np.random.default_rng(7)
    clips = clustered_clips(400, rng)
    queries = np.concatenate([c.vectors[:1] for c in clustered_clips(30, rng, prefix="q")])
    return clips, queries + 0.1 * rng.standard_normal(queries.shape).astype(np.float32)


def top_uris(index: ChunkIndex, queries: np.ndarray, **kwargs) -> list[list[str]]:
    return [[h.uri for h in hits] for hits in index.search(queries, encoder=ENCODER, **kwargs)]


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def test_ivf_candidates_add_remove_search_and_survive_saving(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ann = IvfCandidates.train(vectors[:2000], nlist=16, nprobe=16)  # every list: exhaustive
    ann.add(vectors, np.arange(100, 3100))
    assert len(ann) == 3000 and sorted(ann.rows().tolist()) == list(range(100, 3100))
    assert ann.search(vectors[5:6], 3)[0][0] == 105  # a stored vector finds its own row
    ann.remove(np.arange(100, 200))
    assert 105 not in ann.search(vectors[5:6], 50)[0] and len(ann) == 2900
    ann.save(tmp_path / "ann.faiss")
    loaded = IvfCandidates.load(tmp_path / "ann.faiss", nprobe=16)
    assert loaded.search(vectors[7:8], 5).tolist() == ann.search(vectors[7:8], 5).tolist()
    assert list(tmp_path.iterdir()) == [tmp_path / "ann.faiss"]  # no partial file left


def test_ann_search_finds_nearly_what_exact_search_finds_with_exact_scores(tmp_path, library):
    clips, queries = library
    with ChunkIndex(tmp_path / "exact") as index:
        index.add(clips, encoder=ENCODER)
        exact = index.search(queries, limit=10, encoder=ENCODER)
    with ChunkIndex(tmp_path / "ann", ann=ANN) as index:
        index.add(clips, encoder=ENCODER)
        assert index.stats()["search"] == "ann"
        approx = index.search(queries, limit=10, encoder=ENCODER)
    truth = [[h.uri for h in hits] for hits in exact]
    assert recall([[h.uri for h in hits] for hits in approx], truth) >= 0.9
    exact_score = {(q, h.uri): h.score for q, hits in enumerate(exact) for h in hits}
    shared = [(q, h) for q, hits in enumerate(approx) for h in hits if (q, h.uri) in exact_score]
    assert shared and all(h.score == pytest.approx(exact_score[q, h.uri]) for q, h in shared)


def test_small_indexes_are_searched_exactly(tmp_path, library):
    clips, _ = library
    with ChunkIndex(tmp_path, ann=AnnSettings(min_chunks=10**6)) as index:
        index.add(clips, encoder=ENCODER)
        assert index.stats()["search"] == "exact"
    assert not list(tmp_path.glob("ann.*"))


def test_deleted_clips_never_come_back_from_ann_candidates(tmp_path, library):
    clips, queries = library
    with ChunkIndex(tmp_path, ann=ANN) as index:
        results = index.add(clips, encoder=ENCODER)
        before = top_uris(index, queries, limit=5)
        doomed = {uri for uris in before for uri in uris[:2]}
        index.delete([r.clip_id for r, c in zip(results, clips, strict=True) if c.uri in doomed])
        after = top_uris(index, queries, limit=5)
    assert not doomed & {uri for uris in after for uri in uris}


def test_a_stale_saved_ann_index_is_brought_up_to_date_on_opening(tmp_path, library):
    clips, queries = library
    with ChunkIndex(tmp_path, ann=ANN) as index:
        results = index.add(clips[:300], encoder=ENCODER)
    [saved] = tmp_path.glob("ann.*.faiss")
    shutil.copy(saved, tmp_path / "old")
    with ChunkIndex(tmp_path, ann=ANN) as index:
        index.delete([results[0].clip_id])
        index.add(clips[300:], encoder=ENCODER)
        expected = top_uris(index, queries, limit=10)
    shutil.copy(tmp_path / "old", saved)  # as if the process died before saving the changes
    (tmp_path / "old").unlink()
    with ChunkIndex(tmp_path, ann=ANN) as index:
        assert top_uris(index, queries, limit=10) == expected
        assert clips[0].uri not in {u for uris in top_uris(index, queries, limit=50) for u in uris}


def test_an_ann_file_with_an_older_kind_of_codes_is_rebuilt(tmp_path, library):
    clips, queries = library
    with ChunkIndex(tmp_path, ann=ANN) as index:
        index.add(clips, encoder=ENCODER)
        expected = top_uris(index, queries, limit=10)
    [saved] = tmp_path.glob("ann.*.faiss")
    rows = np.concatenate([normalize_rows(c.vectors) for c in clips])
    older = faiss.IndexIVFScalarQuantizer(  # what releases before fast-scan codes saved
        faiss.IndexFlatIP(DIM), DIM, 8, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    older.train(rows)
    older.add_with_ids(rows[:100], np.arange(100, dtype=np.int64))  # and out of date
    faiss.write_index(older, str(saved))
    with ChunkIndex(tmp_path, ann=ANN) as index:
        assert index.stats()["ann_clusters"] > 8  # built afresh
        assert top_uris(index, queries, limit=10) == expected
    assert isinstance(faiss.read_index(str(saved)), faiss.IndexIVFPQFastScan)


def test_filtered_searches_fall_back_to_exact_when_candidates_run_short(tmp_path, library):
    clips, queries = library
    where = ClipFilter(path_glob="/lib/c1?.wav")  # 10 clips of 400
    with ChunkIndex(tmp_path / "exact") as index:
        index.add(clips, encoder=ENCODER)
        exact = top_uris(index, queries, limit=5, where=where)
    with ChunkIndex(tmp_path / "ann", ann=ANN) as index:
        index.add(clips, encoder=ENCODER)
        assert top_uris(index, queries, limit=5, where=where) == exact


def test_compaction_renumbers_rows_and_the_ann_index_follows(tmp_path, library):
    clips, queries = library
    scan_all = AnnSettings(min_chunks=500, nprobe=1000)  # every cluster: only rows can go wrong
    with ChunkIndex(tmp_path, ann=scan_all) as index:
        results = index.add(clips, encoder=ENCODER)
        index.delete([r.clip_id for r in results[:250]])  # most rows dead: compacted
        assert [p.name for p in tmp_path.glob("vectors.*")] == ["vectors.1.f32"]
        found = top_uris(index, queries, limit=10)
    with ChunkIndex(tmp_path / "exact") as index:
        index.add(clips[250:], encoder=ENCODER)
        truth = top_uris(index, queries, limit=10)
    assert found == truth


def test_ann_search_expands_queries_as_exact_search_does(tmp_path, library):
    clips, queries = library
    with ChunkIndex(tmp_path / "exact") as index:
        index.add(clips, encoder=ENCODER)
        exact = index.search(queries, limit=10, encoder=ENCODER, expand=True)
        plain = index.search(queries, limit=10, encoder=ENCODER)
    with ChunkIndex(tmp_path / "ann", ann=ANN) as index:
        index.add(clips, encoder=ENCODER)
        approx = index.search(queries, limit=10, encoder=ENCODER, expand=True)
    truth = [[h.uri for h in hits] for hits in exact]
    assert truth != [[h.uri for h in hits] for hits in plain]  # expansion did change answers
    assert recall([[h.uri for h in hits] for hits in approx], truth) >= 0.9
    exact_score = {(q, h.uri): h.score for q, hits in enumerate(exact) for h in hits}
    shared = [(q, h) for q, hits in enumerate(approx) for h in hits if (q, h.uri) in exact_score]
    assert shared and all(h.score == pytest.approx(exact_score[q, h.uri]) for q, h in shared)


def two_pass_expanded_top(clips: list[ClipToAdd], queries: np.ndarray, limit: int) -> list:
    """The reference: each query plus its nearest stored chunk (a first full pass), scored
    against every chunk (a second), each clip by its best chunk: [(uri, score)] best first."""
    stored = [c.vectors / np.linalg.norm(c.vectors, axis=1, keepdims=True) for c in clips]
    rows = np.concatenate(stored)
    answers = []
    for query in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        expanded = query + rows[np.argmax(rows @ query)]
        expanded /= np.linalg.norm(expanded)
        best = sorted(((float(max(s @ expanded)), c.uri) for c, s in
                       zip(clips, stored, strict=True)), reverse=True)  # fmt: skip
        answers.append([(uri, score) for score, uri in best[:limit]])
    return answers


def test_one_pass_expansion_returns_what_two_passes_did_right_or_wrong_guess(tmp_path, library):
    clips, queries = library
    # A stingy guess (1 cluster, 2 candidates) is often wrong: both paths are exercised; and
    # a plain search at nprobe=1 would miss much, were it not exact.
    stingy = AnnSettings(
        min_chunks=1000, nprobe=1, approximate=False, guess_nprobe=1, guess_candidates=2
    )
    with ChunkIndex(tmp_path, ann=stingy) as index:
        index.add(clips, encoder=ENCODER)
        assert index.stats()["search"] == "exact"
        found = index.search(queries, limit=10, encoder=ENCODER, expand=True)
        plain = top_uris(index, queries, limit=10)
        view = index._view()
        within = np.ones(len(view.segments), dtype=bool)
        guesses = guess_nearest(view, normalize_rows(queries), within)
    with ChunkIndex(tmp_path / "exact") as index:  # an index kept for guesses only
        index.add(clips, encoder=ENCODER)
        assert plain == top_uris(index, queries, limit=10)
    truth = two_pass_expanded_top(clips, queries, 10)
    for hits, expected in zip(found, truth, strict=True):
        assert [h.uri for h in hits] == [uri for uri, _ in expected]
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
    rows = np.concatenate([c.vectors / np.linalg.norm(c.vectors, axis=1, keepdims=True)
                           for c in clips])  # fmt: skip
    nearest = np.argmax(normalize_rows(queries) @ rows.T, axis=1)
    assert 0 < (guesses == nearest).sum() < len(queries)  # some guesses right, some wrong


def test_one_pass_judged_search_equals_the_two_pass_one(tmp_path, library):
    clips, queries = library
    stingy = AnnSettings(min_chunks=1000, approximate=False, guess_nprobe=1, guess_candidates=2)
    answers = []
    for ann in (None, stingy):  # without an index every guess is missing: two passes
        with ChunkIndex(tmp_path / str(ann is None), ann=ann) as index:
            ids = [r.clip_id for r in index.add(clips, encoder=ENCODER)]
            times = np.stack([np.arange(5) * 2.0, np.arange(5) * 2.0 + 4], 1)
            answers.append(index.search_judged(
                queries[:5], times, judgments=Judgments((ids[3], ids[9]), (ids[4],)),
                limit=10, encoder=ENCODER, expand=True,
            ))  # fmt: skip
    two, one = answers
    assert [m.clip_id for m in one] == [m.clip_id for m in two]
    assert [m.score for m in one] == pytest.approx([m.score for m in two], abs=1e-5)


def unclustered_clips(n: int, rng: np.random.Generator, classes: np.ndarray) -> list[ClipToAdd]:
    """Clips of 2..8 chunks, each of one of ``classes`` (unit rows): with 10 clips per class,
    weakly clustered, as bench/search.py's ``--clips-per-class 10`` library, hard for IVF."""
    dim = classes.shape[1]
    clips = []
    for i in range(n):
        centre = classes[rng.integers(len(classes))] + 0.9 * unit(rng.standard_normal(dim))
        chunks = int(rng.integers(2, 9))
        vectors = unit(centre) + 0.5 * unit(rng.standard_normal((chunks, dim)))
        starts = np.arange(chunks) * 2.0
        clips.append(ClipToAdd(f"/lib/u{i}.wav", 2.0 * chunks + 2, starts, starts + 4,
                               vectors.astype(np.float32), "f1"))  # fmt: skip
    return clips


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_ann_recall_against_brute_force_on_an_unclustered_library(tmp_path):
    rng = np.random.default_rng(11)
    classes = unit(rng.standard_normal((400, 128)))
    clips = unclustered_clips(4000, rng, classes)  # about 20,000 chunks, 283 clusters
    queries = np.concatenate([c.vectors[:1] for c in unclustered_clips(40, rng, classes)])
    rows = np.concatenate([unit(c.vectors) for c in clips])
    owner = np.repeat(np.arange(len(clips)), [len(c.vectors) for c in clips])
    truth = []
    for query in unit(queries):  # brute force: every chunk scored, each clip by its best
        best = np.full(len(clips), -np.inf)
        np.maximum.at(best, owner, rows @ query)
        truth.append([clips[i].uri for i in np.argsort(-best)[:10]])
    # The default candidates per clip, and the share of clusters the default nprobe scans at
    # 1M chunks (256 of 2000): what keeps recall on such libraries.
    settings = AnnSettings(min_chunks=1000, nprobe=round(256 / 2000 * 283))
    with ChunkIndex(tmp_path, ann=settings) as index:
        index.add(clips, encoder=ENCODER)
        assert index.stats()["search"] == "ann"
        found = top_uris(index, queries, limit=10)
    assert recall(found, truth) >= 0.95
