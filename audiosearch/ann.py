"""Approximate nearest-neighbour candidates for large libraries: a faiss inverted-file index.

The index partitions the chunk rows into ``nlist`` clusters (k-means) and keeps each row as an
8-bit scalar-quantised code in its cluster's list (a quarter of the float32 size). A query
scans the ``nprobe`` clusters nearest to it. It only proposes candidate rows: the caller scores
them exactly against the stored vectors, so reported scores never carry quantisation error.
Row numbers are the ids, so rows can be added and removed without rebuilding.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import faiss
import numpy as np

#: Training points per cluster: faiss wants at least 39; more buys little but costs time.
TRAIN_POINTS_PER_LIST = 64


def list_count(rows: int) -> int:
    """The number of clusters for ``rows`` vectors: about their square root."""
    return max(1, round(math.sqrt(rows)))


class IvfCandidates:
    """A faiss ``IndexIVFScalarQuantizer`` (inner product) keyed by row number."""

    def __init__(self, index: faiss.IndexIVFScalarQuantizer, nprobe: int) -> None:
        self.index = index
        self.index.nprobe = min(nprobe, index.nlist)

    @classmethod
    def train(cls, sample: np.ndarray, *, nlist: int, nprobe: int) -> IvfCandidates:
        """An empty index whose clusters and quantiser are fitted to ``sample`` (unit rows)."""
        dim = sample.shape[1]
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim),
            dim,
            nlist,
            faiss.ScalarQuantizer.QT_8bit,
            faiss.METRIC_INNER_PRODUCT,
        )
        index.cp.seed = 1234  # the same sample gives the same clusters
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(index, nprobe)

    @classmethod
    def load(cls, path: Path, *, nprobe: int) -> IvfCandidates:
        """The index saved at ``path``."""
        return cls(faiss.read_index(str(path)), nprobe)  # already of its concrete class

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically (a reader sees the old file or the new, never half)."""
        partial = path.with_suffix(".partial")
        faiss.write_index(self.index, str(partial))
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, path)

    @property
    def nlist(self) -> int:
        """How many clusters the rows are partitioned into."""
        return self.index.nlist

    def __len__(self) -> int:
        return self.index.ntotal

    def add(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        """Add unit ``vectors`` under their row numbers."""
        self.index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(rows, dtype=np.int64)
        )

    def remove(self, rows: np.ndarray) -> None:
        """Forget the given row numbers (absent ones are ignored)."""
        if len(rows):
            self.index.remove_ids(np.asarray(rows, dtype=np.int64))

    def rows(self) -> np.ndarray:
        """Every row number held, in no particular order."""
        lists = self.index.invlists
        held = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(self.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(held) if held else np.empty(0, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` candidate rows per query (best first; -1 pads when fewer exist)."""
        _, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return rows
