"""Search at scale: our exact kernel against faiss IndexFlatIP, query expansion, ANN, memory.

    .venv/bin/python bench/search.py --sizes 1000000 --clips-per-class 100 10 \
        --nprobe 32 64 128 --feedback-sizes 1000000 --large 3000000 --workdir /tmp/bench

For each size and each ``--clips-per-class`` a synthetic library (bench/synthetic.py: 512-d
unit chunk vectors, clips of 2-18 chunks, that many clips per sound class: 100 is clustered,
10 is not and is hard for ANN) is stored with ``ChunkIndex.add`` in a fresh workspace. Then,
in the same run, for 10 s queries (5 chunks), limit 10, timed query by query:

- exact, interleaved query by query with faiss ``IndexFlatIP.search(k=10)`` on the same rows:
  ``ChunkIndex.search`` plus the collapse to clips, plain and with query expansion in two passes
  (no ANN index: the first pass finds each query chunk's nearest row);
- then an ANN index is built (``search: exact`` keeps it only to guess expansion neighbours) and
  the exact search with query expansion in one pass is interleaved with faiss again; the notes
  say how often the guess is wrong (those queries pay a second pass over their columns);
- ann: the ``search: auto`` mode at this size (faiss IVF, 4-bit fast-scan codes, candidates
  re-scored exactly) at each ``--nprobe`` (the first also with query expansion); recall@10 is
  the share of the exact top-10 clips it returns;
- float16: the exact search over float16 rows, plain and with query expansion in one pass;
- memory: resident bytes per chunk of a fresh process that opened the index and searched once
  (the memory-mapped rows included), and how long opening took;
- with ``--flow-start``: seconds until ``app.py serve`` answers HTTP, with the index and empty;
- refine by example, at the ``--feedback-sizes`` (first ``--clips-per-class`` only): the
  judged search (``ChunkIndex.search_judged``, query expansion, limit 10) with 5 liked and 5
  disliked clips, and with 10 and 10, alternated query by query with the plain exact search
  with query expansion, both in one pass; p50 over the plain search's p50, and the median of
  the per-query ratios. Target: at most 1.5x;
- ``--large``: float16 libraries in ``search: auto``: store time, ANN build (trained on a
  sample, filled from the memory-mapped rows a block at a time), disk bytes, the time a fresh
  process takes to open it (loading the saved ANN file), resident bytes, ANN p50 and recall@10
  against the exact search; with ``--flow-start``, seconds until ``app.py serve --dtype float16``
  on it answers HTTP.

The load averages at the start and end of each library and of the refine-by-example rows are
in the notes: the machine may be shared, so compare ratios measured in one run.

    .venv/bin/python bench/search.py --feedback-only   # just those rows, 100k chunks: 30 s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.conftest starts and stops the service

import synthetic  # noqa: E402
from table import print_table  # noqa: E402

from audiosearch.feedback import Judgments  # noqa: E402
from audiosearch.index import AnnSettings, ChunkIndex, ClipToAdd  # noqa: E402
from audiosearch.rank import QueryChunkHits, rank_by_best_chunk  # noqa: E402

ENCODER = "bench/1"


@dataclass
class Row:
    """One line of the table."""

    chunks: int
    method: str
    times: list[float]
    recall: float | None = None
    bytes_per_chunk: float | None = None
    reference_p50: float | None = None
    #: Clips per sound class: 100 is clustered, 10 is not (hard for ANN).
    library: int = 100

    def cells(self) -> list[str]:
        p50, p95 = (np.percentile(self.times, q) * 1000 for q in (50, 95))
        ratio = f"{p50 / (self.reference_p50 * 1000):.2f}x" if self.reference_p50 else ""
        recall = f"{self.recall:.3f}" if self.recall is not None else ""
        memory = f"{self.bytes_per_chunk:,.0f}" if self.bytes_per_chunk else ""
        return [f"{self.chunks:,}", str(self.library), self.method, f"{p50:.1f}", f"{p95:.1f}",
                ratio, recall, memory]  # fmt: skip


def class_centres(chunks: int, clips_per_class: int) -> np.ndarray:
    """The sound classes of a library of ``chunks`` chunks (clips have 10 on average)."""
    return synthetic.class_centres(max(10, chunks // (10 * clips_per_class)))


def build(
    workspace: Path, centres: np.ndarray, chunks: int, flat=None, dtype: str = "float32"
) -> float:
    """Store a synthetic library of ``chunks`` chunks as ``dtype`` rows; also add its rows to
    faiss ``flat`` (unless None)."""
    started = time.perf_counter()
    with ChunkIndex(workspace, dtype=dtype) as index:
        for batch in synthetic.clips(chunks, centres):
            first = len(index)
            starts = np.cumsum(batch.counts) - batch.counts
            index.add(
                [
                    ClipToAdd(f"/library/{first + i}.wav", 2.0 * n + 2, np.arange(n) * 2.0,
                              np.arange(n) * 2.0 + 4, batch.vectors[s : s + n], "1")
                    for i, (s, n) in enumerate(zip(starts, batch.counts, strict=True))
                ],
                encoder=ENCODER,
            )  # fmt: skip
            if flat is not None:
                flat.add(batch.vectors)
    return time.perf_counter() - started


def search_clips(
    index: ChunkIndex, query: np.ndarray, limit: int, expand: bool = False
) -> list[int]:
    """Clip ids of the top ``limit`` clips for one query, as the service ranks them."""
    per_chunk = index.search(query, limit=limit, encoder=ENCODER, expand=expand)
    ranked = rank_by_best_chunk([QueryChunkHits(0.0, 0.0, hits) for hits in per_chunk], limit=limit)
    return [m.clip_id for m in ranked]


def timed(run: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def interleaved(
    searches: dict[str, Callable[[np.ndarray], list[int]]], queries: np.ndarray
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """Each of ``searches`` on each query, in turn query by query (so a busy spell of the
    shared machine slows all alike): seconds and answers per search."""
    for run in searches.values():  # warm up: caches, lazy imports
        run(queries[0])
    times: dict[str, list[float]] = {name: [] for name in searches}
    answers: dict[str, list[list[int]]] = {name: [] for name in searches}
    for query in queries:
        for name, run in searches.items():
            seconds, answer = timed(lambda q=query, r=run: r(q))
            times[name].append(seconds)
            answers[name].append(answer)  # type: ignore[arg-type]
    return times, answers


def faiss_search(flat, limit: int) -> Callable[[np.ndarray], list[int]]:
    """faiss IndexFlatIP's top ``limit`` rows for a query's chunks (the reference timing)."""
    return lambda query: flat.search(query, limit)[1][0].tolist()


def time_queries(
    index: ChunkIndex, queries: np.ndarray, limit: int, expand: bool = False
) -> tuple[list[float], list[list[int]]]:
    """Seconds per query and the clip ids found."""
    search_clips(index, queries[0], limit, expand)  # warm up: caches, lazy imports
    times, answers = [], []
    for query in queries:
        seconds, answer = timed(lambda q=query: search_clips(index, q, limit, expand))
        times.append(seconds)
        answers.append(answer)
    return times, answers


@dataclass
class FeedbackRow:
    """One line of the refine-by-example table: times of one kind of search, and the plain
    search's times of the same queries (alternated with them)."""

    chunks: int
    method: str
    times: list[float]
    plain: list[float]

    def cells(self) -> list[str]:
        p50, p95 = (np.percentile(self.times, q) * 1000 for q in (50, 95))
        plain = float(np.median(self.plain)) * 1000
        ratios = np.array(self.times) / np.array(self.plain)
        return [f"{self.chunks:,}", self.method, f"{p50:.1f}", f"{p95:.1f}",
                f"{p50 / plain:.2f}x", f"{np.median(ratios):.2f}x"]  # fmt: skip


