"""Where each clip's chunks lie among the vector file's rows: pure numpy, no files.

A clip's chunk vectors are rows ``first .. first + count - 1`` of the vector file, clips in file
order. Rows of deleted or replaced clips stay in the file, dead, until a compaction packs the
live ones. Scores are reduced over *segments*: each live clip's rows, and each run of dead rows
between them, so one ``np.maximum.reduceat`` gives every clip its best row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "ROW_BLOCK",
    "ClipRows",
    "Segments",
    "alive_rows",
    "chunk_times",
    "packed_first_rows",
    "row_blocks",
    "segments",
]

#: Rows copied or handed to the ANN index at a time.
ROW_BLOCK = 1 << 16


def alive_rows(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The rows of clips starting at rows ``first`` with ``count`` rows each, in that order."""
    if not len(count):
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(first - np.cumsum(count) + count, count)
    return np.arange(int(count.sum()), dtype=np.int64) + offsets


def packed_first_rows(count: np.ndarray | Sequence[int], start: int = 0) -> np.ndarray:
    """The first rows of clips of ``count`` rows each laid back to back from row ``start``."""
    return start + np.cumsum(count) - count


def chunk_times(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A clip's chunks' start and end times as one ``(chunks, 2)`` float64 array."""
    return np.column_stack([starts, ends]).astype(np.float64)


def row_blocks(rows: np.ndarray) -> Iterator[np.ndarray]:
    """``rows`` in consecutive slices of at most :data:`ROW_BLOCK`."""
    for lo in range(0, len(rows), ROW_BLOCK):
        yield rows[lo : lo + ROW_BLOCK]


@dataclass(frozen=True)
class Segments:
    """The rows cut into segments: each clip's rows, and each run of dead rows between them."""

    #: First row and one past the last row of each segment, in file order.
    starts: np.ndarray
    ends: np.ndarray
    #: The clip's position in :attr:`ClipRows.ids` of each segment, -1 for dead rows.
    clip: np.ndarray
    #: The segment of each clip, by its position in :attr:`ClipRows.ids`.
    of_clip: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def rows_of(self, segment: int) -> np.ndarray:
        """The rows of one segment."""
        return np.arange(int(self.starts[segment]), int(self.ends[segment]))

    def containing(self, rows: np.ndarray) -> np.ndarray:
        """The segment of each row."""
        return np.searchsorted(self.starts, rows, side="right") - 1


def segments(first: np.ndarray, count: np.ndarray, rows: int) -> Segments:
    """The segments of ``rows`` rows holding clips at ``first`` (file order) of ``count`` rows."""
    ends = first + count
    starts = np.union1d(first, ends[ends < rows])
    if rows and (not len(starts) or starts[0] != 0):
        starts = np.concatenate([[0], starts])
    clip = np.full(len(starts), -1, dtype=np.int64)
    of_clip = np.searchsorted(starts, first)
    clip[of_clip] = np.arange(len(first))
    return Segments(
        starts.astype(np.int64), np.append(starts[1:], rows).astype(np.int64), clip, of_clip
    )


@dataclass(frozen=True)
class ClipRows:
    """The live clips in file order (id, first row, row count, duration, uri) and the start and
    end times of every row of the file, dead rows included."""

    ids: np.ndarray
    first: np.ndarray
    count: np.ndarray
    duration: np.ndarray
    #: Object array of str, one per clip.
    uris: np.ndarray
    #: ``(rows, 2)`` float64: each row's chunk's start and end, zero for rows never loaded.
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def rows(self) -> int:
        """Rows in the file, live and dead."""
        return len(self.times)

    @property
    def chunk_count(self) -> int:
        """Live rows."""
        return int(self.count.sum())

    @cached_property
    def segments(self) -> Segments:
        """The rows cut into segments (computed once per layout)."""
        return segments(self.first, self.count, self.rows)

    def alive_rows(self) -> np.ndarray:
        """The rows of every live clip, in file order."""
        return alive_rows(self.first, self.count)

    def positions(self, clip_id: int) -> np.ndarray:
        """Where clip ``clip_id`` is in :attr:`ids` (empty if absent)."""
        return np.flatnonzero(self.ids == clip_id)

    def appended(
        self, ids: Sequence[int], uris: Sequence[str], durations: Sequence[float],
        times: Sequence[np.ndarray],
    ) -> ClipRows:  # fmt: skip
        """These clips added after the last row, their rows' ``times`` one array per clip."""
        counts = [len(t) for t in times]
        return ClipRows(
            np.append(self.ids, ids),
            np.append(self.first, packed_first_rows(counts, self.rows)),
            np.append(self.count, counts),
            np.append(self.duration, durations),
            np.concatenate([self.uris, np.array(uris, dtype=object)]),
            np.concatenate([self.times, *times]).astype(np.float64),
        )

    def rows_of(self, clip_ids: Sequence[int]) -> np.ndarray:
        """The rows of these clips."""
        return self.alive_rows()[np.repeat(np.isin(self.ids, clip_ids), self.count)]

    def without(self, clip_ids: Sequence[int]) -> ClipRows:
        """These clips gone; their rows stay, dead."""
        keep = ~np.isin(self.ids, clip_ids)
        return ClipRows(self.ids[keep], self.first[keep], self.count[keep],
                        self.duration[keep], self.uris[keep], self.times)  # fmt: skip

    def packed(self) -> ClipRows:
        """The layout after a compaction: the live rows back to back, in the same order."""
        return ClipRows(self.ids, packed_first_rows(self.count), self.count, self.duration,
                        self.uris, self.times[self.alive_rows()])  # fmt: skip
