"""Collapse chunk-level matches into a ranked list of clips."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from audiosearch.errors import InvalidInputError
from audiosearch.index import ChunkHit

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


@dataclass(frozen=True)
class QueryChunkHits:
    """The hits of one query chunk, with where that chunk lies in the query clip."""

    query_start: float
    query_end: float
    hits: list[ChunkHit]


@dataclass(frozen=True)
class ClipMatch:
    """A ranked clip: its best score, the matched segment in it and the query segment."""

    clip_id: int
    uri: str
    score: float
    start: float
    end: float
    query_start: float
    query_end: float


def check_limit(limit: object) -> int:
    """``limit`` as an int in 1..MAX_LIMIT, or :class:`InvalidInputError` saying what to send."""
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # JSON parameters travel through protobuf as floats
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"limit={limit!r}: expected a whole number from 1 to {MAX_LIMIT}; try limit=10"
        )
    return limit


def rank_by_best_chunk(
    chunks: Iterable[QueryChunkHits], *, limit: int = DEFAULT_LIMIT, exclude: int | None = None
) -> list[ClipMatch]:
    """Rank clips by their single best chunk-pair cosine score over all query chunks.

    Ties keep the order in which the hits arrive. ``exclude`` drops one clip id (a query that
    is itself indexed, for "more like this").
    """
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
    return sorted(best.values(), key=lambda m: -m.score)[:limit]
