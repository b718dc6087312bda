"""Refine a search with the user's judgments: manifold ranking on a graph built per request.

The clips a search ranks first, the clips the user liked and those they disliked become the
nodes of a small graph, each joined to its ``NEIGHBOURS`` most similar (best chunk-pair cosine).
The judgments spread over that graph (Zhou et al., *Ranking on data manifolds*, NIPS 2003):
``f = (I - ALPHA S)^-1 y`` with ``y`` +1 on liked clips and ``-DISLIKE_SEED`` on disliked ones,
``S`` the symmetrically normalised graph. A candidate's score is its score for the query (the
cosine of the expanded query, plus its best cosine with a liked clip) plus ``SPREAD_WEIGHT f``.
A clip like a liked one rises, and so do that clip's own near neighbours, which plain score
fusion (Rocchio) cannot reach; ``bench/feedback.py`` measures it against Rocchio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audiosearch.errors import InvalidInputError

__all__ = [
    "CANDIDATES",
    "MAX_JUDGED",
    "Judgments",
    "best_pair_similarity",
    "check_judgments",
    "spread",
]  # fmt: skip

#: Graph neighbours per clip; clips the search ranks first that the judgments re-rank; the
#: weight of a disliked clip's seed against a liked one's; the spread's reach (0..1) and its
#: weight in the final score. Chosen on bench/feedback.py's quality set (cross-validated over
#: its queries); docs/quality.md gives the sensitivity.
NEIGHBOURS = 3
CANDIDATES = 100
DISLIKE_SEED = 0.5
ALPHA = 0.9
SPREAD_WEIGHT = 1.0
#: Judged clips a search takes (likes and unlikes together).
MAX_JUDGED = 100


@dataclass(frozen=True)
class Judgments:
    """The indexed clips a user liked and disliked, by clip id."""

    liked: tuple[int, ...] = ()
    disliked: tuple[int, ...] = ()


def check_judgments(like: Sequence[int], unlike: Sequence[int]) -> Judgments:
    """The judgments ``like`` and ``unlike`` (clip ids) make, or :class:`InvalidInputError`
    for a clip judged both ways or more than ``MAX_JUDGED`` clips."""
    both = sorted(set(like) & set(unlike))
    if both:
        raise InvalidInputError(
            f"clip_id={both[0]}: both liked and disliked; keep it in like or in unlike, not both"
        )
    liked, disliked = tuple(dict.fromkeys(like)), tuple(dict.fromkeys(unlike))
    if len(liked) + len(disliked) > MAX_JUDGED:
        raise InvalidInputError(
            f"{len(liked) + len(disliked)} judged clips: a search takes at most {MAX_JUDGED}; "
            "keep the most telling ones"
        )
    return Judgments(liked, disliked)


def best_pair_similarity(rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The best chunk-pair cosine between every two clips whose unit chunk vectors are
    ``rows``, clip ``i`` owning ``rows[starts[i]:starts[i + 1]]``."""
    pairs = rows @ rows.T
    return np.maximum.reduceat(np.maximum.reduceat(pairs, starts, axis=0), starts, axis=1)


def spread(
    similarity: np.ndarray, seeds: np.ndarray, *, neighbours: int = NEIGHBOURS,
    alpha: float = ALPHA,
) -> np.ndarray:  # fmt: skip
    """Manifold ranking: ``seeds`` spread over the symmetric ``neighbours``-nearest graph of
    ``similarity``; scaled so the largest magnitude is 1 (all zeros without seeds)."""
    n = len(similarity)
    weights = np.maximum(similarity, 0.0).astype(np.float64)
    np.fill_diagonal(weights, 0.0)
    if n > neighbours + 1:  # keep an edge when either end has the other among its nearest
        nearest = np.argpartition(-weights, neighbours, axis=1)[:, :neighbours]
        keep = np.zeros_like(weights, dtype=bool)
        keep[np.arange(n)[:, None], nearest] = True
        weights = np.where(keep | keep.T, weights, 0.0)
    degree = weights.sum(axis=1)
    scale = 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0))
    normalised = weights * scale[:, None] * scale[None, :]
    spread_seeds = np.linalg.solve(np.eye(n) - alpha * normalised, seeds.astype(np.float64))
    top = np.abs(spread_seeds).max(initial=0.0)
    return spread_seeds / top if top > 0 else spread_seeds
