"""The catalog: ``index.sqlite`` holds the settings and one row per clip.

The settings record the encoder, vector width, row type, shard, the vector file's generation and
how many of its rows are committed. A clip's row names its uri, fingerprint, duration, its first
row in the vector file, its chunk count and its chunks' times (a float64 blob). WAL journal and
``synchronous=FULL``: a commit is on disk when it returns.
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from audiosearch.errors import AudioSearchError, IndexMismatchError, InvalidInputError
from audiosearch.index.layout import ClipRows, chunk_times

__all__ = [
    "AddResult",
    "Catalog",
    "ClipInfo",
    "ClipToAdd",
    "IndexLockedError",
    "StoredSettings",
    "check_offset",
    "clip_shard",
    "committed_clip",
    "lock_workspace",
    "uri_shard",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY,
    uri TEXT NOT NULL UNIQUE,
    fingerprint TEXT,
    duration REAL NOT NULL,
    indexed_at REAL NOT NULL,
    first_row INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    times BLOB NOT NULL
);
"""
#: The columns of a ClipInfo, in its fields' order.
_INFO_COLUMNS = "id, uri, duration, chunk_count, indexed_at, fingerprint"
_SET = "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)"


class IndexLockedError(AudioSearchError):
    """Another process has the workspace open."""


@dataclass(frozen=True)
class ClipToAdd:
    """One decoded, encoded clip ready to be stored."""

    uri: str
    duration: float
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    #: Identifies the file's state (size and modification time); equal means unchanged.
    fingerprint: str | None = None


@dataclass(frozen=True)
class AddResult:
    """What happened to one clip: ``added``, ``replaced`` (its file changed) or ``unchanged``."""

    clip_id: int
    status: str


@dataclass(frozen=True)
class ClipInfo:
    """What the index knows of one stored clip."""

    clip_id: int
    uri: str
    duration: float
    chunk_count: int
    #: When the clip was stored, unix seconds.
    indexed_at: float
    fingerprint: str | None


@dataclass(frozen=True)
class StoredSettings:
    """The index's committed settings: its row type, encoder and vector width (None before the
    first add), the vector file's generation and how many of its rows are committed."""

    dtype: str
    encoder: str | None
    dim: int | None
    generation: int
    rows: int

    @classmethod
    def parse(cls, settings: dict[str, str]) -> StoredSettings:
        """The settings table's ``key -> value`` rows, typed."""
        return cls(
            settings["dtype"], settings.get("encoder"),
            int(settings["dim"]) if "dim" in settings else None,
            int(settings.get("generation", 0)), int(settings.get("rows", 0)),
        )  # fmt: skip


def check_offset(offset: object) -> int:
    """``offset`` as an int >= 0, or :class:`InvalidInputError` saying what to send."""
    if isinstance(offset, float) and offset.is_integer():
        offset = int(offset)  # JSON parameters travel through protobuf as floats
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInputError(f"offset={offset!r}: expected a whole number >= 0; try offset=0")
    return offset


def uri_shard(uri: str, shards: int) -> int:
    """The shard that stores ``uri``: a hash that is the same in every process."""
    return zlib.crc32(uri.encode()) % shards


def clip_shard(clip_id: int, shards: int) -> int:
    """The shard that stores clip ``clip_id`` (ids are allocated ``shard + shards * n``)."""
    return clip_id % shards


def lock_workspace(workspace: Path) -> IO[str]:
    """An open file holding an exclusive lock on ``workspace`` (released when closed or killed)."""
    handle = open(workspace / "lock", "w")  # noqa: SIM115 - held open for the index's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise IndexLockedError(
            f"{workspace} is open in another process (an indexer replica, or a second server); "
            "scale the indexer with shards, not replicas, and give each server its own workspace"
        ) from None
    return handle