#: Judged clips per feedback search: (liked, disliked).
JUDGED = ((5, 5), (10, 10))


def time_feedback(
    index: ChunkIndex, queries: np.ndarray, chunks: int, limit: int, notes: list[str]
) -> list[FeedbackRow]:
    """The plain exact search with expansion and ``search_judged`` with each of
    :data:`JUDGED`, in turn for each query; the judged clips are the plain search's best."""
    notes.append(f"refine by example, {chunks:,} chunks: load average (1/5/15 min) before: "
                 f"{loads()}")  # fmt: skip
    judged = max(liked + disliked for liked, disliked in JUDGED)
    best = [search_clips(index, q, judged, expand=True) for q in queries]  # untimed
    times = np.zeros((1 + len(JUDGED), len(queries)))

    def judged_search(query: np.ndarray, top: list[int], liked: int, disliked: int) -> None:
        index.search_judged(
            query, np.stack([np.arange(len(query)) * 2.0, np.arange(len(query)) * 2.0 + 4], 1),
            judgments=Judgments(tuple(top[:liked]), tuple(top[liked : liked + disliked])),
            limit=limit, encoder=ENCODER, expand=True,
        )  # fmt: skip

    for n in (0, 1):  # warm up
        search_clips(index, queries[n], limit, expand=True)
        for liked, disliked in JUDGED:
            judged_search(queries[n], best[n], liked, disliked)
    for q, (query, top) in enumerate(zip(queries, best, strict=True)):
        times[0, q] = timed(lambda x=query: search_clips(index, x, limit, expand=True))[0]
        for i, (liked, disliked) in enumerate(JUDGED, start=1):
            times[i, q] = timed(
                lambda x=query, t=top, n=liked, m=disliked: judged_search(x, t, n, m)
            )[0]
    plain = times[0].tolist()
    notes.append(f"refine by example, {chunks:,} chunks: load average after: {loads()}")
    return [FeedbackRow(chunks, "plain: exact, query expansion", plain, plain)] + [
        FeedbackRow(
            chunks, f"search_judged, {liked} liked + {disliked} disliked", t.tolist(), plain
        )
        for (liked, disliked), t in zip(JUDGED, times[1:], strict=True)
    ]


