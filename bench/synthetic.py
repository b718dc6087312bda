"""A synthetic library of unit chunk vectors clustered the way audio embeddings are.

Real embeddings are not uniform on the sphere (where no index can beat a full scan): similar
sounds cluster. Here each clip belongs to one of ``classes`` sound classes; its chunks scatter
around a clip centre that scatters around the class centre. Queries are new clips drawn the
same way, so their nearest neighbours are clips of their class, as in a real search.

Needs only numpy, so ANN libraries can be compared in any environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DIM = 512
#: Spread of a clip centre around its class centre, and of a chunk around its clip centre,
#: as the norm of the added noise relative to the (unit) centre.
CLIP_SPREAD, CHUNK_SPREAD = 0.9, 0.5


@dataclass(frozen=True)
class ClipBatch:
    """Consecutive clips: their chunk vectors (unit rows) and each clip's chunk count."""

    vectors: np.ndarray
    counts: np.ndarray


def class_centres(classes: int, seed: int = 0) -> np.ndarray:
    """``classes`` random unit vectors."""
    centres = np.random.default_rng(seed).standard_normal((classes, DIM), dtype=np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _clip_chunks(counts: np.ndarray, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Chunk vectors of clips with these chunk ``counts``, each clip of a random class."""
    owners = rng.integers(len(centres), size=len(counts))
    noise = rng.standard_normal((len(counts), DIM), dtype=np.float32)
    rows = np.repeat(_unit(centres[owners] + CLIP_SPREAD * _unit(noise)), counts, axis=0)
    noise = rng.standard_normal(rows.shape, dtype=np.float32)
    return _unit(rows + CHUNK_SPREAD * _unit(noise)).astype(np.float32)


def clips(
    chunks: int, centres: np.ndarray, *, seed: int = 1, batch_clips: int = 10_000
) -> Iterator[ClipBatch]:
    """Clips of 2 to 18 chunks (10 on average), ``chunks`` chunks in all, in batches."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 19, size=chunks // 2)
    counts = counts[: np.searchsorted(np.cumsum(counts), chunks, side="right")]
    if counts.sum() < chunks:
        counts = np.append(counts, chunks - counts.sum())
    for lo in range(0, len(counts), batch_clips):
        batch = counts[lo : lo + batch_clips]
        yield ClipBatch(_clip_chunks(batch, centres, rng), batch)


def queries(n: int, centres: np.ndarray, *, chunks: int = 5, seed: int = 2) -> np.ndarray:
    """``n`` new clips of ``chunks`` chunks (5: a 10 s query), shape (n, chunks, DIM)."""
    rng = np.random.default_rng(seed)
    return _clip_chunks(np.full(n, chunks), centres, rng).reshape(n, chunks, DIM)
