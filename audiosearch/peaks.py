"""A waveform's outline for drawing: the loudest sample of each of ``points`` equal spans."""

from __future__ import annotations

import numpy as np

from audiosearch.errors import InvalidInputError

__all__ = ["MAX_POINTS", "check_points", "peaks"]

#: The most spans a request may ask for (a thumbnail is a few hundred pixels wide).
MAX_POINTS = 4096


def check_points(points: object) -> int:
    """``points`` as an int in 1..MAX_POINTS, or :class:`InvalidInputError` saying why."""
    if not isinstance(points, int) or isinstance(points, bool) or not 1 <= points <= MAX_POINTS:
        raise InvalidInputError(
            f"points={points!r}: expected a whole number from 1 to {MAX_POINTS}"
        )
    return points


def peaks(waveform: np.ndarray, points: int) -> np.ndarray:
    """The largest absolute sample of each of ``points`` equal spans of ``waveform``, 0..1.

    A waveform shorter than ``points`` samples gives one value per sample.
    """
    points = check_points(points)
    magnitude = np.abs(np.asarray(waveform, dtype=np.float32))
    if magnitude.size == 0:
        return np.zeros(0, dtype=np.float32)
    edges = np.linspace(0, magnitude.size, min(points, magnitude.size) + 1).astype(np.int64)
    return np.clip(np.maximum.reduceat(magnitude, edges[:-1]), 0.0, 1.0)