def feedback_only(chunks: int, args: argparse.Namespace, notes: list[str]) -> list[FeedbackRow]:
    """Build the library of ``chunks`` chunks and time only the refine-by-example rows."""
    centres = class_centres(chunks, args.clips_per_class[0])
    queries = synthetic.queries(args.queries, centres)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        seconds = build(Path(tmp), centres, chunks, None)
        notes.append(f"{chunks:,} chunks: stored in {seconds:.0f} s")
        guessed = AnnSettings(min_chunks=0, approximate=False)  # as run_size: one pass
        with ChunkIndex(tmp, ann=guessed) as index:
            return time_feedback(index, queries, chunks, args.limit, notes)


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean share of each true top list that ``found`` holds."""
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def measure_open(workspace: Path, dtype: str, ann: bool = False) -> dict[str, float]:
    """Open time and resident bytes per chunk in a fresh process (see ``--measure-open``),
    with the default ANN settings if ``ann``."""
    result = subprocess.run(
        [sys.executable, __file__, "--measure-open", str(workspace), "--dtype", dtype,
         *(["--ann"] if ann else [])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def resident_bytes() -> int:
    """This process's resident set size (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_and_search_once(workspace: Path, dtype: str, ann: bool) -> None:
    """Print, as JSON, how long opening took and the resident bytes per chunk after a search
    (with the default ANN settings if ``ann``)."""
    before = resident_bytes()
    settings = AnnSettings() if ann else None
    seconds, index = timed(lambda: ChunkIndex(workspace, dtype=dtype, ann=settings))
    index.search(synthetic.queries(1, synthetic.class_centres(10))[0], limit=10,
                 encoder=ENCODER)  # fmt: skip
    grown = resident_bytes() - before
    print(json.dumps({"open_seconds": seconds, "bytes_per_chunk": grown / index.chunk_count}))
    index.close()


def flow_start_seconds(workspace: Path, *options: str) -> float:
    """Seconds until ``app.py serve`` on ``workspace`` (with ``options``) answers HTTP."""
    from tests.conftest import start_server

    seconds, server = timed(
        lambda: start_server(workspace, "--encoder", "sfx", *options, timeout=600)
    )
    server.stop()
    return seconds


def loads() -> str:
    """The load averages over 1, 5 and 15 minutes, for the notes."""
    return "/".join(f"{load:.2f}" for load in os.getloadavg())


