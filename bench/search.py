"""Search at scale: our exact kernel against faiss IndexFlatIP, the ANN mode, memory and start.

    .venv/bin/python bench/search.py --flow-start      # 100k and 1M chunks, ~15 min on 2 cores
    .venv/bin/python bench/search.py --sizes 1000000 --clips-per-class 10 --nprobe 16 32 64

For each size a synthetic library (bench/synthetic.py: 512-d unit chunk vectors, clips of 2-18
chunks, 100 clips per sound class unless ``--clips-per-class`` says otherwise: fewer make the
library less clustered, harder for ANN) is stored with ``ChunkIndex.add`` in a fresh workspace.
Then, in the same run, for 10 s queries (5 chunks), limit 10:

- exact: ``ChunkIndex.search`` plus the collapse to clips (one BLAS product for all query
  chunks, each clip's best chunk, partial top-k), alternated query by query with faiss
  ``IndexFlatIP.search(k=10)`` on the same rows; p50/p95 and our p50 over faiss's; then with
  query expansion (the service's default: a second search per query), no recall given since
  expansion changes the answers on purpose;
- ann: the ``search: ann`` mode (faiss IVF, 8-bit codes, candidates re-scored exactly) at a few
  ``nprobe`` (the first also with query expansion); recall@10 is the share of the exact top-10
  clips it returns;
- float16: the exact search over float16 rows;
- memory: resident bytes per chunk of a fresh process that opened the index and searched once
  (the memory-mapped rows included), and how long opening took;
- with ``--flow-start``: seconds until ``app.py serve`` answers HTTP, with the index and empty;
- refine by example, at the ``--feedback-sizes`` (default 100,000 chunks only): the judged
  search (``ChunkIndex.search_judged``, exact, query expansion, limit 10) with 5 liked and 5
  disliked clips, and with 10 and 10 (the plain search's best 10, then 20, clips: the first half
  liked, the rest disliked), alternated query by query with the plain exact search with query
  expansion (today's default: ``ChunkIndex.search`` plus the collapse to clips); p50 over the
  plain search's p50, and the median of the per-query ratios. Target: at most 1.5x.

    .venv/bin/python bench/search.py --feedback-only   # just those rows, 100k chunks: 30 s
    .venv/bin/python bench/search.py --feedback-only --feedback-sizes 1000000   # 1M: 4 minutes
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

    def cells(self) -> list[str]:
        p50, p95 = (np.percentile(self.times, q) * 1000 for q in (50, 95))
        ratio = f"{p50 / (self.reference_p50 * 1000):.2f}x" if self.reference_p50 else ""
        recall = f"{self.recall:.3f}" if self.recall is not None else ""
        memory = f"{self.bytes_per_chunk:,.0f}" if self.bytes_per_chunk else ""
        return [f"{self.chunks:,}", self.method, f"{p50:.1f}", f"{p95:.1f}", ratio, recall, memory]


def class_centres(chunks: int, clips_per_class: int) -> np.ndarray:
    """The sound classes of a library of ``chunks`` chunks (clips have 10 on average)."""
    return synthetic.class_centres(max(10, chunks // (10 * clips_per_class)))


def build(workspace: Path, centres: np.ndarray, chunks: int, flat=None) -> float:
    """Store a synthetic library of ``chunks`` chunks; also add its rows to faiss ``flat``
    (unless None)."""
    started = time.perf_counter()
    with ChunkIndex(workspace) as index:
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


def exact_against_faiss(
    index: ChunkIndex, flat, queries: np.ndarray, chunks: int, limit: int
) -> tuple[list[Row], list[list[int]]]:
    """Our exact search and faiss IndexFlatIP, one query each in turn; and our answers."""
    search_clips(index, queries[0], limit)  # warm up both
    flat.search(queries[0], limit)
    ours, theirs, answers = [], [], []
    for query in queries:
        seconds, answer = timed(lambda q=query: search_clips(index, q, limit))
        ours.append(seconds)
        answers.append(answer)
        theirs.append(timed(lambda q=query: flat.search(q, limit))[0])
    reference = float(np.median(theirs))
    return [
        Row(chunks, "faiss IndexFlatIP (reference)", theirs, reference_p50=reference),
        Row(chunks, "ours, exact, float32", ours, recall=1.0, reference_p50=reference),
    ], answers


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
    index: ChunkIndex, queries: np.ndarray, chunks: int, limit: int
) -> list[FeedbackRow]:
    """The plain exact search with expansion and ``search_judged`` with each of
    :data:`JUDGED`, in turn for each query; the judged clips are the plain search's best."""
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
    return [
        FeedbackRow(chunks, "plain: exact, query expansion (today's default)", plain, plain)
    ] + [
        FeedbackRow(
            chunks, f"search_judged, {liked} liked + {disliked} disliked", t.tolist(), plain
        )
        for (liked, disliked), t in zip(JUDGED, times[1:], strict=True)
    ]


def feedback_only(chunks: int, args: argparse.Namespace, notes: list[str]) -> list[FeedbackRow]:
    """Build the library of ``chunks`` chunks and time only the refine-by-example rows."""
    centres = class_centres(chunks, args.clips_per_class)
    queries = synthetic.queries(args.queries, centres)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        seconds = build(Path(tmp), centres, chunks, None)
        notes.append(f"{chunks:,} chunks: stored in {seconds:.0f} s")
        with ChunkIndex(tmp) as index:
            return time_feedback(index, queries, chunks, args.limit)


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean share of each true top list that ``found`` holds."""
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def measure_open(workspace: Path, dtype: str) -> dict[str, float]:
    """Open time and resident bytes per chunk in a fresh process (see ``--measure-open``)."""
    result = subprocess.run(
        [sys.executable, __file__, "--measure-open", str(workspace), "--dtype", dtype],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def resident_bytes() -> int:
    """This process's resident set size (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_and_search_once(workspace: Path, dtype: str) -> None:
    """Print, as JSON, how long opening took and the resident bytes per chunk after a search."""
    before = resident_bytes()
    seconds, index = timed(lambda: ChunkIndex(workspace, dtype=dtype))
    index.search(synthetic.queries(1, synthetic.class_centres(10))[0], limit=10,
                 encoder=ENCODER)  # fmt: skip
    grown = resident_bytes() - before
    print(json.dumps({"open_seconds": seconds, "bytes_per_chunk": grown / index.chunk_count}))
    index.close()


