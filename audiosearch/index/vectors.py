"""The vector file: L2-normalised rows, appended and fsynced, memory-mapped, compacted.

``vectors.<generation>.f32`` (or ``.f16``) holds the rows; the catalog commits how many of them
count (``rows``) and which generation is current. Rows past the committed count are the tail of
an add that never committed and are cut off on opening. A compaction writes the live rows to the
next generation's file; the catalog then switches to it in one transaction.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from audiosearch.errors import IndexMismatchError
from audiosearch.index.layout import row_blocks

__all__ = ["ROW_TYPES", "VectorFile", "fsync_dir", "read_rows", "row_bytes", "vectors_path"]

#: Row storage types by the name ``flow.yml`` uses, and their files' suffixes.
ROW_TYPES = {"float32": (np.float32, "f32"), "float16": (np.float16, "f16")}


def vectors_path(workspace: Path, generation: int, dtype: str) -> Path:
    """The vector file of ``generation`` storing rows as ``dtype``."""
    return workspace / f"vectors.{generation}.{ROW_TYPES[dtype][1]}"


def row_bytes(dtype: str, dim: int) -> int:
    """Bytes one row of ``dim`` values takes in a file of ``dtype`` rows."""
    return np.dtype(ROW_TYPES[dtype][0]).itemsize * dim


def fsync_dir(path: Path) -> None:
    """Make the names of the files in folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(path: Path, dtype: str, dim: int, first: int, count: int) -> np.ndarray:
    """Rows ``first .. first + count - 1`` of the vector file ``path``, as float32, without
    mapping it (FileNotFoundError if it is gone)."""
    size = row_bytes(dtype, dim)
    with open(path, "rb") as f:
        f.seek(first * size)
        data = f.read(count * size)
    return np.frombuffer(data, dtype=ROW_TYPES[dtype][0]).reshape(count, -1).astype(np.float32)


class VectorFile:
    """The current generation's vector file: its committed rows, memory-mapped read-only as
    :attr:`matrix`. ``dim`` is None until the first rows are written."""

    def __init__(
        self, workspace: Path, *, generation: int, dtype: str, dim: int | None, rows: int
    ) -> None:
        self.workspace = workspace
        self.generation, self.dtype, self.dim, self.rows = generation, dtype, dim, rows
        self.matrix = np.empty((0, dim or 0), dtype=ROW_TYPES[dtype][0])

    @property
    def path(self) -> Path:
        """The current generation's file."""
        return vectors_path(self.workspace, self.generation, self.dtype)

    @property
    def row_bytes(self) -> int:
        """Bytes per stored row."""
        return row_bytes(self.dtype, self.dim or 0)

    def cut_uncommitted_tail(self) -> None:
        """Cut rows past the committed count (left by a crash before the commit); raise
        :class:`IndexMismatchError` if committed rows are missing."""
        path, committed = self.path, self.rows * self.row_bytes
        if path.exists() and path.stat().st_size > committed:
            with open(path, "r+b") as f:
                f.truncate(committed)
                os.fsync(f.fileno())
        elif committed and not (path.exists() and path.stat().st_size == committed):
            raise IndexMismatchError(
                f"{path} is missing or shorter than the {self.rows} rows the index commits; "
                "the workspace was damaged outside audiosearch: index again into a new one"
            )

    def map(self) -> None:
        """Map the committed rows as :attr:`matrix`."""
        row_type = ROW_TYPES[self.dtype][0]
        if not self.rows:
            self.matrix = np.empty((0, self.dim or 0), dtype=row_type)
            return
        with open(self.path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), self.rows * self.row_bytes, access=mmap.ACCESS_READ)
        mapped.madvise(mmap.MADV_WILLNEED)  # start reading it in now, not at the first search
        self.matrix = np.frombuffer(mapped, dtype=row_type).reshape(self.rows, self.dim)

    def count_committed(self, rows: int, dim: int) -> None:
        """The catalog now commits ``rows`` rows of width ``dim``: map them."""
        self.rows, self.dim = rows, dim
        self.map()

    def float_rows(self, rows: np.ndarray) -> np.ndarray:
        """Stored ``rows`` as float32."""
        return np.asarray(self.matrix[rows], dtype=np.float32)

    def append(self, vectors: np.ndarray) -> None:
        """Write ``vectors`` after the committed rows and fsync them (and the folder, for a new
        file). They count only once the catalog commits the new row count."""
        row_type = ROW_TYPES[self.dtype][0]
        with open(self.path, "ab") as f:
            f.truncate(self.rows * row_bytes(self.dtype, vectors.shape[1]))  # a failed add's tail
            f.write(vectors.astype(row_type).tobytes())
            f.flush()
            os.fsync(f.fileno())
        if not self.rows:
            fsync_dir(self.workspace)  # the file is new: make its name durable too

    def write_next_generation(self, alive: np.ndarray, dtype: str) -> None:
        """Copy rows ``alive`` (as ``dtype``) to the next generation's file and fsync it; the
        catalog switches to it, then :meth:`switch_to_next`."""
        with open(vectors_path(self.workspace, self.generation + 1, dtype), "wb") as f:
            for block in row_blocks(alive):
                f.write(np.asarray(self.matrix[block], dtype=ROW_TYPES[dtype][0]).tobytes())
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(self.workspace)

    def switch_to_next(self, rows: int, dtype: str) -> None:
        """Map the next generation's file of ``rows`` rows and delete the current one."""
        old = self.path
        self.generation, self.rows, self.dtype = self.generation + 1, rows, dtype
        self.map()
        old.unlink()