def guess_misses(index: ChunkIndex, queries: np.ndarray) -> tuple[float, float]:
    """Share of query chunks whose nearest row the ANN index guesses wrong, and share of
    queries with such a chunk (these pay the repair pass)."""
    from audiosearch.index.scoring import allowed_segments, guess_nearest, top_segments

    view = index._view()  # the bench looks inside: how often one-pass expansion repairs
    chunks = np.concatenate(queries)
    everywhere = allowed_segments(view.clips, None)
    guess = guess_nearest(view, chunks, everywhere)
    index._ann.index, saved = None, index._ann.index  # exact nearest rows
    truth = np.array([rows[0] for _, rows, _ in top_segments(view, chunks, 1, everywhere)])
    index._ann.index = saved
    miss = (guess != truth).reshape(len(queries), -1)
    return float(miss.mean()), float(miss.any(axis=1).mean())


def run_size(
    chunks: int, clips_per_class: int, args: argparse.Namespace, notes: list[str],
    feedback: list[FeedbackRow],
) -> list[Row]:  # fmt: skip
    """Every row of the main table for one library: exact against faiss, with query
    expansion in two passes and in one, ANN at ``args.nprobe``, float16."""
    import faiss

    label = f"{chunks:,} chunks, {clips_per_class} clips/class"
    notes.append(f"{label}: load average (1/5/15 min) at the start: {loads()}")
    centres = class_centres(chunks, clips_per_class)
    queries = synthetic.queries(args.queries, centres)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        flow_workspace = Path(tmp) / "flow"
        workspace = flow_workspace / "SimpleIndexer" / "0"  # where the flow's indexer looks
        flat = faiss.IndexFlatIP(synthetic.DIM)
        add_seconds = build(workspace, centres, chunks, flat)
        opened = measure_open(workspace, "float32")
        notes.append(
            f"{label}: stored in {add_seconds:.0f} s ({chunks / add_seconds:,.0f} "
            f"chunks/s); a fresh process opens it in {opened['open_seconds']:.2f} s"
        )
        with ChunkIndex(workspace) as index:  # no ANN index: expansion takes two passes
            times, answers = interleaved({
                "faiss IndexFlatIP (reference)": faiss_search(flat, args.limit),
                "ours, exact": lambda q: search_clips(index, q, args.limit),
                "ours, exact, query expansion, two passes (no ANN index)":
                    lambda q: search_clips(index, q, args.limit, expand=True),
            }, queries)  # fmt: skip
        truth = answers["ours, exact"]
        rows = table_rows(chunks, clips_per_class, times, {"ours, exact": 1.0})
        rows[1].bytes_per_chunk = opened["bytes_per_chunk"]
        exact_guessed = AnnSettings(min_chunks=0, approximate=False)
        seconds, index = timed(lambda: ChunkIndex(workspace, ann=exact_guessed))
        notes.append(f"{label}: ANN index built in {seconds:.0f} s ({index.stats()['ann_clusters']}"
                     f" clusters; its file adds "
                     f"{sum(p.stat().st_size for p in workspace.glob('ann.*')) / chunks:,.0f} "
                     "B/chunk)")  # fmt: skip
        with index:
            times, _ = interleaved({
                "faiss IndexFlatIP (reference for the next row)": faiss_search(flat, args.limit),
                "ours, exact, query expansion, one pass (search: exact)":
                    lambda q: search_clips(index, q, args.limit, expand=True),
            }, queries)  # fmt: skip
            rows += table_rows(chunks, clips_per_class, times, {})
            chunk_miss, repaired = guess_misses(index, queries)
            notes.append(
                f"{label}: the expansion guess (nprobe {exact_guessed.guess_nprobe}, "
                f"{exact_guessed.guess_candidates} candidates) misses {chunk_miss:.3f} of query "
                f"chunks; {repaired:.2f} of queries pay the repair pass"
            )
            if chunks in args.feedback_sizes and clips_per_class == args.clips_per_class[0]:
                feedback += time_feedback(index, queries, chunks, args.limit, notes)
        del flat
        rows += ann_rows(workspace, queries, truth, args, rows[0].times)
        if args.flow_start:
            empty = flow_start_seconds(Path(tmp) / "empty")
            full = flow_start_seconds(flow_workspace)
            notes.append(f"{label}: `app.py serve` answers in {full:.1f} s (empty: {empty:.1f} s)")
        rows += float16_rows(workspace, queries, truth, args, rows[0].times, notes, label)
    for row in rows:
        row.chunks, row.library = chunks, clips_per_class
    notes.append(f"{label}: load average (1/5/15 min) at the end: {loads()}")
    return rows