class Catalog:
    """The open ``index.sqlite`` of ``workspace``, shard ``shard`` of ``shards``.

    One connection; callers that share it between threads serialise its use.
    """

    def __init__(self, workspace: Path, *, shard: int, shards: int) -> None:
        self.workspace, self.shard, self.shards = workspace, shard, shards
        self.db = sqlite3.connect(workspace / "index.sqlite", check_same_thread=False)
        #: The sequence number of the next new clip (its id is ``shard + shards * next_seq``).
        self.next_seq = 1

    def open_settings(self, dtype: str) -> StoredSettings:
        """Create the tables, check they are of this version, record the settings of a new
        index and return the stored ones (IndexMismatchError for another shard layout)."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._check_version()
        with self.db:
            for key, value in (("dtype", dtype), ("shard", self.shard), ("shards", self.shards)):
                self.db.execute(
                    "INSERT OR IGNORE INTO settings(key, value) VALUES (?, ?)", (key, str(value))
                )
        settings = dict(self.db.execute("SELECT key, value FROM settings"))
        stored = int(settings["shard"]), int(settings["shards"])
        if stored != (self.shard, self.shards):
            raise IndexMismatchError(
                f"the index in {self.workspace} is shard {stored[0]} of {stored[1]}, not "
                f"{self.shard} of {self.shards}; set the indexer's shards back to {stored[1]}, "
                "or use a new workspace and index again"
            )
        self.next_seq = int(settings.get("next_seq", 1))
        return StoredSettings.parse(settings)

    def _check_version(self) -> None:
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(clips)")}
        if "first_row" not in columns:
            raise IndexMismatchError(
                f"the index in {self.workspace} was written by an older version of audiosearch; "
                "use a new workspace and index the files again"
            )

    def clip_layout(self, row_count: int) -> ClipRows:
        """Where the stored clips lie among the vector file's ``row_count`` committed rows."""
        rows = self.db.execute(
            "SELECT id, first_row, chunk_count, duration, uri, times FROM clips ORDER BY first_row"
        ).fetchall()
        clips = ClipRows(
            np.array([c[0] for c in rows], dtype=np.int64),
            np.array([c[1] for c in rows], dtype=np.int64),
            np.array([c[2] for c in rows], dtype=np.int64),
            np.array([c[3] for c in rows], dtype=np.float64),
            np.array([c[4] for c in rows], dtype=object),
            np.zeros((row_count, 2)),
        )
        clips.times[clips.alive_rows()] = np.frombuffer(
            b"".join(c[5] for c in rows), dtype=np.float64
        ).reshape(-1, 2)
        return clips

    def find(self, uri: str) -> ClipInfo | None:
        """The clip stored for ``uri``, or None."""
        row = self.db.execute(f"SELECT {_INFO_COLUMNS} FROM clips WHERE uri = ?", (uri,)).fetchone()
        return None if row is None else ClipInfo(*row)

    def get(self, clip_id: int) -> ClipInfo | None:
        """Clip ``clip_id``, or None."""
        row = self.db.execute(
            f"SELECT {_INFO_COLUMNS} FROM clips WHERE id = ?", (clip_id,)
        ).fetchone()
        return None if row is None else ClipInfo(*row)

    def page(self, offset: int, limit: int | None) -> list[ClipInfo]:
        """Clips ordered by id, ``limit`` of them (all if None) from ``offset``."""
        rows = self.db.execute(
            f"SELECT {_INFO_COLUMNS} FROM clips ORDER BY id LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        ).fetchall()
        return [ClipInfo(*row) for row in rows]

    def commit_add(
        self, todo: Sequence[tuple[ClipToAdd, int | None]], first_row: int, *, encoder: str,
        dim: int,
    ) -> list[AddResult]:  # fmt: skip
        """In one transaction: store ``todo`` (each clip with the id of the version it replaces,
        or None) from row ``first_row`` on, and the new row count; a replaced clip keeps its id."""
        now = time.time()
        results, row = [], first_row
        with self.db:  # one transaction: all of this request's clips appear together
            for clip, old_id in todo:
                if old_id is None:
                    clip_id = self.shard + self.shards * self.next_seq
                    self.next_seq += 1
                else:  # a changed file keeps its id; its old chunks go
                    self.db.execute("DELETE FROM clips WHERE id = ?", (old_id,))
                    clip_id = old_id
                times = chunk_times(clip.starts, clip.ends)
                self.db.execute(
                    "INSERT INTO clips(id, uri, fingerprint, duration, indexed_at, first_row, "
                    "chunk_count, times) VALUES (?,?,?,?,?,?,?,?)",
                    (clip_id, clip.uri, clip.fingerprint, clip.duration, now, row,
                     len(times), times.tobytes()),
                )  # fmt: skip
                row += len(times)
                results.append(AddResult(clip_id, "added" if old_id is None else "replaced"))
            self.db.executemany(
                _SET, [("encoder", encoder), ("dim", str(dim)), ("rows", str(row)),
                       ("next_seq", str(self.next_seq))],
            )  # fmt: skip
        return results

    def commit_delete(self, clip_ids: Sequence[int]) -> None:
        """Delete these clips in one transaction (their rows become dead)."""
        with self.db:
            self.db.executemany("DELETE FROM clips WHERE id = ?", [(c,) for c in clip_ids])

    def commit_compaction(
        self, clip_ids: np.ndarray, first_rows: np.ndarray, generation: int, rows: int, dtype: str
    ) -> None:
        """Switch to vector file ``generation`` of ``rows`` rows of ``dtype``, where each clip
        starts at its new first row, in one transaction."""
        with self.db:
            self.db.executemany(
                "UPDATE clips SET first_row = ? WHERE id = ?",
                zip(first_rows.tolist(), clip_ids.tolist(), strict=True),
            )
            self.db.executemany(
                _SET, [("generation", str(generation)), ("rows", str(rows)), ("dtype", dtype)]
            )

    def close(self) -> None:
        """Close the connection."""
        self.db.close()


@contextmanager
def committed_clip(database: Path, clip_id: int) -> Iterator[tuple[StoredSettings, tuple] | None]:
    """The settings and the row ``(id, uri, duration, chunk_count, indexed_at, fingerprint,
    first_row, times)`` of clip ``clip_id`` (None if absent), from one read-only snapshot of
    ``database`` that stays open in the ``with`` block, so the rows it names can be read."""
    db = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        db.execute("BEGIN")  # one read transaction: the clip and its rows agree
        settings = dict(db.execute("SELECT key, value FROM settings"))
        row = db.execute(
            f"SELECT {_INFO_COLUMNS}, first_row, times FROM clips WHERE id = ?", (clip_id,)
        ).fetchone()
        yield None if row is None else (StoredSettings.parse(settings), row)
    finally:
        db.close()
