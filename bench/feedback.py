"""Refine by example: the service's judged search against Rocchio score fusion, simulated.

    .venv/bin/python bench/make_quality_set.py     # once: the labeled set, bench/data/quality/
    .venv/bin/python bench/feedback.py             # 20 s (+2.5 minutes to embed the set once)
    .venv/bin/python bench/feedback.py --tuning    # 70 s: + how the service's constants were chosen

A simulated user searches the labeled quality set of ``bench/quality.py`` and judges results:

- round 0 is today's default ranking (sfx encoder, best chunk, query expansion, the whole index
  ranked);
- in each round the user judges the 10 (or 5) best results not judged before (relevant: the
  query's class) and the next search sends every judgment so far;
- each round's ranking is scored over the whole index, with the clips judged relevant first (in
  the order they were shown), then the unjudged ones in the method's order, then the clips judged
  not relevant (the service lists liked clips first and leaves disliked ones out: the same).

The service's method is measured on the service's code: every round of every query is a call of
``ChunkIndex.search_judged`` (``expand=True``, ``limit`` the whole index) on a ``ChunkIndex``
of the set's clips in a temporary workspace. The other rows are computed here in numpy from the
same vectors; their round 0 is checked against a real ``ChunkIndex.search`` (same AP for every
query):

- Rocchio score fusion, the baseline: ``query_score(x) + mean_L sim(L, x) - 0.5 mean_D sim(D,
  x)``, ``sim`` the best chunk-pair cosine of two clips;
- the service without its spread: its first-stage score alone (negative-aware expansion plus
  ``max_L sim(L, x)``), i.e. what the graph adds;
- manifold ranking on a kNN graph of *all* the clips (the service's constants), i.e. what the
  per-request graph of the 100 best candidates gives up (the index would have to keep a graph);
- today's ranking with the judged clips moved: what the protocol alone gives.

A numpy re-implementation of the service's method (its knobs free) gives ``--tuning``: the knobs
chosen by 2-fold cross-validation over the queries (halves: alternate queries of each class and
length; objective: mean mAP of rounds 1 and 2 with 10 and 5 judgments a round) and the
sensitivity around the service's constants. Its figures are checked against the service's:
they can differ where two clips tie, to the float32 round-off of matrix products of other shapes
(about 1e-7), at the cut of the 100 candidates: the clip inside the cut may rise far above the
one left out (on this set: 1 query of 160, in rounds 1 and 2 with 10 judgments a round).

Also: the "region query" effect, queries cut to their loudest 4 s vs whole queries (round 0, the
service's search). Intervals: 95% paired bootstrap of the per-query AP difference. Timing of the
judged search: ``bench/search.py --feedback-only``.

Vectors are cached in ``bench/data/feedback_vectors.npz`` (keyed by the set's manifest, the
encoder's weights and the windowing). BLAS and torch run on one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")  # one core: a benchmark beside the test suite

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import quality  # noqa: E402  (the set, AP, nDCG and the bootstrap of bench/quality.py)
from table import print_table  # noqa: E402

from audiosearch.audio import SAMPLE_RATE, load_audio  # noqa: E402
from audiosearch.audio.segment import ALIGN_SAMPLES, STRIDE_SECONDS, WINDOW_SECONDS, segment  # noqa: E402
from audiosearch.feedback import (  # noqa: E402
    ALPHA,
    CANDIDATES,
    DISLIKE_SEED,
    NEIGHBOURS,
    SPREAD_WEIGHT,
    check_judgments,
    spread,
)
from audiosearch.index import ChunkIndex, ClipToAdd, normalize_rows  # noqa: E402
from audiosearch.rank import QueryChunkHits, rank_clips  # noqa: E402

CACHE = BENCH / "data" / "feedback_vectors.npz"
#: The "region query": the loudest stretch of this many seconds of a query.
REGION_SECONDS = 4.0
#: The encoder name the index records at ``add`` and every search must repeat.
ENCODER = "sfx"


# ------------------------------------------------------------------------------ vectors
@dataclass(frozen=True)
class Vectors:
    """The set's chunk vectors (L2-normalised), each clip's rows contiguous.

    ``*_starts`` hold each clip's first row (``np.maximum.reduceat`` offsets, as in
    ``ChunkIndex``); ``region`` is one vector per query, its loudest 4 s.
    """

    rows: np.ndarray
    starts: np.ndarray
    labels: np.ndarray
    query_rows: np.ndarray
    query_starts: np.ndarray
    query_labels: np.ndarray
    query_long: np.ndarray
    region: np.ndarray

    def query(self, q: int) -> np.ndarray:
        """The chunk vectors of query ``q``."""
        hi = self.query_starts[q + 1] if q + 1 < len(self.query_starts) else len(self.query_rows)
        return self.query_rows[self.query_starts[q] : hi]


def loudest(waveform: np.ndarray, seconds: float = REGION_SECONDS) -> np.ndarray:
    """The ``seconds`` of ``waveform`` with the highest RMS (starts on the 10 ms grid)."""
    window = round(seconds * SAMPLE_RATE)
    if waveform.size <= window:
        return waveform
    energy = np.concatenate([[0.0], np.cumsum(waveform.astype(np.float64) ** 2)])
    starts = np.arange(0, waveform.size - window + 1, ALIGN_SAMPLES)
    best = int(starts[np.argmax(energy[starts + window] - energy[starts])])
    return waveform[best : best + window]


def cache_key(data: Path) -> str:
    """Changes when the set, the encoder's weights or the windowing change."""
    from audiosearch.encoders.sfx import CHECKPOINT_SHA256

    digest = hashlib.sha256((data / "manifest.csv").read_bytes())
    digest.update(
        f"{CHECKPOINT_SHA256} {WINDOW_SECONDS} {STRIDE_SECONDS} {REGION_SECONDS}".encode()
    )
    return digest.hexdigest()


