"""A 2-D map of the library: each clip's mean chunk vector projected on its first two principal
components, so that clips that sound alike lie close together.

Pure numpy; the indexer gives it the vectors (:meth:`ChunkIndex.clip_means`) and the web page
draws the points.
"""

from __future__ import annotations

import numpy as np

__all__ = ["project"]


def project(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (clips x dim) as points in the unit square (clips x 2), by PCA.

    Each row is normalised first (a clip's mean of unit chunk vectors is shorter the more its
    chunks differ; its direction is what it sounds like). Both axes are scaled by one factor, so
    distances keep their proportions; each axis's sign is fixed (its largest loading is
    positive), so the same library gives the same map. Fewer than two clips, or clips that are
    all alike, lie at the centre.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    points = np.full((len(vectors), 2), 0.5)
    if len(vectors) < 2:
        return points
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    centred = vectors / np.where(norms > 0, norms, 1.0)
    centred -= centred.mean(axis=0)
    # The covariance is dim x dim: cheap for any number of clips, unlike an SVD of the rows.
    values, axes = np.linalg.eigh(centred.T @ centred)
    top = axes[:, np.argsort(values)[::-1][:2]]
    if top.shape[1] < 2:
        top = np.pad(top, ((0, 0), (0, 2 - top.shape[1])))
    top *= np.where(top[np.abs(top).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)
    projected = centred @ top
    spread = np.abs(projected).max()
    if spread > 0:
        points = 0.5 + projected / (2 * spread)
    return points
