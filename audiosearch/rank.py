"""Collapse chunk-level matches into a ranked list of clips."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from audiosearch.errors import InvalidInputError

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ChunkHit:
    """The best-matching chunk of one indexed clip for one query vector."""

    clip_id: int
    uri: str
    score: float
    start: float
    end: float


@dataclass(frozen=True)
class QueryChunkHits:
    """The hits of one query chunk, with where that chunk lies in the query clip."""

    query_start: float
    query_end: float
    hits: list[ChunkHit]


@dataclass(frozen=True)
class ClipMatch:
    """A ranked clip: its score, the matched segment in it and the query segment (0-0 when
    liked clips alone were the query), and ``judged`` (``"like"`` for a clip the user liked)."""

    clip_id: int
    uri: str
    score: float
    start: float
    end: float
    query_start: float
    query_end: float
    judged: str | None = None


def check_limit(limit: object) -> int:
    """``limit`` as an int in 1..MAX_LIMIT, or :class:`InvalidInputError` saying what to send."""
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # JSON parameters travel through protobuf as floats
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"limit={limit!r}: expected a whole number from 1 to {MAX_LIMIT}; try limit=10"
        )
    return limit


def check_flag(name: str, value: object) -> bool:
    """A true/false parameter (absent: false), or :class:`InvalidInputError` saying what to send."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name}={value!r}: expected true or false; try {name}=true")
    return value


def _best_pairs(chunks: Iterable[QueryChunkHits], exclude: int | None) -> dict[int, ClipMatch]:
    """Each clip's best chunk pair over all query chunks, in order of first appearance."""
    best: dict[int, ClipMatch] = {}
    for chunk in chunks:
        for hit in chunk.hits:
            if hit.clip_id == exclude:
                continue
            current = best.get(hit.clip_id)
            if current is None or hit.score > current.score:
                best[hit.clip_id] = ClipMatch(
                    hit.clip_id,
                    hit.uri,
                    hit.score,
                    hit.start,
                    hit.end,
                    chunk.query_start,
                    chunk.query_end,
                )
    return best


def _top(matches: Iterable[ClipMatch], limit: int) -> list[ClipMatch]:
    # sorted() is stable: equal scores keep the order in which the clips first appeared.
    return sorted(matches, key=lambda m: -m.score)[:limit]


def rank_by_best_chunk(
    chunks: Iterable[QueryChunkHits], *, limit: int = DEFAULT_LIMIT, exclude: int | None = None
) -> list[ClipMatch]:
    """Rank clips by their single best chunk-pair cosine score over all query chunks.

    Ties keep the order in which the hits arrive. ``exclude`` drops one clip id (a query that
    is itself indexed, for "more like this").
    """
    return _top(_best_pairs(chunks, exclude).values(), limit)


def chunk_scores(chunks: Sequence[QueryChunkHits], clip_ids: Sequence[int]) -> np.ndarray:
    """Scores ``[query chunk, clip]``: each clip's best chunk for each query chunk.

    A query chunk only lists its top clips; a clip it does not list scores at most as well as
    the last one it lists, and gets that score (the chunk's floor).
    """
    column = {clip_id: c for c, clip_id in enumerate(clip_ids)}
    scores = np.full((len(chunks), len(clip_ids)), np.nan)
    for q, chunk in enumerate(chunks):
        for hit in chunk.hits:
            if hit.clip_id in column:
                scores[q, column[hit.clip_id]] = hit.score
        floor = min((hit.score for hit in chunk.hits), default=-1.0)
        scores[q] = np.where(np.isnan(scores[q]), floor, scores[q])
    return scores


def _rescored(best: dict[int, ClipMatch], scores: np.ndarray, limit: int) -> list[ClipMatch]:
    """The clips of ``best`` (best pair kept for where it matched) ranked by new ``scores``."""
    return _top(
        (replace(m, score=float(s)) for m, s in zip(best.values(), scores, strict=True)), limit
    )


def rank_by_mean_chunk(
    chunks: Sequence[QueryChunkHits], *, limit: int = DEFAULT_LIMIT, exclude: int | None = None
) -> list[ClipMatch]:
    """Rank clips by the mean, over query chunks, of each query chunk's best match in the clip.

    A clip must resemble the whole query, not one moment of it: a clip that matches every
    chunk well outranks one that matches a single chunk a little better.
    """
    best = _best_pairs(chunks, exclude)
    return _rescored(best, chunk_scores(chunks, list(best)).mean(axis=0), limit)


def rank_by_top_chunks(
    chunks: Sequence[QueryChunkHits],
    *,
    limit: int = DEFAULT_LIMIT,
    exclude: int | None = None,
    k: int = 2,
) -> list[ClipMatch]:
    """Rank clips by the mean of their ``k`` best query-chunk scores (all of them if fewer).

    Between best chunk (k=1) and mean chunk (k=all): a clip needs more than one lucky chunk,
    but may differ from the rest of a long query.
    """
    best = _best_pairs(chunks, exclude)
    scores = -np.sort(-chunk_scores(chunks, list(best)), axis=0)[:k]
    return _rescored(best, scores.mean(axis=0), limit)


def rank_by_votes(
    chunks: Sequence[QueryChunkHits], *, limit: int = DEFAULT_LIMIT, exclude: int | None = None
) -> list[ClipMatch]:
    """Rank clips by the votes of the query chunks: each gives its r-th best clip 1/r.

    The score is the mean vote, from 0 to 1 (1: every query chunk's best clip). Votes depend on
    ranks only, so a chunk whose cosines all crowd together counts as much as one with a clear
    winner. Equal votes are ordered by the best chunk-pair cosine.
    """
    best = _best_pairs(chunks, exclude)
    votes = dict.fromkeys(best, 0.0)
    for chunk in chunks:
        kept = sorted((h for h in chunk.hits if h.clip_id != exclude), key=lambda h: -h.score)
        for rank, hit in enumerate(kept, start=1):
            votes[hit.clip_id] += 1.0 / rank
    by_cosine = sorted(best.values(), key=lambda m: -m.score)
    return _rescored(
        {m.clip_id: m for m in by_cosine},
        np.array([votes[m.clip_id] for m in by_cosine]) / max(len(chunks), 1),
        limit,
    )


#: Ranking strategies by the name ``flow.yml`` and the ``strategy`` parameter use.
STRATEGIES: dict[str, Callable[..., list[ClipMatch]]] = {
    "best_chunk": rank_by_best_chunk,
    "mean_chunk": rank_by_mean_chunk,
    "top2_chunks": rank_by_top_chunks,
    "votes": rank_by_votes,
}
DEFAULT_STRATEGY = "best_chunk"


def check_strategy(strategy: object) -> str:
    """``strategy`` if it names one of :data:`STRATEGIES`, else :class:`InvalidInputError`."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InvalidInputError(
            f"strategy={strategy!r}: expected one of {', '.join(STRATEGIES)}; "
            f"try strategy={DEFAULT_STRATEGY}"
        )
    return strategy


def rank_clips(
    chunks: Sequence[QueryChunkHits],
    *,
    strategy: str = DEFAULT_STRATEGY,
    limit: int = DEFAULT_LIMIT,
    exclude: int | None = None,
) -> list[ClipMatch]:
    """Rank the clips matched by a query's chunks with the named strategy."""
    return STRATEGIES[check_strategy(strategy)](chunks, limit=limit, exclude=exclude)
