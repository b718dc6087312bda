"""Which ANN library backs ``search: ann``: faiss IVF or hnswlib HNSW, measured side by side.

    pip install hnswlib==0.8.0 faiss-cpu==1.15.1 numpy    # hnswlib is not a project dependency
    python bench/ann_choice.py --chunks 200000           # ~10 min on 2 cores, mostly HNSW build

On one synthetic library (bench/synthetic.py) and 10 s queries (5 chunks): build time, bytes
per chunk of the index, p50 latency of a query, and recall@10: the share of each query chunk's
exact 10 nearest chunks found, after re-scoring the 100 best candidates exactly (as the service
does, from its own stored vectors).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import faiss
import hnswlib
import numpy as np
import synthetic
from table import print_table

CANDIDATES = 100


def recall_at_10(matrix: np.ndarray, queries: np.ndarray, candidates: np.ndarray) -> float:
    """Share of the exact top 10 rows among the 10 best candidates, re-scored exactly."""
    found = []
    for query, rows in zip(queries, candidates, strict=True):
        rows = rows[rows >= 0]
        found.append(set(rows[np.argsort(-(matrix[rows] @ query))[:10]].tolist()))
    exact = np.argsort(-(queries @ matrix.T), axis=1)[:, :10]
    return float(
        np.mean([len(f & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)])
    )


def measure(
    name: str, search: Callable[[np.ndarray], np.ndarray], matrix: np.ndarray, queries: np.ndarray
) -> list[str]:
    """p50 ms per 5-chunk query and recall@10."""
    search(queries[0])
    times, candidates = [], []
    for query in queries:
        started = time.perf_counter()
        candidates.append(search(query))
        times.append(time.perf_counter() - started)
    flat = queries.reshape(-1, matrix.shape[1])
    score = recall_at_10(matrix, flat, np.concatenate(candidates))
    return [name, f"{np.median(times) * 1000:.1f}", f"{score:.3f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    centres = synthetic.class_centres(max(10, args.chunks // 1000))
    matrix = np.concatenate([b.vectors for b in synthetic.clips(args.chunks, centres)])
    queries = synthetic.queries(args.queries, centres)
    rows: list[list[str]] = []

    nlist = round(np.sqrt(args.chunks))
    for label, kind in (
        ("IVF, 8-bit codes", faiss.ScalarQuantizer.QT_8bit),
        ("IVF, float32", None),
    ):
        quantizer = faiss.IndexFlatIP(synthetic.DIM)
        index = (
            faiss.IndexIVFFlat(quantizer, synthetic.DIM, nlist, faiss.METRIC_INNER_PRODUCT)
            if kind is None
            else faiss.IndexIVFScalarQuantizer(
                quantizer, synthetic.DIM, nlist, kind, faiss.METRIC_INNER_PRODUCT
            )
        )
        started = time.perf_counter()
        sample = np.random.default_rng(0).choice(len(matrix), min(len(matrix), nlist * 64), False)
        index.train(matrix[np.sort(sample)])
        index.add(matrix)
        build = time.perf_counter() - started
        size = faiss.serialize_index(index).nbytes / len(matrix)
        for nprobe in (8, 16, 32):
            index.nprobe = nprobe
            name = f"faiss {label}, {nlist} lists, nprobe={nprobe}"
            rows.append([*measure(name, lambda q, i=index: i.search(q, CANDIDATES)[1], matrix,
                                  queries), f"{build:.0f}", f"{size:,.0f}"])  # fmt: skip

    hnsw = hnswlib.Index(space="ip", dim=synthetic.DIM)
    hnsw.init_index(max_elements=len(matrix), M=16, ef_construction=100)
    started = time.perf_counter()
    hnsw.add_items(matrix, np.arange(len(matrix)), num_threads=os.cpu_count())
    build = time.perf_counter() - started
    with tempfile.NamedTemporaryFile() as saved:
        hnsw.save_index(saved.name)
        size = os.path.getsize(saved.name) / len(matrix)
    for ef in (100, 200):
        hnsw.set_ef(ef)
        name = f"hnswlib HNSW, M=16, ef={ef}"
        rows.append([*measure(name, lambda q: hnsw.knn_query(q, k=CANDIDATES)[0].astype(np.int64),
                              matrix, queries), f"{build:.0f}", f"{size:,.0f}"])  # fmt: skip

    print(f"{args.chunks:,} chunks, {args.queries} queries of 5 chunks, {os.cpu_count()} cores")
    print_table(["index", "p50 ms / query", "recall@10", "build s", "index B/chunk"], rows)


if __name__ == "__main__":
    main()
