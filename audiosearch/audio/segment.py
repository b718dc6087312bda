"""Cut a waveform into overlapping fixed-length windows that cover the whole clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiosearch.audio.decode import SAMPLE_RATE
from audiosearch.errors import InvalidInputError

__all__ = [
    "ALIGN_SAMPLES",
    "STRIDE_SECONDS",
    "WINDOW_SECONDS",
    "Region",
    "Segments",
    "check_region",
    "cut_region",
    "segment",
    "window_starts",
    "windows_in_region",
]

WINDOW_SECONDS = 4.0
STRIDE_SECONDS = 2.0
#: Window starts sit on VGGish's 10 ms frame grid, so log-mel frames computed once for the
#: whole file can be sliced per window with results identical to computing them per window.
ALIGN_SAMPLES = 160


@dataclass(frozen=True)
class Segments:
    """A clip's waveform and the windows cut from it.

    ``waveform`` is the clip looped to one window when the clip is shorter than a window;
    ``duration`` is always the original clip's length in seconds.
    """

    waveform: np.ndarray
    starts: np.ndarray
    window_samples: int
    sample_rate: int
    duration: float

    @property
    def start_seconds(self) -> np.ndarray:
        """Start of each window in the original clip, in seconds."""
        return self.starts / self.sample_rate

    @property
    def end_seconds(self) -> np.ndarray:
        """End of each window in the original clip (never past its end), in seconds."""
        return np.minimum(self.starts + self.window_samples, self.duration * self.sample_rate) / (
            self.sample_rate
        )


def window_starts(
    n_samples: int, *, window_samples: int, stride_samples: int, align_samples: int = 1
) -> np.ndarray:
    """Start offsets of windows that cover ``n_samples`` completely.

    Windows step by ``stride_samples``; when the last regular window stops short of the end, one
    more window is placed flush with the end (rounded down to ``align_samples``), so no tail is
    dropped. A clip of at most one window gives the single start 0.
    """
    if window_samples <= 0 or stride_samples <= 0 or align_samples <= 0:
        raise ValueError(
            f"window_samples={window_samples}, stride_samples={stride_samples}, "
            f"align_samples={align_samples}: all must be positive"
        )
    if n_samples <= window_samples:
        return np.zeros(1, dtype=np.int64)
    last = n_samples - window_samples
    starts = np.arange(0, last + 1, stride_samples, dtype=np.int64)
    tail = last // align_samples * align_samples
    if starts[-1] < tail:
        starts = np.append(starts, tail)
    return starts


def segment(
    waveform: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    window_seconds: float = WINDOW_SECONDS,
    stride_seconds: float = STRIDE_SECONDS,
    align_samples: int = ALIGN_SAMPLES,
) -> Segments:
    """Cut ``waveform`` into windows of ``window_seconds`` every ``stride_seconds``.

    A clip shorter than one window is tiled (looped) to a full window rather than padded with
    silence, so the encoder sees the sound itself throughout. A 10 s clip gives windows starting
    at 0, 2, 4 and 6 s.
    """
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"waveform of shape {waveform.shape}: expected a non-empty 1-D array")
    window = round(window_seconds * sample_rate)
    stride = round(stride_seconds * sample_rate)
    duration = waveform.size / sample_rate
    if waveform.size < window:
        waveform = np.resize(waveform, window)  # np.resize repeats the array: a loop
    starts = window_starts(
        waveform.size, window_samples=window, stride_samples=stride, align_samples=align_samples
    )
    return Segments(waveform, starts, window, sample_rate, duration)


@dataclass(frozen=True)
class Region:
    """The part of a query clip to search with: ``start`` to ``end`` seconds (None: its end)."""

    start: float = 0.0
    end: float | None = None


def check_region(start: object, end: object) -> Region | None:
    """The region ``start``/``end`` (seconds) describe, None if neither is given; or
    :class:`InvalidInputError` for one that is not a span of time."""
    if start is None and end is None:
        return None
    for name, value in (("start", start), ("end", end)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0
        ):
            raise InvalidInputError(
                f"{name}={value!r}: expected seconds from the start of the clip, a number >= 0; "
                "try start=2.5, end=6"
            )
    region = Region(float(start or 0.0), None if end is None else float(end))
    if region.end is not None and region.end <= region.start:
        raise InvalidInputError(
            f"start={region.start:g}, end={region.end:g}: the region ends before it starts; "
            "swap them"
        )
    return region


def cut_region(
    waveform: np.ndarray, region: Region, *, label: str, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The samples of ``waveform`` in ``region``; :class:`InvalidInputError` for a region
    that is not inside the clip (which may have been decoded only up to the region's end)."""
    duration = waveform.size / sample_rate
    if region.start >= duration:
        raise InvalidInputError(
            f"{label}: start={region.start:g} s is past the end of the clip ({duration:.2f} s); "
            "choose a region inside it"
        )
    # One sample's slack: a region ending exactly at the end may round past it.
    if region.end is not None and region.end > duration + 1 / sample_rate:
        raise InvalidInputError(
            f"{label}: end={region.end:g} s is past the end of the clip as read "
            f"({duration:.2f} s); choose a region inside it"
        )
    first = round(region.start * sample_rate)
    last = waveform.size if region.end is None else round(region.end * sample_rate)
    return waveform[first:last]


def windows_in_region(
    starts: np.ndarray, ends: np.ndarray, region: Region, *, duration: float, label: str
) -> np.ndarray:
    """Indices of the stored windows (``starts``/``ends``, seconds) that represent ``region``
    of a clip of ``duration`` seconds: those whose middle lies in it, or, for a region shorter
    than the stride, the one whose middle is nearest the region's."""
    end = duration if region.end is None else region.end
    if region.start >= duration or end > duration + 0.01:
        raise InvalidInputError(
            f"{label}: the region {region.start:g}-{end:g} s is not inside the clip "
            f"(0-{duration:.2f} s); choose one inside it"
        )
    middles = (np.asarray(starts) + np.asarray(ends)) / 2
    inside = np.flatnonzero((middles >= region.start) & (middles <= end))
    if inside.size:
        return inside
    return np.array([int(np.argmin(np.abs(middles - (region.start + end) / 2)))])
