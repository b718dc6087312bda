"""The ANN index's codes and number of lists: recall and speed on a weakly clustered library.

    .venv/bin/python bench/ann_codes.py --chunks 1000000 --clips-per-class 10   # ~10 min, 2 cores

On one synthetic library (bench/synthetic.py; 10 clips per class is weakly clustered, where IVF
recall is hardest) and 10 s queries (5 chunks), each faiss IVF variant proposes
``--candidates`` rows per query chunk (the service's ``candidates_per_clip`` x limit 10); they
are re-scored exactly, each clip keeps its best row, and recall@10 is the share of the exact
top-10 clips found. p50 is per query: the index's search plus that re-scoring. "8-bit codes,
sqrt(N) lists" is what the service used before; the row marked "(shipped)" is built by
``IvfCandidates.train``, exactly as the service builds it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import faiss
import numpy as np
import synthetic
from table import print_table

from audiosearch.index.ann import TRAIN_POINTS_PER_LIST, IvfCandidates


def exact_top_clips(matrix: np.ndarray, clip_of: np.ndarray, query: np.ndarray) -> set[int]:
    """The query's 10 best clips, every row scored."""
    best = np.full(clip_of[-1] + 1, -np.inf, dtype=np.float32)
    np.maximum.at(best, clip_of, (matrix @ query.T).max(axis=1))
    return set(np.argsort(-best)[:10].tolist())


def top_clips_of_candidates(
    matrix: np.ndarray, clip_of: np.ndarray, query: np.ndarray, candidates: np.ndarray
) -> set[int]:
    """The 10 best clips among the candidate rows, re-scored exactly."""
    rows = np.unique(candidates[candidates >= 0])
    scores = (matrix[rows] @ query.T).max(axis=1)
    best: dict[int, float] = {}
    for row in np.argsort(-scores):
        best.setdefault(int(clip_of[rows[row]]), float(scores[row]))
        if len(best) == 10:
            break
    return set(best)


def train_variant(name: str, sample: np.ndarray, nlist: int) -> faiss.IndexIVF:
    """An empty IVF index of the kind ``name`` over ``nlist`` lists, trained on ``sample``."""
    dim = sample.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    if name == "8-bit":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    else:  # "4-bit PQ<m>": fast-scan product codes of dim/m dimensions per 4 bits
        sub_vectors = int(name.removeprefix("4-bit PQ"))
        index = faiss.IndexIVFPQFastScan(
            quantizer, dim, nlist, sub_vectors, 4, faiss.METRIC_INNER_PRODUCT
        )
        index.by_residual = False
    index.cp.niter = 10
    index.train(sample)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--clips-per-class", type=int, default=10)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=500, help="per query chunk")
    args = parser.parse_args()
    centres = synthetic.class_centres(max(10, args.chunks // (10 * args.clips_per_class)))
    batches = list(synthetic.clips(args.chunks, centres))
    matrix = np.concatenate([b.vectors for b in batches])
    counts = np.concatenate([b.counts for b in batches])
    clip_of = np.repeat(np.arange(len(counts)), counts)
    queries = synthetic.queries(args.queries, centres)
    truth = [exact_top_clips(matrix, clip_of, q) for q in queries]
    load_before = os.getloadavg()[0]
    root = math.sqrt(len(matrix))
    variants = [  # (codes, lists, candidates per chunk, nprobes)
        ("8-bit", round(root), 160, (128, 256)),  # before: 16 candidates per clip
        ("4-bit PQ128", round(root), args.candidates, (128, 256)),
        ("4-bit PQ128", round(2 * root), args.candidates, (128, 256, 512)),  # shipped
        ("4-bit PQ64", round(2 * root), args.candidates, (256, 512)),
        ("4-bit PQ256", round(2 * root), args.candidates, (256,)),
        ("4-bit PQ128", round(4 * root), args.candidates, (128, 256)),
    ]
    rng = np.random.default_rng(0)
    rows: list[list[str]] = []
    for codes, nlist, candidates, nprobes in variants:
        size = min(len(matrix), nlist * TRAIN_POINTS_PER_LIST)
        sample = matrix[np.sort(rng.choice(len(matrix), size, replace=False))]
        started = time.perf_counter()
        shipped = codes == "4-bit PQ128" and nlist == round(2 * root)
        if shipped:
            index = IvfCandidates.train(sample, nlist=nlist, nprobe=nprobes[0]).index
        else:
            index = train_variant(codes, sample, nlist)
        for lo in range(0, len(matrix), 1 << 16):
            index.add(matrix[lo : lo + (1 << 16)])
        build = time.perf_counter() - started
        size = faiss.serialize_index(index).nbytes / len(matrix)
        for nprobe in nprobes:
            index.nprobe = nprobe
            times, found = [], []
            for query in queries:
                started = time.perf_counter()
                _, candidate_rows = index.search(query, candidates)
                found.append(top_clips_of_candidates(matrix, clip_of, query, candidate_rows))
                times.append(time.perf_counter() - started)
            recall = np.mean([len(f & t) / 10 for f, t in zip(found, truth, strict=True)])
            rows.append([
                f"{codes} codes{' (shipped)' if shipped else ''}", f"{nlist:,}", str(nprobe),
                f"{min(nprobe, nlist) / nlist:.1%}", str(candidates),
                f"{np.median(times) * 1000:.1f}", f"{recall:.3f}", f"{build:.0f}", f"{size:,.0f}",
            ])  # fmt: skip
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(f"{len(matrix):,} chunks, {args.clips_per_class} clips/class, {args.queries} queries "
          f"of 5 chunks; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} cores)\n")  # fmt: skip
    header = ["codes", "lists", "nprobe", "scanned", "candidates/chunk", "p50 ms", "recall@10",
              "build s", "index B/chunk"]  # fmt: skip
    print_table(header, rows)


if __name__ == "__main__":
    main()