def embed_set(data: Path, cache: Path = CACHE) -> Vectors:
    """Every index clip and query embedded window by window as the service does (cached)."""
    key = cache_key(data)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) == key:
                return Vectors(**{name: stored[name] for name in Vectors.__dataclass_fields__})
    import torch

    from audiosearch.encoders import load_encoder

    torch.set_num_threads(1)  # a benchmark beside a test run on a small machine
    encoder, _ = load_encoder("sfx")
    index, queries = quality.read_set(data)
    started = time.monotonic()

    def embed(waveforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        cuts = [segment(w) for w in waveforms]
        vectors: list[np.ndarray] = []
        for lo in range(0, len(cuts), 32):
            vectors += encoder.embed_batch([(c.waveform, c.starts) for c in cuts[lo : lo + 32]])
        counts = [len(v) for v in vectors]
        return normalize_rows(np.concatenate(vectors)), np.cumsum([0, *counts[:-1]])

    rows, starts = embed([load_audio(c.path) for c in index])
    print(
        f"embedded {len(index)} index clips ({len(rows)} windows) in "
        f"{time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    waveforms = [load_audio(c.path) for c in queries]
    query_rows, query_starts = embed(waveforms)
    region, _ = embed([loudest(w) for w in waveforms])
    assert len(region) == len(queries)  # one 4 s window each
    print(
        f"embedded {len(queries)} queries ({len(query_rows)} windows) and their loudest 4 s; "
        f"{time.monotonic() - started:.0f} s in all",
        file=sys.stderr,
    )
    vectors = Vectors(
        rows=rows,
        starts=starts,
        labels=np.array([c.label for c in index]),
        query_rows=query_rows,
        query_starts=query_starts,
        query_labels=np.array([c.label for c in queries]),
        query_long=np.array([c.length == "long" for c in queries]),
        region=region,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), **vectors.__dict__)
    return vectors


# ------------------------------------------------------------------------------ scores
def best_per_clip(scores: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``[vector, row]`` cosines -> ``[vector, clip]``: each clip's best row, as ChunkIndex."""
    return np.maximum.reduceat(np.atleast_2d(scores), starts, axis=1)


def expand(queries: np.ndarray, rows: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """The service's query expansion: each query vector plus its nearest (allowed) row,
    normalised."""
    scores = queries @ rows.T
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    return normalize_rows(queries + rows[np.argmax(scores, axis=1)])


@dataclass(frozen=True)
class Context:
    """What the numpy methods use: the vectors and what the service computes anyway.

    ``query_scores[q]`` is today's score of every clip for query ``q`` (best chunk pair with
    query expansion); ``clip_sim[a, b]`` is the best chunk-pair cosine of index clips ``a`` and
    ``b``; ``relevant[q, c]``: clip ``c`` is of query ``q``'s class; ``row_clip``: the clip of
    each row.
    """

    v: Vectors
    query_scores: np.ndarray
    clip_sim: np.ndarray
    relevant: np.ndarray
    row_clip: np.ndarray

    @property
    def n_clips(self) -> int:
        return len(self.v.starts)

    def search(self, chunks: np.ndarray, not_near: Sequence[int] = ()) -> np.ndarray:
        """Today's best-chunk score with query expansion of every clip for query ``chunks``;
        with ``not_near`` (clip ids) the expansion takes the nearest row of another clip."""
        allowed = ~np.isin(self.row_clip, not_near) if len(not_near) else None
        expanded = expand(chunks, self.v.rows, allowed)
        return best_per_clip(expanded @ self.v.rows.T, self.v.starts).max(axis=0)


def make_context(v: Vectors) -> Context:
    row_clip = np.repeat(np.arange(len(v.starts)), np.diff(np.append(v.starts, len(v.rows))))
    ctx = Context(v, np.empty(0), np.empty(0), np.empty(0), row_clip)
    query_scores = np.stack([ctx.search(v.query(q)) for q in range(len(v.query_labels))])
    clip_sim = best_per_clip(best_per_clip(v.rows @ v.rows.T, v.starts).T, v.starts)
    relevant = v.query_labels[:, None] == v.labels[None, :]
    return Context(v, query_scores, clip_sim, relevant, row_clip)


def ranking(scores: np.ndarray) -> np.ndarray:
    """Clips by descending score; ties keep index order."""
    return np.argsort(-scores, kind="stable")


# ------------------------------------------------------------------------------ methods
# A numpy method: (context, query, liked clips, disliked clips, **knobs) -> a score for every
# clip; with no judgment, today's scores (round 0 is today's ranking).
Method = Callable[..., np.ndarray]
# A ranker: (query, liked clips, disliked clips) -> clips in the order shown (every unjudged
# clip; judged ones may be there too: the simulation places them itself).
Ranker = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def pooled(sim: np.ndarray, clips: np.ndarray, pool: str) -> np.ndarray | float:
    """The rows ``clips`` of ``sim`` pooled per column (``mean`` or ``max``); 0 if none."""
    if not len(clips):
        return 0.0
    return sim[clips].max(axis=0) if pool == "max" else sim[clips].mean(axis=0)


def query_score(ctx: Context, q: int, disliked: np.ndarray, negative_aware: bool) -> np.ndarray:
    """Today's score, or with ``negative_aware`` the score of a search whose query expansion
    takes each query chunk's nearest row among the clips *not* disliked (as the service)."""
    if negative_aware and len(disliked):
        return ctx.search(ctx.v.query(q), not_near=disliked)
    return ctx.query_scores[q]


def today(ctx: Context, q: int, liked: np.ndarray, disliked: np.ndarray) -> np.ndarray:
    """No change: today's ranking (the simulation still moves judged clips)."""
    return ctx.query_scores[q]


def score_fusion(
    ctx: Context,
    q: int,
    liked: np.ndarray,
    disliked: np.ndarray,
    *,
    b: float = 1.0,
    c: float = 0.5,
    pool: str = "mean",
    negative_aware: bool = False,
) -> np.ndarray:
    """Rocchio on scores: ``query_score + b * pool_L sim(L, x) - c * pool_D sim(D, x)``.

    The defaults are the baseline; ``b=1, c=0, pool="max", negative_aware=True`` is the
    service's first-stage score (its ranking without the spread)."""
    sim = ctx.clip_sim
    return (
        query_score(ctx, q, disliked, negative_aware)
        + b * pooled(sim, liked, pool)
        - c * pooled(sim, disliked, pool)
    )


def global_manifold_ranking(
    ctx: Context, q: int, liked: np.ndarray, disliked: np.ndarray
) -> np.ndarray:
    """``query_score' + SPREAD_WEIGHT * f``, the judgments (+1 liked, -DISLIKE_SEED disliked)
    spread over the kNN graph of *all* the index's clips with the service's ``spread``;
    ``query_score'`` with the negative-aware expansion."""
    if not len(liked) + len(disliked):
        return ctx.query_scores[q]
    seeds = np.zeros(ctx.n_clips)
    seeds[liked] = 1.0
    seeds[disliked] = -DISLIKE_SEED
    return query_score(ctx, q, disliked, True) + SPREAD_WEIGHT * spread(ctx.clip_sim, seeds)


def local_manifold_ranking(
    ctx: Context,
    q: int,
    liked: np.ndarray,
    disliked: np.ndarray,
    *,
    k: int = NEIGHBOURS,
    alpha: float = ALPHA,
    beta: float = SPREAD_WEIGHT,
    cn: float = DISLIKE_SEED,
    candidates: int = CANDIDATES,
) -> np.ndarray:
    """The service's method in numpy, its constants as knobs (for ``--tuning``): the
    ``candidates`` best unjudged clips by ``query_score' + max_L sim(L, x)`` are re-scored with
    ``beta * f``, ``f`` the judgments (+1 liked, ``-cn`` disliked) spread over the ``k``-nearest
    graph of the judged and candidate clips, and stay above all other clips."""
    if not len(liked) + len(disliked):
        return ctx.query_scores[q]
    first = query_score(ctx, q, disliked, True).astype(np.float64)  # summed as the service
    first += pooled(ctx.clip_sim, liked, "max")
    judged = np.zeros(ctx.n_clips, dtype=bool)
    judged[np.concatenate([liked, disliked])] = True
    order = ranking(first)
    top = order[~judged[order]][:candidates]
    if not len(top):
        return first
    nodes = np.concatenate([liked, disliked, top]).astype(np.int64)
    seeds = np.concatenate([np.ones(len(liked)), np.full(len(disliked), -cn), np.zeros(len(top))])
    f = spread(ctx.clip_sim[np.ix_(nodes, nodes)], seeds, neighbours=k, alpha=alpha)
    rerank = first[top] + beta * f[-len(top) :]
    scores = first.copy()
    scores[top] = rerank - rerank.min() + first.max() + 1.0  # above every other clip
    return scores


def scored(ctx: Context, method: Method, **knobs: object) -> Ranker:
    """A numpy ``method`` as a ranker."""
    return lambda q, liked, disliked: ranking(method(ctx, q, liked, disliked, **knobs))


# ------------------------------------------------------------------------------ the service
class Service:
    """A ``ChunkIndex`` of the set's index clips in ``workspace`` (one ``ClipToAdd`` per clip),
    searched as the service searches."""

    def __init__(self, v: Vectors, workspace: Path) -> None:
        ends = np.append(v.starts[1:], len(v.rows))
        self.index = ChunkIndex(workspace)
        added = self.index.add(
            [
                ClipToAdd(f"clip{c}", 4.0, np.zeros(hi - lo), np.full(hi - lo, 4.0), v.rows[lo:hi])
                for c, (lo, hi) in enumerate(zip(v.starts, ends, strict=True))
            ],
            encoder=ENCODER,
        )
        self.ids = np.array([r.clip_id for r in added], dtype=np.int64)
        self.position = {int(i): c for c, i in enumerate(self.ids.tolist())}

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.index.close()

    def today(self, chunks: np.ndarray) -> np.ndarray:
        """Today's ranking of every clip: ``ChunkIndex.search`` (``expand=True``) collapsed by
        the ``best_chunk`` ranker."""
        n = len(self.ids)
        hits = self.index.search(chunks, limit=n, encoder=ENCODER, expand=True)
        ranked = rank_clips(
            [QueryChunkHits(0.0, 4.0, h) for h in hits], strategy="best_chunk", limit=n
        )
        return np.array([self.position[m.clip_id] for m in ranked])

    def ranker(self, query_chunks: Callable[[int], np.ndarray]) -> Ranker:
        """``ChunkIndex.search_judged`` for query ``q``'s chunks ``query_chunks(q)``: the
        returned unjudged clips in its order (the liked ones it lists first are checked)."""

        def rank(q: int, liked: np.ndarray, disliked: np.ndarray) -> np.ndarray:
            chunks = query_chunks(q)
            hits = self.index.search_judged(
                chunks,
                np.zeros((len(chunks), 2)),
                judgments=check_judgments(self.ids[liked].tolist(), self.ids[disliked].tolist()),
                limit=len(self.ids),
                encoder=ENCODER,
                expand=True,
            )
            found = np.array([self.position[h.clip_id] for h in hits], dtype=np.int64)
            marked = np.array([h.judged == "like" for h in hits], dtype=bool)
            if sorted(found[marked].tolist()) != sorted(liked.tolist()):
                raise AssertionError("search_judged did not list exactly the liked clips first")
            if np.isin(found, disliked).any():
                raise AssertionError("search_judged returned a disliked clip")
            return found[~marked]

        return rank


def check_round_zero(ctx: Context, service: Service) -> str:
    """Today's rankings from the real ``ChunkIndex`` vs :attr:`Context.query_scores` (what the
    numpy methods start from): a note, or SystemExit if some query's AP differs."""
    differ, gap, ap_gap = 0, 0.0, 0.0
    for q in range(len(ctx.v.query_labels)):
        theirs, ours = service.today(ctx.v.query(q)), ranking(ctx.query_scores[q])
        if not np.array_equal(theirs, ours):  # float32 ties, broken in another order
            differ += 1
            first = int(np.argmax(theirs != ours))
            scores = ctx.query_scores[q]
            gap = max(gap, abs(float(scores[theirs[first]] - scores[ours[first]])))
            ap_gap = max(
                ap_gap, abs(average_precision(ctx, q, theirs) - average_precision(ctx, q, ours))
            )
    if ap_gap > 0:
        raise SystemExit("today's ranking is not reproduced in numpy; fix the simulation first")
    return (
        f"check: today's ranking in numpy vs `ChunkIndex.search`: {differ} queries order clips "
        f"differently where their scores tie to {gap:.1e}; the same AP for every query"
    )


# ------------------------------------------------------------------------------ simulation
METRICS = ("mAP", "P@10", "nDCG@10")
ROUNDS = 2
PER_ROUND = (10, 5)


def average_precision(ctx: Context, q: int, order: np.ndarray) -> float:
    return quality.average_precision(ctx.relevant[q][order].astype(float), ctx.relevant[q].sum())


def simulate(ctx: Context, rank: Ranker, per_round: int, rounds: int = ROUNDS) -> np.ndarray:
    """The simulated user: ``[metric, round, query]`` for rounds 0..``rounds``.

    Each round ``rank`` orders the clips with every judgment so far (none in round 0); the round
    is scored with the clips judged relevant first (in the order shown), then the unjudged ones in
    ``rank``'s order, then the clips judged not relevant; then the user judges the ``per_round``
    best unjudged clips.
    """
    n_queries = len(ctx.v.query_labels)
    out = np.zeros((len(METRICS), rounds + 1, n_queries))
    for q in range(n_queries):
        relevant = ctx.relevant[q]
        n_relevant = int(relevant.sum())
        liked: list[int] = []
        disliked: list[int] = []
        for r in range(rounds + 1):
            order = rank(q, np.array(liked, dtype=np.int64), np.array(disliked, dtype=np.int64))
            judged = np.zeros(ctx.n_clips, dtype=bool)
            judged[liked + disliked] = True
            unjudged = order[~judged[order]]
            if len(unjudged) != ctx.n_clips - judged.sum() or len(set(unjudged.tolist())) != len(
                unjudged
            ):
                raise AssertionError(f"query {q}, round {r}: not every unjudged clip, once")
            shown = np.concatenate([liked, unjudged, disliked]).astype(np.int64)
            hits = relevant[shown].astype(float)
            out[:, r, q] = (
                quality.average_precision(hits, n_relevant),
                hits[:10].mean(),
                quality.ndcg(hits, n_relevant),
            )
            if r == rounds:
                break
            for clip in unjudged[:per_round].tolist():
                (liked if relevant[clip] else disliked).append(clip)
    return out


def folds(v: Vectors) -> np.ndarray:
    """0/1 per query: alternate queries within each (class, length) group."""
    fold = np.zeros(len(v.query_labels), dtype=int)
    seen: dict[tuple[str, bool], int] = {}
    for q, group in enumerate(zip(v.query_labels.tolist(), v.query_long.tolist(), strict=True)):
        fold[q] = seen.get(group, 0) % 2
        seen[group] = seen.get(group, 0) + 1
    return fold


# ------------------------------------------------------------------------------ tables
def interval(aps: np.ndarray, reference: np.ndarray) -> str:
    mean, low, high = quality.paired_difference(aps, reference)
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def print_main(figures: dict[str, dict[int, np.ndarray]], baseline: str, notes: list[str]) -> None:
    """Rounds 0-2 of every row, each cell ``mAP / P@10 / nDCG@10``, for each judgments a round,
    and the mAP difference to ``baseline``."""
    header = ["method", "judged a round"]
    header += [f"round {r}: {' / '.join(METRICS)}" for r in range(ROUNDS + 1)]
    header += [f"r{r} mAP - Rocchio [95% CI]" for r in range(1, ROUNDS + 1)]
    rows = []
    for per_round in PER_ROUND:
        ref = figures[baseline][per_round][0]
        for name, by_round in figures.items():
            out = by_round[per_round]
            cells = [name, str(per_round)]
            cells += [" / ".join(f"{out[i, r].mean():.3f}" for i in range(len(METRICS)))
                      for r in range(ROUNDS + 1)]  # fmt: skip
            cells += [
                "" if name == baseline else interval(out[0, r], ref[r])
                for r in range(1, ROUNDS + 1)
            ]
            rows.append(cells)
    print_table(header, rows, notes)


def print_region(whole: np.ndarray, cut: np.ndarray, long: np.ndarray) -> None:
    """Round 0 of the service with each query cut to its loudest 4 s vs the whole query."""
    header = ["query (round 0)", *METRICS, "mAP short", "mAP long", "mAP - whole [95% CI]"]
    rows = []
    for name, out in (("whole query (today)", whole), (f"loudest {REGION_SECONDS:g} s", cut)):
        rows.append(
            [name, *(f"{out[i].mean():.3f}" for i in range(len(METRICS)))]
            + [f"{out[0][long == x].mean():.3f}" for x in (False, True)]
            + ["" if out is whole else interval(out[0], whole[0])]
        )
    print_table(header, rows)


def compare_with_service(service: dict[int, np.ndarray], numpy: dict[int, np.ndarray]) -> str:
    """A note: the service's figures vs the numpy re-implementation's, per judgments a round."""
    parts = []
    for per_round in PER_ROUND:
        ours, theirs = service[per_round][0], numpy[per_round][0]  # AP [round, query]
        gap = np.abs(ours - theirs)
        parts.append(
            f"{per_round} a round: r1 mAP {ours[1].mean():.4f} (service) vs {theirs[1].mean():.4f} "
            f"(numpy), r2 {ours[2].mean():.4f} vs {theirs[2].mean():.4f}; "
            f"{int((gap > 1e-9).any(axis=0).sum())} of {gap.shape[1]} queries differ in some "
            "round, by "
            f"{gap.max():.4f} AP at most"
        )
    return (
        "check: the service vs the numpy re-implementation (`--tuning` uses it; why they may "
        "differ: the docstring): " + "; ".join(parts)
    )


# ------------------------------------------------------------------------------ tuning
TUNING_GRID = [
    dict(zip(("k", "alpha", "beta", "cn"), values, strict=True))
    for values in itertools.product((3, 5, 10), (0.7, 0.9, 0.95), (0.3, 1, 3), (0, 0.5))
]


def knob_text(knobs: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in knobs.items())


def objective(ctx: Context, knobs: dict) -> np.ndarray:
    """Per query: mean AP of rounds 1 and 2 with 10 and with 5 judgments a round."""
    rank = scored(ctx, local_manifold_ranking, **knobs)
    return np.mean([simulate(ctx, rank, j)[0, 1:] for j in PER_ROUND], axis=(0, 1))


def print_tuning(ctx: Context) -> None:
    """The knobs of the service's method chosen on each half of the queries, scored on the
    other, and the sensitivity of round 1 (10 judgments) around the service's constants."""
    fold = folds(ctx.v)
    constants = dict(k=NEIGHBOURS, alpha=ALPHA, beta=SPREAD_WEIGHT, cn=DISLIKE_SEED)
    scores = np.stack([objective(ctx, knobs) for knobs in TUNING_GRID])  # [setting, query]
    mine = objective(ctx, constants)
    print(
        f"\n#### Tuning the per-request manifold ranking ({len(TUNING_GRID)} settings, "
        f"candidates={CANDIDATES}; objective: mean mAP of rounds 1-2, 10 and 5 a round)\n"
    )
    rows = []
    for h, name in ((0, "half A"), (1, "half B")):
        best = int(np.argmax(scores[:, fold == h].mean(axis=1)))
        rows.append(
            [name, knob_text(TUNING_GRID[best]), f"{scores[best, fold == h].mean():.3f}",
             f"{scores[best, fold != h].mean():.3f}", f"{mine[fold != h].mean():.3f}"]
        )  # fmt: skip
    best = int(np.argmax(scores.mean(axis=1)))
    rows.append(["all queries", knob_text(TUNING_GRID[best]), f"{scores[best].mean():.3f}", "", ""])
    rows.append(["(the service's constants)", knob_text(constants), f"{mine.mean():.3f}", "", ""])
    print_table(
        ["knobs chosen on", "knobs", "objective there", "objective on the other half",
         "the service's constants on the other half"],
        rows,
    )  # fmt: skip

    def r1(**changed: object) -> str:
        rank = scored(ctx, local_manifold_ranking, **{**constants, **changed})
        return f"{simulate(ctx, rank, 10, rounds=1)[0, 1].mean():.3f}"

    alphas = (0.5, 0.7, 0.9, 0.95, 0.99)
    print(f"\nRound 1 mAP, 10 judgments, around {knob_text(constants)}:\n")
    print_table(
        ["k \\ alpha", *map(str, alphas)],
        [[str(k), *(r1(k=k, alpha=a) for a in alphas)] for k in (2, 3, 4, 5, 10)],
        [
            f"{name}: " + ", ".join(f"{x}: {r1(**{name: x})}" for x in values)
            for name, values in (
                ("beta", (0.3, 1, 3, 10)),
                ("cn", (0, 0.25, 0.5, 1)),
                ("candidates", (50, 100, 200)),
            )
        ],
    )


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=quality.DATA, help=f"the set (default {quality.DATA})"
    )
    parser.add_argument(
        "--tuning",
        action="store_true",
        help="also how the service's constants were chosen (cross-validation, sensitivity; +50 s)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.monotonic()
    data = args.data.resolve()
    ctx = make_context(embed_set(data))
    v = ctx.v
    notes = [
        f"{len(set(v.labels.tolist()))} classes, {ctx.n_clips} index clips ({len(v.rows)} "
        f"chunks), {len(v.query_labels)} queries ({len(v.query_rows)} chunks) from {data}"
    ]
    baseline, service_row = "Rocchio score fusion (baseline)", "the service (`search_judged`)"
    with tempfile.TemporaryDirectory() as tmp, Service(v, Path(tmp)) as service:
        notes.append(check_round_zero(ctx, service))
        rankers: dict[str, Ranker] = {
            baseline: scored(ctx, score_fusion),
            service_row: service.ranker(v.query),
            "the service without the spread": scored(
                ctx, score_fusion, b=1.0, c=0.0, pool="max", negative_aware=True
            ),
            "manifold ranking, kNN graph of all clips": scored(ctx, global_manifold_ranking),
            "today's ranking, judged clips moved": scored(ctx, today),
        }
        figures: dict[str, dict[int, np.ndarray]] = {}
        for name, rank in rankers.items():
            began = time.monotonic()
            figures[name] = {j: simulate(ctx, rank, j) for j in PER_ROUND}
            print(f"{name}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        numpy_copy = {j: simulate(ctx, scored(ctx, local_manifold_ranking), j) for j in PER_ROUND}
        region = simulate(ctx, service.ranker(lambda q: v.region[q : q + 1]), 10, rounds=0)[:, 0]
    notes.append(compare_with_service(figures[service_row], numpy_copy))
    service_zero = figures[service_row][PER_ROUND[0]][0, 0]
    zero_gap = np.abs(service_zero - figures[baseline][PER_ROUND[0]][0, 0]).max()
    notes.append(f"check: round 0, the service vs numpy: AP differs by {zero_gap:.4f} at most")

    print("### Refine by example: simulated judgments on the quality set\n")
    print(
        "Each cell: mAP / P@10 / nDCG@10 over the whole index, with the judged clips placed as "
        "the service lists them. No row has tuned knobs: the service's constants are "
        "`audiosearch/feedback.py`'s (`--tuning` shows how they were chosen). Intervals: "
        "paired bootstrap over the same queries.\n"
    )
    print_main(figures, baseline, [])
    print(f"\n#### Region query: the loudest {REGION_SECONDS:g} s instead of the whole query\n")
    whole = figures[service_row][PER_ROUND[0]][:, 0]
    print_region(whole, region, v.query_long)
    if args.tuning:
        print_tuning(ctx)
    load_after = os.getloadavg()
    notes.append(
        f"load average (1 min) before: {load_before[0]:.2f}, after: {load_after[0]:.2f} "
        f"({os.cpu_count()} cores); {time.monotonic() - started:.0f} s in all"
    )
    print("\n#### Notes\n")
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