def table_rows(
    chunks: int, clips_per_class: int, times: dict[str, list[float]], recalls: dict[str, float]
) -> list[Row]:
    """Rows for ``times`` (the first, faiss's, is the reference)."""
    reference = float(np.median(next(iter(times.values()))))
    return [
        Row(chunks, name, t, recalls.get(name), reference_p50=reference, library=clips_per_class)
        for name, t in times.items()
    ]


def ann_rows(
    workspace: Path, queries: np.ndarray, truth: list[list[int]], args: argparse.Namespace,
    reference: list[float],
) -> list[Row]:  # fmt: skip
    """The ``search: auto`` mode (ANN at this size) at each of ``args.nprobe``; the first also
    with query expansion."""
    rows = []
    for nprobe in args.nprobe:
        with ChunkIndex(workspace, ann=AnnSettings(min_chunks=0, nprobe=nprobe)) as index:
            times, found = time_queries(index, queries, args.limit)
            rows.append(Row(0, f"ours, ann, nprobe={nprobe}", times, recall(found, truth),
                            reference_p50=float(np.median(reference))))  # fmt: skip
            if nprobe == args.nprobe[0]:
                times, _ = time_queries(index, queries, args.limit, expand=True)
                rows.append(Row(0, f"ours, ann, nprobe={nprobe}, query expansion", times,
                                reference_p50=float(np.median(reference))))  # fmt: skip
    return rows


def float16_rows(
    workspace: Path, queries: np.ndarray, truth: list[list[int]], args: argparse.Namespace,
    reference: list[float], notes: list[str], label: str,
) -> list[Row]:  # fmt: skip
    """The exact search over float16 rows (converted in place), plain and with expansion."""
    seconds, _ = timed(lambda: ChunkIndex(workspace, dtype="float16").close())
    half = measure_open(workspace, "float16")
    notes.append(f"{label}: converting to float16 took {seconds:.0f} s")
    guessed = AnnSettings(min_chunks=0, approximate=False)
    with ChunkIndex(workspace, dtype="float16", ann=guessed) as index:
        times, found = time_queries(index, queries, args.limit)
        expanded, _ = time_queries(index, queries, args.limit, expand=True)
    p50 = float(np.median(reference))
    return [
        Row(0, "ours, exact, float16", times, recall(found, truth), half["bytes_per_chunk"], p50),
        Row(0, "ours, exact, float16, query expansion, one pass", expanded, reference_p50=p50),
    ]


