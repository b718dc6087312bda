"""Approximate nearest-neighbour candidates for large libraries: a faiss inverted-file index.

The index partitions the chunk rows into ``nlist`` clusters (k-means) and keeps each row as a
4-bit product-quantised code in its cluster's list (faiss "fast scan": one byte per 8
dimensions, scanned with SIMD table lookups). A query scans the ``nprobe`` clusters nearest to
it. It only proposes candidate rows: the caller scores them exactly against the stored vectors,
so reported scores never carry quantisation error. Row numbers are the ids, so rows can be added
and removed without rebuilding. docs/benchmarks.md#ann-codes says why these codes and sizes.

:class:`AnnCache` keeps such an index in step with the vector file's live rows and saves it as
``ann.<generation>.faiss``: a cache, brought up to date when it opens.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from audiosearch.index.layout import ClipRows, row_blocks

__all__ = [
    "TRAIN_POINTS_PER_LIST",
    "AnnCache",
    "AnnSettings",
    "IvfCandidates",
    "ann_path",
    "list_count",
]

#: Training points per cluster: faiss wants at least 39; more buys little but costs time.
TRAIN_POINTS_PER_LIST = 40
#: Dimensions per product-quantiser sub-vector, each coded in 4 bits.
DIMS_PER_CODE = 4
#: The product quantiser fits 16 centroids per sub-vector: it needs this many points at least.
MIN_TRAIN_POINTS = 16 * TRAIN_POINTS_PER_LIST


def list_count(rows: int) -> int:
    """The number of clusters for ``rows`` vectors: about twice their square root (finer lists
    hold recall on weakly clustered libraries at a smaller share of rows scanned)."""
    return max(1, round(2 * math.sqrt(rows)))


def _sub_vectors(dim: int) -> int:
    """How many sub-vectors a ``dim``-dimensional row is cut into: ``dim / DIMS_PER_CODE``, or
    the nearest smaller divisor of ``dim``."""
    return next(m for m in range(max(1, dim // DIMS_PER_CODE), 0, -1) if dim % m == 0)


class IvfCandidates:
    """A faiss ``IndexIVFPQFastScan`` (inner product) keyed by row number."""

    def __init__(self, index: faiss.IndexIVFPQFastScan, nprobe: int) -> None:
        self.index = index
        self.index.nprobe = min(nprobe, index.nlist)

    @classmethod
    def train(cls, sample: np.ndarray, *, nlist: int, nprobe: int) -> IvfCandidates:
        """An empty index whose clusters and codes are fitted to ``sample`` (unit rows)."""
        dim = sample.shape[1]
        index = faiss.IndexIVFPQFastScan(
            faiss.IndexFlatIP(dim), dim, nlist, _sub_vectors(dim), 4, faiss.METRIC_INNER_PRODUCT
        )
        index.by_residual = False  # codes of the rows themselves: one lookup table per query
        index.cp.seed = 1234  # the same sample gives the same clusters
        index.cp.niter = 10  # not faiss's 25: training dominates large builds; recall taken at 10
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
    def outdated(self) -> bool:
        """Whether the index holds another kind of code than :meth:`train` makes now."""
        return not isinstance(self.index, faiss.IndexIVFPQFastScan)

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

    def search(self, queries: np.ndarray, k: int, *, nprobe: int | None = None) -> np.ndarray:
        """The ``k`` candidate rows per query (best first; -1 pads when fewer exist), scanning
        ``nprobe`` clusters (the index's own setting if None)."""
        params = (
            None if nprobe is None else faiss.SearchParametersIVF(nprobe=min(nprobe, self.nlist))
        )
        _, rows = self.index.search(
            np.ascontiguousarray(queries, dtype=np.float32), k, params=params
        )
        return rows


@dataclass(frozen=True)
class AnnSettings:
    """When and how searches are answered approximately."""

    #: Below this many chunks the exact search is fast enough and no ANN index is kept.
    min_chunks: int = 100_000
    #: Clusters scanned per query chunk, of about 2 x sqrt(chunks): more is slower and finds more
    #: of the true neighbours (docs/benchmarks.md#search: 256 holds recall@10 >= 0.95 on a
    #: weakly clustered library of 1M chunks).
    nprobe: int = 256
    #: Candidate chunks per requested clip, scored exactly, then collapsed to their clips: the
    #: 4-bit codes rank roughly, so the true best rows are found among many candidates.
    candidates_per_clip: int = 50
    #: False: every search scores all rows exactly, and the index only guesses each query
    #: chunk's nearest row for query expansion (one pass over the rows instead of two).
    approximate: bool = True
    #: Clusters scanned, and candidates re-scored exactly, to guess a query chunk's nearest
    #: row for query expansion: only one row per chunk is wanted, so it can afford more. Many
    #: candidates: where a sound class has thousands of near rows, the 4-bit codes rank the
    #: nearest one anywhere among the first few hundred.
    guess_nprobe: int = 512
    guess_candidates: int = 1000


def _only_in_each(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The row numbers only in ``first`` and those only in ``second``, sorted; by marks in a
    mask rather than sorting (np.setdiff1d took seconds per million rows, at every start)."""
    size = max(int(first.max(initial=-1)), int(second.max(initial=-1))) + 1
    in_first, in_second = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
    in_first[first], in_second[second] = True, True
    return np.flatnonzero(in_first & ~in_second), np.flatnonzero(in_second & ~in_first)


def ann_path(workspace: Path, generation: int) -> Path:
    """Where the ANN index over generation ``generation``'s vector file is saved."""
    return workspace / f"ann.{generation}.faiss"


#: Reads stored rows (by row number) as float32 unit vectors.
RowReader = Callable[[np.ndarray], np.ndarray]


class AnnCache:
    """The ANN index over the live rows, kept only when ``settings`` ask for one and the index
    is large enough; :attr:`index` is None otherwise."""

    def __init__(self, settings: AnnSettings | None) -> None:
        self.settings = settings
        self.index: IvfCandidates | None = None
        #: Whether :attr:`index` differs from the saved file.
        self.changed = False

    def sync(self, path: Path, clips: ClipRows, read: RowReader) -> None:
        """Build, load, retrain or drop the index as the settings and the live rows need."""
        settings = self.settings
        if settings is None or clips.chunk_count < settings.min_chunks:
            self.index = None
            return
        alive = clips.alive_rows()
        if self.index is None and path.exists():
            loaded = IvfCandidates.load(path, nprobe=settings.nprobe)
            if loaded.outdated:  # saved by an older release
                return self._build(path, alive, read)
            self.index = loaded
            gone, new = _only_in_each(self.index.rows(), alive)  # changed since it was saved
            self.index.remove(gone)
            self.add_rows(new, read)
            self.changed = bool(len(gone) or len(new))  # else closing need not rewrite the file
        if self.index is None or list_count(len(alive)) > 2 * self.index.nlist:  # 4x the rows
            self._build(path, alive, read)

    def _build(self, path: Path, alive: np.ndarray, read: RowReader) -> None:
        """Fit clusters to a sample of the ``alive`` rows, then add them all."""
        nlist = list_count(len(alive))
        rng = np.random.default_rng(0)
        size = min(len(alive), max(nlist * TRAIN_POINTS_PER_LIST, MIN_TRAIN_POINTS))
        sample = np.sort(rng.choice(alive, size, replace=False))
        self.index = IvfCandidates.train(
            read(sample),
            nlist=nlist,
            nprobe=self.settings.nprobe,  # type: ignore[union-attr]
        )
        self.add_rows(alive, read)
        self.save(path)  # building takes a while; a restart should not have to repeat it

    def add(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        """Add unit ``vectors`` under their row numbers (nothing without an index)."""
        if self.index is not None:
            self.index.add(vectors, rows)
            self.changed = True

    def add_rows(self, rows: np.ndarray, read: RowReader) -> None:
        """Add stored ``rows``, a block at a time."""
        for block in row_blocks(rows):
            self.index.add(read(block), block)  # type: ignore[union-attr]
        self.changed = True

    def remove_clips(self, clips: ClipRows, clip_ids: Sequence[int]) -> None:
        """Forget the rows of these clips (nothing without an index)."""
        if self.index is not None:
            self.index.remove(clips.rows_of(clip_ids))
            self.changed = True

    def renumber(self, clips: ClipRows, read: RowReader) -> None:
        """After a compaction: the same clusters, the live rows added again."""
        if self.index is not None:
            self.index.index.reset()
            self.add_rows(clips.alive_rows(), read)

    def save(self, path: Path) -> None:
        """Write the index to ``path`` if it changed, so the next start need not rebuild it."""
        if self.index is not None and self.changed:
            self.index.save(path)
            self.changed = False