def flow_start_seconds(workspace: Path) -> float:
    """Seconds until ``app.py serve`` on ``workspace`` answers HTTP."""
    from tests.conftest import start_server

    seconds, server = timed(lambda: start_server(workspace, "--encoder", "sfx", timeout=600))
    server.stop()
    return seconds


def run_size(
    chunks: int, args: argparse.Namespace, notes: list[str], feedback: list[FeedbackRow]
) -> list[Row]:
    import faiss

    centres = class_centres(chunks, args.clips_per_class)
    queries = synthetic.queries(args.queries, centres)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        flow_workspace = Path(tmp) / "flow"
        workspace = flow_workspace / "SimpleIndexer" / "0"  # where the flow's indexer looks
        flat = faiss.IndexFlatIP(synthetic.DIM)
        add_seconds = build(workspace, centres, chunks, flat)
        opened = measure_open(workspace, "float32")
        notes.append(
            f"{chunks:,} chunks: stored in {add_seconds:.0f} s "
            f"({chunks / add_seconds:,.0f} chunks/s); a fresh process opens the index in "
            f"{opened['open_seconds']:.2f} s"
        )
        with ChunkIndex(workspace) as index:
            rows, truth = exact_against_faiss(index, flat, queries, chunks, args.limit)
            times, _ = time_queries(index, queries, args.limit, expand=True)
            if chunks in args.feedback_sizes:
                feedback += time_feedback(index, queries, chunks, args.limit)
        rows[1].bytes_per_chunk = opened["bytes_per_chunk"]
        rows.append(Row(chunks, "ours, exact, float32, query expansion (the default)", times,
                        reference_p50=rows[0].reference_p50))  # fmt: skip
        del flat

        for nprobe in args.nprobe:
            seconds, index = timed(
                lambda n=nprobe: ChunkIndex(workspace, ann=AnnSettings(min_chunks=0, nprobe=n))
            )
            if nprobe == args.nprobe[0]:
                ann_bytes = sum(p.stat().st_size for p in workspace.glob("ann.*"))
                clusters = index.stats()["ann_clusters"]
                notes.append(
                    f"{chunks:,} chunks: ANN index built in {seconds:.0f} s ({clusters} "
                    f"clusters; its file adds {ann_bytes / chunks:,.0f} B/chunk)"
                )
            times, found = time_queries(index, queries, args.limit)
            rows.append(Row(chunks, f"ours, ann, nprobe={nprobe}", times, recall(found, truth),
                            reference_p50=rows[0].reference_p50))  # fmt: skip
            if nprobe == args.nprobe[0]:
                times, _ = time_queries(index, queries, args.limit, expand=True)
                rows.append(Row(chunks, f"ours, ann, nprobe={nprobe}, query expansion", times,
                                reference_p50=rows[0].reference_p50))  # fmt: skip
            index.close()

        if args.flow_start:
            empty = flow_start_seconds(Path(tmp) / "empty")
            full = flow_start_seconds(flow_workspace)
            notes.append(
                f"{chunks:,} chunks: `app.py serve` answers in {full:.1f} s "
                f"(empty index: {empty:.1f} s)"
            )

        seconds, _ = timed(lambda: ChunkIndex(workspace, dtype="float16").close())
        half = measure_open(workspace, "float16")
        notes.append(f"{chunks:,} chunks: converting to float16 took {seconds:.0f} s")
        with ChunkIndex(workspace, dtype="float16") as index:
            times, found = time_queries(index, queries, args.limit)
        rows.append(Row(chunks, "ours, exact, float16", times, recall(found, truth),
                        half["bytes_per_chunk"], rows[0].reference_p50))  # fmt: skip
    return rows


def print_results(rows: list[Row], feedback: list[FeedbackRow], notes: list[str]) -> None:
    if rows:
        header = ["chunks", "search", "p50 ms", "p95 ms", "p50 / faiss-flat p50", "recall@10",
                  "resident B/chunk"]  # fmt: skip
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
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=30, help="10 s queries per size")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32])
    parser.add_argument(
        "--clips-per-class", type=int, default=100,
        help="how clustered the library is: fewer clips per class are harder for ANN",
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
    parser.add_argument("--workdir", help="where the workspaces go (default: the system tmp)")
    parser.add_argument("--measure-open", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_open:
        open_and_search_once(args.measure_open, args.dtype)
        return
    rows: list[Row] = []
    feedback: list[FeedbackRow] = []
    notes: list[str] = []
    load = os.getloadavg()[0]
    for chunks in args.feedback_sizes if args.feedback_only else args.sizes:
        if args.feedback_only:
            feedback += feedback_only(chunks, args, notes)
        else:
            rows += run_size(chunks, args, notes, feedback)
        print(f"... {chunks:,} chunks done", file=sys.stderr, flush=True)
    notes.append(f"{args.queries} queries of 5 chunks, limit {args.limit}; load average "
                 f"(1 min) before: {load:.2f}, after: {os.getloadavg()[0]:.2f} "
                 f"({os.cpu_count()} cores)")  # fmt: skip
    print_results(rows, feedback, notes)


if __name__ == "__main__":
    main()