def large_library(chunks: int, args: argparse.Namespace, notes: list[str]) -> list[Row]:
    """A library of ``chunks`` float16 rows (``--clips-per-class`` as given) in the default
    ``search: auto`` mode: stored in batches, the ANN index trained on a sample and filled from
    the memory-mapped rows a block at a time, then reopened from its saved file."""
    label = f"{chunks:,} chunks, float16, {args.clips_per_class[-1]} clips/class"
    notes.append(f"{label}: load average (1/5/15 min) at the start: {loads()}")
    centres = class_centres(chunks, args.clips_per_class[-1])
    queries = synthetic.queries(args.queries, centres)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        flow_workspace = Path(tmp) / "flow"
        workspace = flow_workspace / "SimpleIndexer" / "0"  # where the flow's indexer looks
        stored = build(workspace, centres, chunks, dtype="float16")
        built, index = timed(lambda: ChunkIndex(workspace, dtype="float16", ann=AnnSettings()))
        index.close()
        disk = sum(p.stat().st_size for p in workspace.iterdir())
        opened = measure_open(workspace, "float16", ann=True)
        notes.append(f"{label}: stored in {stored:.0f} s, ANN index built in {built:.0f} s; "
                     f"{disk / chunks:,.0f} B/chunk on disk ({disk / 1e9:.1f} GB); a fresh "
                     "process opens it (loading the ANN file) in "
                     f"{opened['open_seconds']:.1f} s")  # fmt: skip
        with ChunkIndex(workspace, dtype="float16", ann=AnnSettings(approximate=False)) as index:
            truth = [search_clips(index, q, args.limit) for q in queries]  # exact, untimed
        with ChunkIndex(workspace, dtype="float16", ann=AnnSettings()) as index:
            times, found = time_queries(index, queries, args.limit)
            expanded, _ = time_queries(index, queries, args.limit, expand=True)
        if args.flow_start:
            start = flow_start_seconds(flow_workspace, "--dtype", "float16")
            notes.append(f"{label}: `app.py serve --dtype float16` answers in {start:.1f} s")
    notes.append(f"{label}: load average (1/5/15 min) at the end: {loads()}")
    nprobe = AnnSettings().nprobe
    return [
        Row(chunks, f"ours, search: auto (ann, nprobe={nprobe}), float16", times,
            recall(found, truth), opened["bytes_per_chunk"], library=args.clips_per_class[-1]),
        Row(chunks, f"ours, search: auto (ann, nprobe={nprobe}), float16, query expansion",
            expanded, library=args.clips_per_class[-1]),
    ]  # fmt: skip


def print_results(rows: list[Row], feedback: list[FeedbackRow], notes: list[str]) -> None:
    """The main table, the refine-by-example table and the notes (load averages among them)."""
    if rows:
        header = ["chunks", "clips/class", "search", "p50 ms", "p95 ms", "p50 / faiss-flat p50",
                  "recall@10", "resident B/chunk"]  # fmt: skip
        print_table(header, [row.cells() for row in rows])
        print()
    if feedback:
        print("Refine by example: the judged search against the plain search, alternated "
              "query by query (target: at most 1.5x)\n")  # fmt: skip
        header = ["chunks", "search", "p50 ms", "p95 ms", "p50 / plain p50",
                  "median of per-query ratios"]  # fmt: skip
        print_table(header, [row.cells() for row in feedback])
        print()
    for note in notes:
        print(f"- {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=30, help="10 s queries per size")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32])
    parser.add_argument(
        "--clips-per-class", type=int, nargs="+", default=[100],
        help="how clustered each library is: fewer clips per class are harder for ANN",
    )  # fmt: skip
    parser.add_argument("--flow-start", action="store_true", help="also time app.py serve")
    parser.add_argument(
        "--feedback-sizes", type=int, nargs="+", default=[100_000],
        help="the sizes at which the judged search (refine by example) is timed against the "
        "plain search (default 100000; add 1000000 for the 1M rows)",
    )  # fmt: skip
    parser.add_argument(
        "--feedback-only", action="store_true",
        help="time only the judged search, at the --feedback-sizes (--sizes is not used)",
    )  # fmt: skip
    parser.add_argument(
        "--large", type=int, nargs="*", default=[],
        help="also these sizes as float16 libraries in search: auto (the last --clips-per-class)",
    )  # fmt: skip
    parser.add_argument("--workdir", help="where the workspaces go (created; default: tmp)")
    parser.add_argument("--measure-open", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--ann", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_open:
        open_and_search_once(args.measure_open, args.dtype, args.ann)
        return
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    feedback: list[FeedbackRow] = []
    notes: list[str] = []
    before = loads()
    for chunks in args.feedback_sizes if args.feedback_only else args.sizes:
        if args.feedback_only:
            feedback += feedback_only(chunks, args, notes)
            continue
        for clips_per_class in args.clips_per_class:
            rows += run_size(chunks, clips_per_class, args, notes, feedback)
            print(f"... {chunks:,} chunks done", file=sys.stderr, flush=True)
    for chunks in args.large:
        rows += large_library(chunks, args, notes)
    notes.append(f"{args.queries} queries of 5 chunks, limit {args.limit}; load average "
                 f"(1/5/15 min) before the run: {before}, after: {loads()} ({os.cpu_count()} "
                 "cores)")  # fmt: skip
    print_results(rows, feedback, notes)


if __name__ == "__main__":
    main()
