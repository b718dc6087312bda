"""Each clip's mean chunk vector, read in blocks of rows (the library map projects these)."""

from __future__ import annotations

import numpy as np

from audiosearch.index.layout import row_blocks
from audiosearch.index.scoring import IndexView

__all__ = ["clip_means"]


def clip_means(view: IndexView) -> tuple[np.ndarray, np.ndarray]:
    """Every live clip's id and the mean of its chunk vectors (float32, clips x dim), read one
    block of rows at a time, so a library of any size costs one block of memory."""
    clips = view.clips
    sums = np.zeros((len(clips), view.vectors.dim or 0), dtype=np.float64)
    clip_of_row = np.full(clips.rows, -1, dtype=np.int64)
    clip_of_row[clips.alive_rows()] = np.repeat(np.arange(len(clips)), clips.count)
    for block in row_blocks(np.arange(clips.rows)):
        owner = clip_of_row[block]
        runs = np.flatnonzero(np.diff(owner, prepend=-2))  # a clip's rows are one run
        partial = np.add.reduceat(view.vectors.float_rows(block), runs, axis=0)
        alive = owner[runs] >= 0
        sums[owner[runs][alive]] += partial[alive]
    return clips.ids.copy(), (sums / np.maximum(clips.count, 1)[:, None]).astype(np.float32)
