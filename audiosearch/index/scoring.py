"""Scoring the stored rows against queries: exact, from ANN candidates, with query expansion,
and the judged search (:mod:`audiosearch.feedback`).

Every function reads one :class:`IndexView`, which the caller holds steady (under its lock)
while a search runs. Scores are cosines of unit vectors; each clip keeps its best row.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import translate

import numpy as np

from audiosearch.errors import InvalidInputError
from audiosearch.feedback import (
    CANDIDATES,
    DISLIKE_SEED,
    SPREAD_WEIGHT,
    Judgments,
    best_pair_similarity,
    spread,
)
from audiosearch.index.ann import AnnCache
from audiosearch.index.layout import ClipRows, Segments
from audiosearch.index.vectors import VectorFile
from audiosearch.rank import ChunkHit, ClipMatch

__all__ = [
    "ClipFilter",
    "IndexView",
    "check_clip_filter",
    "check_min_score",
    "expand_queries",
    "expanded_top",
    "guess_nearest",
    "judged_search",
    "normalize_rows",
    "search_clips",
]

#: Scores of one block of query chunks against every row are kept to about this size.
_SCORE_BLOCK_BYTES = 128 << 20

#: Per query: its best segments, their best rows and those rows' scores, best first.
Top = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ClipFilter:
    """Which clips a search may return; None leaves a bound open."""

    min_duration: float | None = None
    max_duration: float | None = None
    #: fnmatch pattern the whole uri must match (case-sensitive), e.g. ``*/drums/*.wav``.
    path_glob: str | None = None


def _check_number(name: str, value: object, lo: float, hi: float, example: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        expected = f"from {lo:g} to {hi:g}" if hi < np.inf else f">= {lo:g}"
        raise InvalidInputError(
            f"{name}={value!r}: expected a number {expected}; try {name}={example}"
        )
    return float(value)


def check_min_score(min_score: object) -> float | None:
    """``min_score`` as a float in -1..1 (cosine), None if not given."""
    return _check_number("min_score", min_score, -1.0, 1.0, "0.5")


def check_clip_filter(
    min_duration: object = None, max_duration: object = None, path_glob: object = None
) -> ClipFilter | None:
    """The filter these request parameters describe (None if none), or InvalidInputError."""
    low = _check_number("min_duration", min_duration, 0.0, np.inf, "2")
    high = _check_number("max_duration", max_duration, 0.0, np.inf, "30")
    if low is not None and high is not None and low > high:
        raise InvalidInputError(
            f"min_duration={low:g} > max_duration={high:g}: no clip can match; swap them"
        )
    if path_glob is not None and (not isinstance(path_glob, str) or not path_glob):
        raise InvalidInputError(
            f"path_glob={path_glob!r}: expected an fnmatch pattern on the path; try "
            "path_glob='*/drums/*'"
        )
    if low is None and high is None and path_glob is None:
        return None
    return ClipFilter(low, high, path_glob)  # type: ignore[arg-type]


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32 (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class IndexView:
    """What a search reads: the stored rows, where the clips lie among them, the ANN index."""

    vectors: VectorFile
    clips: ClipRows
    ann: AnnCache

    @property
    def segments(self) -> Segments:
        """The rows cut into clips and runs of dead rows."""
        return self.clips.segments


# ------------------------------------------------------------------ plain search
def search_clips(
    view: IndexView, queries: np.ndarray, *, limit: int, exclude: int | None,
    where: ClipFilter | None, expand: bool,
) -> list[list[ChunkHit]]:  # fmt: skip
    """Per unit query vector, the ``limit`` clips that pass ``where`` and are not ``exclude``
    whose best row is most similar, highest first, each with that row.

    Every stored row is scored by cosine similarity, each clip keeps its best row, and the
    clips are ranked by that score. With an ANN index, only candidate rows are scored; a query
    whose candidates hold too few clips that pass ``where`` is searched exactly. ``expand``:
    the queries are expanded first (:func:`expand_queries`), and scores are cosines with the
    expanded queries. ``exclude`` does not apply to that first search: an indexed clip searched
    by its id is its own nearest row, as it is when searched by its file, so both searches rank
    alike (expansion changes nothing for a query already in the library).
    """
    passing = allowed_segments(view.clips, where)
    allowed = passing if exclude is None else passing & segments_not_of(view.clips, exclude)
    k = min(limit, int(allowed.sum()))
    if not k:
        return [[] for _ in queries]
    if not expand:
        tops = top_segments(view, queries, k, allowed)
    elif view.ann.index is not None and view.ann.settings.approximate:  # type: ignore[union-attr]
        tops = top_segments(view, expand_queries(view, queries, passing), k, allowed)
    else:  # ``exclude`` is not applied to the expansion: see ChunkIndex.search
        tops = expanded_top(view, queries, k, allowed, passing)
    return [chunk_hits(view, *top) for top in tops]


def expand_queries(view: IndexView, queries: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Average query expansion: each query's nearest row in the segments ``within`` (found by a
    search) is added to it, and the sum normalised, to be searched again.

    The nearest row is usually of a clip of the same kind of sound, so the sum leans towards
    what the library's recordings of that sound share (bench/quality.py measures the gain).
    The ANN index guesses it (:func:`guess_nearest`); a query it finds nothing for is searched.
    """
    near = guess_nearest(view, queries, within)
    unknown = np.flatnonzero(near < 0)
    if len(unknown):
        found = top_segments(view, queries[unknown], 1, within)
        near[unknown] = [rows[0] for _, rows, _ in found]
    return _plus_rows(view, queries, near)


def guess_nearest(view: IndexView, queries: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Per query, a guess of its nearest row in the segments ``within``: the best of the ANN
    index's candidates, scored exactly; -1 where there is no index or no candidate passes."""
    guess = np.full(len(queries), -1, dtype=np.int64)
    index, settings = view.ann.index, view.ann.settings
    if index is None or settings is None or not len(queries):
        return guess
    found = index.search(queries, settings.guess_candidates, nprobe=settings.guess_nprobe)
    for i, (query, rows) in enumerate(zip(queries, found, strict=True)):
        rows = rows[rows >= 0]
        rows = rows[within[view.segments.containing(rows)]]
        if len(rows):
            guess[i] = rows[int(np.argmax(view.vectors.float_rows(rows) @ query))]
    return guess


def expanded_top(
    view: IndexView, queries: np.ndarray, k: int, allowed: np.ndarray, within: np.ndarray
) -> list[Top]:
    """Like :func:`top_segments` of the queries expanded (:func:`expand_queries`) with their
    nearest rows in ``within``, scored exactly, mostly in one pass over the rows.

    Each query's nearest row is guessed (:func:`guess_nearest`), and the queries and their
    guessed expansions are scored in one product: its query columns give the true nearest rows,
    so a wrong guess is seen there, and only the queries guessed wrong (all of them without an
    ANN index) are expanded with their true nearest row and scored in a second pass.
    """
    per_block = max(1, _SCORE_BLOCK_BYTES // (8 * max(view.vectors.rows, 1)))
    found: list[Top] = []
    for lo in range(0, len(queries), per_block):
        block = queries[lo : lo + per_block]
        guess = guess_nearest(view, block, within)
        known = np.flatnonzero(guess >= 0)
        columns = np.concatenate([block, _plus_rows(view, block[known], guess[known])])
        all_scores = scores(view, columns)
        nearest = np.array(
            [rows[0] for _, rows, _ in _top_of_scores(view, block, all_scores, 1, within)]
        )
        tops: list[Top | None] = [None] * len(block)
        for column, i in enumerate(known, start=len(block)):
            if nearest[i] == guess[i]:  # the guess was right: its column is the expansion's
                tops[i] = next(_top_of_scores(
                    view, columns[column : column + 1], all_scores[column : column + 1], k, allowed
                ))  # fmt: skip
        wrong = np.array([i for i, top in enumerate(tops) if top is None], dtype=np.int64)
        if len(wrong):
            expanded = _plus_rows(view, block[wrong], nearest[wrong])
            for i, top in zip(wrong, _exact_top(view, expanded, k, allowed), strict=True):
                tops[i] = top
        found += tops  # type: ignore[arg-type]
    return found


def _plus_rows(view: IndexView, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each query plus its stored row of ``rows``, normalised: the expanded query."""
    return normalize_rows(queries + view.vectors.float_rows(rows))


def allowed_segments(clips: ClipRows, where: ClipFilter | None) -> np.ndarray:
    """Which segments may be returned: those of the live clips that pass ``where``."""
    keep = np.ones(len(clips), dtype=bool)
    if where is not None:
        if where.min_duration is not None:
            keep &= clips.duration >= where.min_duration
        if where.max_duration is not None:
            keep &= clips.duration <= where.max_duration
        if where.path_glob is not None:
            pattern = re.compile(translate(where.path_glob))
            keep &= np.array([bool(pattern.match(uri)) for uri in clips.uris], dtype=bool)
    allowed = np.zeros(len(clips.segments), dtype=bool)
    allowed[clips.segments.of_clip[keep]] = True
    return allowed


def segments_not_of(clips: ClipRows, clip_id: int) -> np.ndarray:
    """Every segment but those of clip ``clip_id``."""
    others = np.ones(len(clips.segments), dtype=bool)
    others[clips.segments.of_clip[clips.ids == clip_id]] = False
    return others


def scores(view: IndexView, queries: np.ndarray) -> np.ndarray:
    """Cosine of every query against every row: one matrix product."""
    matrix = view.vectors.matrix
    if matrix.dtype == np.float16:
        return _half_product(queries, matrix)
    return queries @ matrix.T


def _half_product(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``queries @ matrix.T`` for a float16 ``matrix``, float32 out."""
    import torch  # numpy multiplies float16 without BLAS, many times slower than torch

    with warnings.catch_warnings():  # the memory map is read-only; torch only reads it here
        warnings.simplefilter("ignore", UserWarning)
        stored = torch.from_numpy(matrix)
    return (torch.from_numpy(queries.astype(np.float16)) @ stored.T).float().numpy()


def top_segments(view: IndexView, queries: np.ndarray, k: int, allowed: np.ndarray) -> list[Top]:
    """Per query: its best ``k`` allowed segments, their best rows and those rows' scores;
    from ANN candidates where there is an ANN index and they hold enough, else exactly."""
    approximate = view.ann.index is not None and view.ann.settings.approximate  # type: ignore[union-attr]
    found = _ann_top(view, queries, k, allowed) if approximate else [None] * len(queries)
    missing = [i for i, top in enumerate(found) if top is None]
    per_block = max(1, _SCORE_BLOCK_BYTES // (4 * view.vectors.rows))
    for lo in range(0, len(missing), per_block):
        block = missing[lo : lo + per_block]
        for i, top in zip(block, _exact_top(view, queries[block], k, allowed), strict=True):
            found[i] = top
    return found  # type: ignore[return-value]


def _exact_top(view: IndexView, queries: np.ndarray, k: int, allowed: np.ndarray) -> Iterator[Top]:
    """Per query: the best ``k`` allowed segments, their best rows and those rows' scores."""
    return _top_of_scores(view, queries, scores(view, queries), k, allowed)


def _top_of_scores(
    view: IndexView, queries: np.ndarray, all_scores: np.ndarray, k: int, allowed: np.ndarray
) -> Iterator[Top]:
    """:func:`_exact_top` from ``all_scores``, the first ``len(queries)`` rows of which are
    those queries' scores against every row."""
    starts, ends = view.segments.starts, view.segments.ends
    best = np.maximum.reduceat(all_scores[: len(queries)], starts, axis=1)
    best[:, ~allowed] = -np.inf
    tops = np.argpartition(-best, k - 1, axis=1)[:, :k]
    for q, top in enumerate(tops):
        segs = top[np.argsort(-best[q, top], kind="stable")]
        rows = np.array(
            [lo + int(np.argmax(all_scores[q, lo:hi]))
             for lo, hi in zip(starts[segs], ends[segs], strict=True)],
            dtype=np.int64,
        )  # fmt: skip
        if view.vectors.matrix.dtype == np.float16:  # chosen by the fast product, scored exactly
            exact = view.vectors.float_rows(rows) @ queries[q]
            order = np.argsort(-exact, kind="stable")
            yield segs[order], rows[order], exact[order]
        else:
            yield segs, rows, all_scores[q, rows]


def _ann_top(view: IndexView, queries: np.ndarray, k: int, allowed: np.ndarray) -> list[Top | None]:
    """Like :func:`_exact_top`, from ANN candidates; None for a query with too few."""
    per_clip = view.ann.settings.candidates_per_clip  # type: ignore[union-attr]
    candidates = view.ann.index.search(queries, k * per_clip)  # type: ignore[union-attr]
    tops: list[Top | None] = []
    for query, rows in zip(queries, candidates, strict=True):
        rows = rows[rows >= 0]
        segs = view.segments.containing(rows)
        rows, segs = rows[allowed[segs]], segs[allowed[segs]]
        found = view.vectors.float_rows(rows) @ query  # exact, not the quantised estimate
        order = np.argsort(-found, kind="stable")
        _, first = np.unique(segs[order], return_index=True)  # each segment's best row
        best = order[np.sort(first)][:k]
        tops.append((segs[best], rows[best], found[best]) if len(best) == k else None)
    return tops


def chunk_hits(
    view: IndexView, segs: np.ndarray, rows: np.ndarray, found: np.ndarray
) -> list[ChunkHit]:
    """Segments ``segs`` as hits, each at its row of ``rows`` scored ``found``."""
    hits = []
    for seg, row, score in zip(segs.tolist(), rows.tolist(), found.tolist(), strict=True):
        clip = int(view.segments.clip[seg])
        start, end = view.clips.times[row]
        hits.append(ChunkHit(int(view.clips.ids[clip]), view.clips.uris[clip], score, start, end))
    return hits


# ----------------------------------------------------------------- judged search
def judged_search(
    view: IndexView, queries: np.ndarray, query_times: np.ndarray, *, judgments: Judgments,
    liked_audio: Sequence[np.ndarray], limit: int, exclude: int | None,
    where: ClipFilter | None, expand: bool,
) -> list[ClipMatch]:  # fmt: skip
    """The clips ranked for ``queries`` (chunk vectors timed by ``query_times``; may be
    empty) refined by the user's ``judgments`` (:mod:`audiosearch.feedback`); InvalidInputError
    for a judged clip not in the index.

    Liked examples are the liked clips and ``liked_audio``. A clip's score for the query is the
    cosine of the query expanded with its nearest row not of a disliked clip (``expand``), plus
    its best cosine with a liked example; the ``CANDIDATES`` best unjudged clips then get the
    judgments' spread added. Liked clips come first (``judged="like"``, not counted in
    ``limit``); disliked clips are left out. Two passes over the rows, as a plain search with
    expansion.
    """
    liked, disliked = _clip_positions(view.clips, judgments)
    if not len(view.clips):
        return []
    segs = view.segments.of_clip
    passing = allowed_segments(view.clips, where) & (view.segments.clip >= 0)
    usable = passing if exclude is None else passing & segments_not_of(view.clips, exclude)
    examples = [view.vectors.float_rows(view.segments.rows_of(segs[i])) for i in liked]
    examples += [normalize_rows(v) for v in liked_audio]
    queries = normalize_rows(queries) if len(queries) else queries
    not_disliked = passing.copy()
    not_disliked[segs[disliked]] = False  # expansion leans away from what was refused
    queries, score = _judged_scores(view, queries, examples, not_disliked, expand)
    judged = np.zeros(len(score), dtype=bool)
    judged[segs[np.concatenate([liked, disliked]).astype(np.int64)]] = True
    order = _judged_order(view, score, usable & ~judged, examples, segs[disliked], limit)
    shown = liked[usable[segs[liked]]]  # liked clips the filters let through
    hits = [_judged_hit(view, segs[i], score[segs[i]], queries, query_times, "like")
            for i in shown[np.argsort(-score[segs[shown]], kind="stable")]]  # fmt: skip
    hits += [_judged_hit(view, seg, value, queries, query_times) for seg, value in
             order[:limit]]  # fmt: skip
    return hits


def _judged_scores(
    view: IndexView, queries: np.ndarray, examples: list[np.ndarray],
    not_disliked: np.ndarray, expand: bool,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each segment's score before the judgments spread: its best cosine with a liked example
    plus its best cosine with a query chunk; and the queries as scored. With ``expand`` each
    query is expanded with its nearest row in the segments ``not_disliked``: guessed and
    checked in one pass over the rows, as in :func:`expanded_top`."""
    # Each liked example enters the pass over the rows as its mean direction: one vector, not
    # one per chunk, so a search with judgments costs about what one without does; the graph
    # of _judged_order compares the candidates with every chunk.
    centres = [normalize_rows(e.mean(axis=0, keepdims=True)) for e in examples]
    n = len(queries)
    guess = guess_nearest(view, queries, not_disliked) if expand else np.empty(0, np.int64)
    known = np.flatnonzero(guess >= 0)
    guessed = _plus_rows(view, queries[known], guess[known]) if len(known) else queries[:0]
    first, nearest = _best_per_segment(view, np.concatenate([queries, guessed, *centres]),
                                       not_disliked)  # fmt: skip
    score = np.zeros(len(view.segments))
    if examples:
        score += first[n + len(known) :].max(axis=0)
    if n:
        query_best = first[:n]
        if expand:
            query_best = np.empty_like(query_best)
            right = nearest[known] == guess[known]  # the query columns give the true nearest
            query_best[known[right]] = first[n : n + len(known)][right]
            wrong = np.setdiff1d(np.arange(n), known[right])
            if len(wrong):
                query_best[wrong] = _best_per_segment(
                    view, _plus_rows(view, queries[wrong], nearest[wrong])
                )[0]
            queries = _plus_rows(view, queries, nearest[:n])
        score += query_best.max(axis=0)
    return queries, score


def _clip_positions(clips: ClipRows, judgments: Judgments) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``clips`` of the liked and the disliked clips; InvalidInputError naming a
    clip that is not in the index."""
    found = []
    for name, ids in (("like", judgments.liked), ("unlike", judgments.disliked)):
        positions = [clips.positions(clip_id) for clip_id in ids]
        for clip_id, where in zip(ids, positions, strict=True):
            if not where.size:
                raise InvalidInputError(
                    f"{name}: clip_id={clip_id} is not in the index; judge clips the "
                    "search returned (/list shows the library)"
                )
        found.append(np.array([int(where[0]) for where in positions], dtype=np.int64))
    return found[0], found[1]


def _best_per_segment(
    view: IndexView, vectors: np.ndarray, nearest_in: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's best score in every segment, and its nearest row in the segments
    ``nearest_in`` (all); one pass over the rows, in blocks of vectors."""
    starts, ends = view.segments.starts, view.segments.ends
    best = np.full((len(vectors), len(starts)), -np.inf, dtype=np.float32)
    nearest = np.zeros(len(vectors), dtype=np.int64)
    if nearest_in is not None:
        outside = np.repeat(~nearest_in, ends - starts)
    per_block = max(1, _SCORE_BLOCK_BYTES // (4 * max(view.vectors.rows, 1)))
    for lo in range(0, len(vectors), per_block):
        block_scores = scores(view, vectors[lo : lo + per_block])
        best[lo : lo + per_block] = np.maximum.reduceat(block_scores, starts, axis=1)
        if nearest_in is not None:
            block_scores[:, outside] = -np.inf
        nearest[lo : lo + per_block] = block_scores.argmax(axis=1)
    return best, nearest


def _judged_order(
    view: IndexView, score: np.ndarray, candidates: np.ndarray, examples: list[np.ndarray],
    disliked: np.ndarray, limit: int,
) -> list[tuple[int, float]]:  # fmt: skip
    """The best ``limit`` and more unjudged segments by score, the ``CANDIDATES`` best
    re-scored with the spread of the judgments over their graph, ahead of the rest."""
    ranked = np.flatnonzero(candidates)
    if len(ranked) > CANDIDATES + limit:  # only the best few are ever shown
        ranked = ranked[np.argpartition(-score[ranked], CANDIDATES + limit)[: CANDIDATES + limit]]
    ranked = ranked[np.argsort(-score[ranked], kind="stable")]
    top, rest = ranked[:CANDIDATES], ranked[CANDIDATES:]
    if not examples and not len(disliked):
        return [(int(s), float(score[s])) for s in ranked]
    rows_of = view.segments.rows_of
    groups = examples + [view.vectors.float_rows(rows_of(s)) for s in (*disliked, *top)]
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    seeds = np.concatenate(
        [np.ones(len(examples)), np.full(len(disliked), -DISLIKE_SEED), np.zeros(len(top))]
    )
    relevance = spread(best_pair_similarity(np.concatenate(groups), starts), seeds)
    refined = score[top] + SPREAD_WEIGHT * relevance[len(examples) + len(disliked) :]
    reorder = np.argsort(-refined, kind="stable")
    return [(int(top[i]), float(refined[i])) for i in reorder] + [
        (int(s), float(score[s])) for s in rest
    ]


def _judged_hit(
    view: IndexView, seg: int, score: float, queries: np.ndarray, query_times: np.ndarray,
    judged: str | None = None,
) -> ClipMatch:  # fmt: skip
    """Segment ``seg`` as a hit: its best row for its best query chunk (its first row when
    there is no query)."""
    rows = view.segments.rows_of(seg)
    if len(queries):
        pairs = queries @ view.vectors.float_rows(rows).T
        chunk, row = np.unravel_index(int(pairs.argmax()), pairs.shape)
        query_start, query_end = query_times[chunk]
        row = rows[row]
    else:
        query_start = query_end = 0.0
        row = rows[0]
    clip = int(view.segments.clip[seg])
    clip_id = int(view.clips.ids[clip])
    start, end = view.clips.times[row]
    return ClipMatch(clip_id, view.clips.uris[clip], score, float(start), float(end),
                     float(query_start), float(query_end), judged)  # fmt: skip
