"""A persistent cosine index of chunk vectors grouped by clip, with exact or approximate search.

Layout under the workspace directory:

- ``index.sqlite``: settings and one row per clip (WAL journal, synchronous=FULL). A clip's
  chunk vectors are rows ``first_row .. first_row + chunk_count - 1`` of the vectors file; its
  chunks' start and end times are a float64 blob.
- ``vectors.<generation>.f32`` (or ``.f16``): L2-normalised rows, appended, memory-mapped, so
  opening costs no copy however large the file.
- ``ann.<generation>.faiss``: the approximate index over those rows (``ann`` settings only); a
  cache, brought up to date when it opens.

Adding clips appends their vectors and fsyncs the file, then commits one SQLite transaction that
makes the clips and the new row count visible together; rows past the committed count (left by a
crash between the two steps) are cut off when the index opens, so a clip is either entirely
present or absent. Deleted and replaced clips leave dead rows; once they are as many as the live
ones, the live rows are copied to the next generation's file, switched to in one transaction.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import sqlite3
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path

import numpy as np

from audiosearch.ann import TRAIN_POINTS_PER_LIST, IvfCandidates, list_count
from audiosearch.errors import AudioSearchError, IndexMismatchError, InvalidInputError
from audiosearch.feedback import (
    CANDIDATES,
    DISLIKE_SEED,
    SPREAD_WEIGHT,
    Judgments,
    best_pair_similarity,
    spread,
)
from audiosearch.paths import same_content
from audiosearch.rank import ChunkHit, ClipMatch

#: Row storage types by the name ``flow.yml`` uses, and their files' suffixes.
ROW_TYPES = {"float32": (np.float32, "f32"), "float16": (np.float16, "f16")}
#: Scores of one block of query chunks against every row are kept to about this size.
_SCORE_BLOCK_BYTES = 64 << 20
#: Rows copied or handed to the ANN index at a time.
_ROW_BLOCK = 1 << 16
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


class IndexWriteError(AudioSearchError):
    """The index's files could not be written: a full disk, a read-only folder."""


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
class StoredClip:
    """A clip as committed: its facts, and its chunks' times and unit vectors (float32)."""

    info: ClipInfo
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    encoder: str


@dataclass(frozen=True)
class ClipFilter:
    """Which clips a search may return; None leaves a bound open."""

    min_duration: float | None = None
    max_duration: float | None = None
    #: fnmatch pattern the whole uri must match (case-sensitive), e.g. ``*/drums/*.wav``.
    path_glob: str | None = None


@dataclass(frozen=True)
class AnnSettings:
    """When and how searches are answered approximately (see :mod:`audiosearch.ann`)."""

    #: Below this many chunks the exact search is fast enough and no ANN index is kept.
    min_chunks: int = 100_000
    #: Clusters scanned per query chunk: more is slower and finds more of the true neighbours.
    nprobe: int = 16
    #: Candidate chunks per requested clip, scored exactly, then collapsed to their clips.
    candidates_per_clip: int = 16


def check_offset(offset: object) -> int:
    """``offset`` as an int >= 0, or :class:`InvalidInputError` saying what to send."""
    if isinstance(offset, float) and offset.is_integer():
        offset = int(offset)  # JSON parameters travel through protobuf as floats
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInputError(f"offset={offset!r}: expected a whole number >= 0; try offset=0")
    return offset


def _check_number(name: str, value: object, lo: float, hi: float, example: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        expected = f"from {lo:g} to {hi:g}" if hi < np.inf else f">= {lo:g}"
        raise InvalidInputError(
            f"{name}={value!r}: expected a number {expected}; try {name}={example}"
        )
    return float(value)


def check_min_score(min_score: object) -> float | None:
    """``min_score`` as a float in -1..1 (cosine), None if not given."""
    return _check_number("min_score", min_score, -1.0, 1.0, "0.5")


def check_clip_filter(
    min_duration: object = None, max_duration: object = None, path_glob: object = None
) -> ClipFilter | None:
    """The filter these request parameters describe (None if none), or InvalidInputError."""
    low = _check_number("min_duration", min_duration, 0.0, np.inf, "2")
    high = _check_number("max_duration", max_duration, 0.0, np.inf, "30")
    if low is not None and high is not None and low > high:
        raise InvalidInputError(
            f"min_duration={low:g} > max_duration={high:g}: no clip can match; swap them"
        )
    if path_glob is not None and (not isinstance(path_glob, str) or not path_glob):
        raise InvalidInputError(
            f"path_glob={path_glob!r}: expected an fnmatch pattern on the path; try "
            "path_glob='*/drums/*'"
        )
    if low is None and high is None and path_glob is None:
        return None
    return ClipFilter(low, high, path_glob)  # type: ignore[arg-type]


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32 (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def uri_shard(uri: str, shards: int) -> int:
    """The shard that stores ``uri``: a hash that is the same in every process."""
    return zlib.crc32(uri.encode()) % shards


def clip_shard(clip_id: int, shards: int) -> int:
    """The shard that stores clip ``clip_id`` (ids are allocated ``shard + shards * n``)."""
    return clip_id % shards


class ChunkIndex:
    """Cosine search over chunk vectors, persisted under ``workspace``.

    ``encoder`` ("name/version") and ``dim`` are recorded by the first clip added; later adds and
    searches with another encoder raise :class:`IndexMismatchError`. ``dtype`` is how rows are
    stored (``float16`` halves the memory; an index stored otherwise is converted on opening).
    ``shard`` of ``shards`` fixes the clip ids this index allocates, so they stay unique across
    the shards of one library. ``ann`` answers searches of large indexes approximately. One
    process at a time may open a workspace; within it the index is safe to share between threads.
    """

    def __init__(
        self,
        workspace: str | Path,
        *,
        dtype: str = "float32",
        shard: int = 0,
        shards: int = 1,
        ann: AnnSettings | None = None,
    ) -> None:
        if dtype not in ROW_TYPES:
            raise InvalidInputError(f"dtype={dtype!r}: expected float32 or float16")
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock(self.workspace)
        self._db = sqlite3.connect(self.workspace / "index.sqlite", check_same_thread=False)
        try:
            self._open(dtype, shard, shards, ann)
        except BaseException:
            self._db.close()
            self._lock_file.close()
            raise

    def _open(self, dtype: str, shard: int, shards: int, ann: AnnSettings | None) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._check_layout()
        self._lock = threading.RLock()
        with self._db:
            for key, value in (("dtype", dtype), ("shard", shard), ("shards", shards)):
                self._db.execute(
                    "INSERT OR IGNORE INTO settings(key, value) VALUES (?, ?)", (key, str(value))
                )
        settings = dict(self._db.execute("SELECT key, value FROM settings"))
        self.encoder: str | None = settings.get("encoder")
        self.dim: int | None = int(settings["dim"]) if "dim" in settings else None
        self.dtype: str = settings["dtype"]
        self.shard, self.shards = int(settings["shard"]), int(settings["shards"])
        if (self.shard, self.shards) != (shard, shards):
            raise IndexMismatchError(
                f"the index in {self.workspace} is shard {self.shard} of {self.shards}, not "
                f"{shard} of {shards}; set the indexer's shards back to {self.shards}, or use a "
                "new workspace and index again"
            )
        self._generation = int(settings.get("generation", 0))
        self._rows = int(settings.get("rows", 0))
        self._next_seq = int(settings.get("next_seq", 1))
        self._ann_settings = ann
        self._ann: IvfCandidates | None = None
        self._ann_changed = False
        self._load()
        if self.dtype != dtype:
            self._compact(dtype)
        else:
            self._compact_if_sparse()
        self._sync_ann()

    # ----------------------------------------------------------------- loading
    def _check_layout(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(clips)")}
        if "first_row" not in columns:
            raise IndexMismatchError(
                f"the index in {self.workspace} was written by an older version of audiosearch; "
                "use a new workspace and index the files again"
            )

    def _vectors_path(self, generation: int | None = None, dtype: str | None = None) -> Path:
        generation = self._generation if generation is None else generation
        return self.workspace / f"vectors.{generation}.{ROW_TYPES[dtype or self.dtype][1]}"

    def _ann_path(self) -> Path:
        return self.workspace / f"ann.{self._generation}.faiss"

    @property
    def _row_bytes(self) -> int:
        return np.dtype(ROW_TYPES[self.dtype][0]).itemsize * (self.dim or 0)

    def _load(self) -> None:
        """Map the committed rows and read the clips, dropping what no commit refers to."""
        path = self._vectors_path()
        committed = self._rows * self._row_bytes
        if path.exists() and path.stat().st_size > committed:
            with open(path, "r+b") as f:  # the tail of an add that never committed
                f.truncate(committed)
                os.fsync(f.fileno())
        elif committed and not (path.exists() and path.stat().st_size == committed):
            raise IndexMismatchError(
                f"{path} is missing or shorter than the {self._rows} rows the index commits; "
                "the workspace was damaged outside audiosearch: index again into a new one"
            )
        for stale in [*self.workspace.glob("vectors.*"), *self.workspace.glob("ann.*")]:
            if stale not in (path, self._ann_path()):  # from an interrupted compaction or save
                stale.unlink()
        self._map_vectors()
        clips = self._db.execute(
            "SELECT id, first_row, chunk_count, duration, uri, times FROM clips ORDER BY first_row"
        ).fetchall()
        self._ids = np.array([c[0] for c in clips], dtype=np.int64)
        self._first = np.array([c[1] for c in clips], dtype=np.int64)
        self._count = np.array([c[2] for c in clips], dtype=np.int64)
        self._duration = np.array([c[3] for c in clips], dtype=np.float64)
        self._uri_of = {c[0]: c[4] for c in clips}
        self._times = np.zeros((self._rows, 2))
        self._times[self._alive_rows()] = np.frombuffer(
            b"".join(c[5] for c in clips), dtype=np.float64
        ).reshape(-1, 2)
        self._refresh_segments()

    def _map_vectors(self) -> None:
        """``self._matrix``: the committed rows, memory-mapped read-only."""
        row_type = ROW_TYPES[self.dtype][0]
        if not self._rows:
            self._matrix = np.empty((0, self.dim or 0), dtype=row_type)
            return
        with open(self._vectors_path(), "rb") as f:
            mapped = mmap.mmap(f.fileno(), self._rows * self._row_bytes, access=mmap.ACCESS_READ)
        mapped.madvise(mmap.MADV_WILLNEED)  # start reading it in now, not at the first search
        self._matrix = np.frombuffer(mapped, dtype=row_type).reshape(self._rows, self.dim)

    def _alive_rows(self) -> np.ndarray:
        """The rows of every stored clip, in file order."""
        if not len(self._count):
            return np.empty(0, dtype=np.int64)
        offsets = np.repeat(self._first - np.cumsum(self._count) + self._count, self._count)
        return np.arange(int(self._count.sum()), dtype=np.int64) + offsets

    def _refresh_segments(self) -> None:
        # Scores are reduced over segments: each clip's rows, and each run of dead rows between
        # them. `_seg_clip` is the clip's position in `_ids`, or -1 for dead rows.
        ends = self._first + self._count
        starts = np.union1d(self._first, ends[ends < self._rows])
        if self._rows and (not len(starts) or starts[0] != 0):
            starts = np.concatenate([[0], starts])
        self._seg_starts = starts.astype(np.int64)
        self._seg_ends = np.append(starts[1:], self._rows).astype(np.int64)
        self._seg_clip = np.full(len(starts), -1, dtype=np.int64)
        self._seg_of_clip = np.searchsorted(starts, self._first)
        self._seg_clip[self._seg_of_clip] = np.arange(len(self._ids))

    # ------------------------------------------------------------------ facts
    def __len__(self) -> int:
        """Number of clips in the index."""
        return len(self._ids)

    @property
    def chunk_count(self) -> int:
        """Number of chunk vectors searched."""
        return int(self._count.sum())

    def owns_uri(self, uri: str) -> bool:
        """Whether ``uri`` belongs in this shard."""
        return uri_shard(uri, self.shards) == self.shard

    def owns_clip(self, clip_id: int) -> bool:
        """Whether clip ``clip_id`` would be stored in this shard."""
        return clip_shard(clip_id, self.shards) == self.shard

    def find(self, uri: str) -> ClipInfo | None:
        """The clip stored for ``uri``, or None."""
        with self._lock:  # the connection is shared: never read another thread's open write
            row = self._db.execute(
                f"SELECT {_INFO_COLUMNS} FROM clips WHERE uri = ?", (uri,)
            ).fetchone()
        return None if row is None else ClipInfo(*row)

    def get(self, clip_id: int) -> ClipInfo | None:
        """Clip ``clip_id``, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_INFO_COLUMNS} FROM clips WHERE id = ?", (clip_id,)
            ).fetchone()
        return None if row is None else ClipInfo(*row)

    def clips(self, *, offset: int = 0, limit: int | None = None) -> list[ClipInfo]:
        """Stored clips ordered by id, ``limit`` of them (all if None) from ``offset``."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_INFO_COLUMNS} FROM clips ORDER BY id LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, offset),
            ).fetchall()
        return [ClipInfo(*row) for row in rows]

    def stats(self) -> dict[str, object]:
        """Counts and settings, for ``/stats``."""
        with self._lock:
            return {
                "clips": len(self),
                "chunks": self.chunk_count,
                "dead_chunks": self._rows - self.chunk_count,
                "audio_seconds": float(self._duration.sum()),
                "encoder": self.encoder,
                "dim": self.dim,
                "dtype": self.dtype,
                "vector_bytes": self._rows * self._row_bytes,
                "search": "ann" if self._ann is not None else "exact",
                "ann_clusters": self._ann.nlist if self._ann is not None else None,
                "shard": self.shard,
                "shards": self.shards,
            }

    def check_encoder(self, encoder: str, dim: int) -> None:
        """Raise :class:`IndexMismatchError` unless vectors of ``encoder``/``dim`` fit here."""
        if self.encoder is not None and (encoder != self.encoder or dim != self.dim):
            raise IndexMismatchError(
                f"the index in {self.workspace} holds {self.dim}-d vectors of encoder "
                f"'{self.encoder}', but this flow encodes with '{encoder}' ({dim}-d); set the "
                "encoder the index was built with, or use a new workspace and index again"
            )

    # ----------------------------------------------------------------- writing
    def add(self, clips: Sequence[ClipToAdd], *, encoder: str) -> list[AddResult]:
        """Store ``clips`` (skipping unchanged ones) and make them visible atomically.

        A clip whose uri is already stored with the same fingerprint is left as it is; one with
        another fingerprint (or none) is replaced and keeps no chunk of its old version.
        """
        with self._lock, self._writing():
            return self._add(clips, encoder)

    def _add(self, clips: Sequence[ClipToAdd], encoder: str) -> list[AddResult]:
        results: list[AddResult | None] = [None] * len(clips)
        todo: list[tuple[int, ClipToAdd, int | None]] = []
        first_of_uri: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []
        for i, clip in enumerate(clips):
            if clip.uri in first_of_uri:  # the same file twice in one request: store it once
                repeats.append((i, first_of_uri[clip.uri]))
                continue
            first_of_uri[clip.uri] = i
            if (
                clip.vectors.ndim != 2
                or len(clip.vectors) != len(clip.starts)
                or not len(clip.starts)
            ):
                raise InvalidInputError(
                    f"{clip.uri}: {len(clip.starts)} chunks but vectors of shape "
                    f"{clip.vectors.shape}; expected one vector per chunk"
                )
            self.check_encoder(encoder, clip.vectors.shape[1])
            known = self.find(clip.uri)
            if (
                known
                and None not in (known.fingerprint, clip.fingerprint)
                and same_content(known.fingerprint, clip.fingerprint)
            ):
                results[i] = AddResult(known.clip_id, "unchanged")
            else:
                todo.append((i, clip, known.clip_id if known else None))
        if todo:
            self._append(todo, results, encoder)
        for i, first in repeats:
            results[i] = AddResult(results[first].clip_id, "unchanged")  # type: ignore[union-attr]
        return results  # type: ignore[return-value]

    def _append(
        self,
        todo: list[tuple[int, ClipToAdd, int | None]],
        results: list[AddResult | None],
        encoder: str,
    ) -> None:
        dim = todo[0][1].vectors.shape[1]
        vectors = normalize_rows(np.concatenate([clip.vectors for _, clip, _ in todo]))
        first_row = self._rows
        row_type = ROW_TYPES[self.dtype][0]
        with open(self._vectors_path(), "ab") as f:
            f.truncate(first_row * np.dtype(row_type).itemsize * dim)  # a failed add's tail
            f.write(vectors.astype(row_type).tobytes())
            f.flush()
            os.fsync(f.fileno())
        if not first_row:
            _fsync_dir(self.workspace)  # the file is new: make its name durable too

        now = time.time()
        replaced: list[int] = []
        added: list[tuple[int, ClipToAdd]] = []
        row = first_row
        with self._db:  # one transaction: all of this request's clips appear together
            for i, clip, old_id in todo:
                if old_id is None:
                    clip_id = self.shard + self.shards * self._next_seq
                    self._next_seq += 1
                else:  # a changed file keeps its id; its old chunks go
                    self._db.execute("DELETE FROM clips WHERE id = ?", (old_id,))
                    clip_id = old_id
                    replaced.append(old_id)
                times = np.column_stack([clip.starts, clip.ends]).astype(np.float64)
                self._db.execute(
                    "INSERT INTO clips(id, uri, fingerprint, duration, indexed_at, first_row, "
                    "chunk_count, times) VALUES (?,?,?,?,?,?,?,?)",
                    (clip_id, clip.uri, clip.fingerprint, clip.duration, now, row,
                     len(times), times.tobytes()),
                )  # fmt: skip
                row += len(times)
                added.append((clip_id, clip))
                results[i] = AddResult(clip_id, "added" if old_id is None else "replaced")
            self._db.executemany(
                "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)",
                [("encoder", encoder), ("dim", str(dim)), ("rows", str(row)),
                 ("next_seq", str(self._next_seq))],
            )  # fmt: skip
        self.encoder, self.dim, self._rows = encoder, dim, row

        if replaced:
            self._forget(replaced)
        self._ids = np.append(self._ids, [clip_id for clip_id, _ in added])
        counts = [len(clip.starts) for _, clip in added]
        self._first = np.append(self._first, first_row + np.cumsum(counts) - counts)
        self._count = np.append(self._count, counts)
        self._duration = np.append(self._duration, [clip.duration for _, clip in added])
        self._uri_of.update((clip_id, clip.uri) for clip_id, clip in added)
        new_times = [np.column_stack([clip.starts, clip.ends]) for _, clip in added]
        self._times = np.concatenate([self._times, *new_times]).astype(np.float64)
        self._map_vectors()
        self._refresh_segments()
        if self._ann is not None:
            self._ann.add(vectors, np.arange(first_row, row))
            self._ann_changed = True
        self._compact_if_sparse()
        self._sync_ann()

    def delete(self, clip_ids: Sequence[int]) -> list[bool]:
        """Remove clips; for each id, whether it was stored."""
        with self._lock, self._writing():
            stored = [clip_id in self._uri_of for clip_id in clip_ids]
            doomed = sorted({c for c, was in zip(clip_ids, stored, strict=True) if was})
            if doomed:
                with self._db:
                    self._db.executemany("DELETE FROM clips WHERE id = ?", [(c,) for c in doomed])
                self._forget(doomed)
                self._compact_if_sparse()
                self._sync_ann()
            return stored

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write (a full disk, a read-only folder) into :class:`IndexWriteError`,
        which says whether the request's change took effect."""
        committed = self._committed_state()
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            done = self._committed_state() != committed
            raise IndexWriteError(
                f"the index in {self.workspace} could not be written ({reason}): "
                + (
                    "the request's change was made, but tidying the index afterwards failed"
                    if done
                    else "nothing of this request was stored or changed"
                )
                + "; free disk space (or make the folder writable) and send it again"
            ) from exc

    def _committed_state(self) -> tuple[int, int]:
        """Rows written and clips alive: what a committed add or delete changes."""
        return self._rows, len(self._ids)

    def _forget(self, clip_ids: Sequence[int]) -> None:
        """Drop deleted clips from memory (their rows stay in the file, dead)."""
        gone = np.isin(self._ids, clip_ids)
        if self._ann is not None:
            rows = self._alive_rows()[np.repeat(gone, self._count)]
            self._ann.remove(rows)
            self._ann_changed = True
        for name in ("_ids", "_first", "_count", "_duration"):
            setattr(self, name, getattr(self, name)[~gone])
        for clip_id in clip_ids:
            self._uri_of.pop(clip_id, None)
        self._refresh_segments()

    def _compact_if_sparse(self) -> None:
        if self._rows and self._rows - self.chunk_count >= self.chunk_count:
            self._compact(self.dtype)

    def _compact(self, dtype: str) -> None:
        """Copy the live rows (as ``dtype``) to the next generation's file and switch to it."""
        generation = self._generation + 1
        path = self._vectors_path(generation, dtype)
        alive = self._alive_rows()
        with open(path, "wb") as f:
            for block in _blocks(alive):
                f.write(np.asarray(self._matrix[block], dtype=ROW_TYPES[dtype][0]).tobytes())
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(self.workspace)
        first = np.cumsum(self._count) - self._count
        with self._db:
            self._db.executemany(
                "UPDATE clips SET first_row = ? WHERE id = ?",
                zip(first.tolist(), self._ids.tolist(), strict=True),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)",
                [("generation", str(generation)), ("rows", str(len(alive))), ("dtype", dtype)],
            )
        old_vectors, old_ann = self._vectors_path(), self._ann_path()
        self._generation, self._rows, self.dtype, self._first = generation, len(alive), dtype, first
        self._times = self._times[alive]
        self._map_vectors()
        self._refresh_segments()
        old_vectors.unlink()
        old_ann.unlink(missing_ok=True)
        if self._ann is not None:  # row numbers changed: same clusters, rows added again
            self._ann.index.reset()
            self._add_rows_to_ann(self._alive_rows())

    # -------------------------------------------------------------------- ANN
    def _sync_ann(self) -> None:
        """Build, load, retrain or drop the ANN index as the settings and the size require."""
        settings = self._ann_settings
        if settings is None or self.chunk_count < settings.min_chunks:
            self._ann = None
            return
        if self._ann is None and self._ann_path().exists():
            self._ann = IvfCandidates.load(self._ann_path(), nprobe=settings.nprobe)
            held, alive = self._ann.rows(), self._alive_rows()
            self._ann.remove(np.setdiff1d(held, alive))  # changed since it was saved
            self._add_rows_to_ann(np.setdiff1d(alive, held))
        if self._ann is None or self.chunk_count > 4 * self._ann.nlist**2:
            self._build_ann()

    def _build_ann(self) -> None:
        """Fit clusters to a sample of the live rows, then add them all."""
        alive = self._alive_rows()
        nlist = list_count(len(alive))
        rng = np.random.default_rng(0)
        size = min(len(alive), nlist * TRAIN_POINTS_PER_LIST)
        sample = np.sort(rng.choice(alive, size, replace=False))
        self._ann = IvfCandidates.train(
            self._float_rows(sample), nlist=nlist, nprobe=self._ann_settings.nprobe
        )
        self._add_rows_to_ann(alive)
        self.save_ann()  # building takes a while; a restart should not have to repeat it

    def _add_rows_to_ann(self, rows: np.ndarray) -> None:
        for block in _blocks(rows):
            self._ann.add(self._float_rows(block), block)  # type: ignore[union-attr]
        self._ann_changed = True

    def save_ann(self) -> None:
        """Write the ANN index to disk if it changed, so the next start need not rebuild it."""
        with self._lock:
            if self._ann is not None and self._ann_changed:
                self._ann.save(self._ann_path())
                self._ann_changed = False

    # ----------------------------------------------------------------- reading
    def search(
        self,
        queries: np.ndarray,
        *,
        limit: int,
        encoder: str,
        exclude: int | None = None,
        where: ClipFilter | None = None,
        expand: bool = False,
    ) -> list[list[ChunkHit]]:
        """For each query vector, the ``limit`` clips whose best chunk is most similar.

        Every stored chunk is scored by cosine similarity, each clip keeps its best chunk, and
        the clips are ranked by that score, highest first. ``exclude`` (a clip id) and ``where``
        leave clips out before ranking. With ANN
        settings, a large index scores only candidate chunks; a query whose candidates hold too
        few clips that pass ``where`` is searched exactly.

        ``expand`` (average query expansion): each query vector is searched once for its
        nearest chunk that passes ``where``, then replaced by the normalised sum of itself and
        that chunk's stored vector and searched again; scores are cosines with the expanded
        query. The nearest chunk is usually a clip of the same kind of sound, so the sum leans
        towards what the library's recordings of that sound share (bench/quality.py measures
        the gain). ``exclude`` applies to the second search only: an indexed clip searched by
        its id is its own nearest chunk, as it is when searched by its file, so both searches
        rank alike (expansion changes nothing for a query already in the library).
        """
        queries = normalize_rows(np.atleast_2d(queries))
        with self._lock:
            if not len(self._ids):
                return [[] for _ in queries]
            self.check_encoder(encoder, queries.shape[1])
            passing = self._allowed_segments(where)
            allowed = passing if exclude is None else passing & self._segments_not_of(exclude)
            k = min(limit, int(allowed.sum()))
            if not k:
                return [[] for _ in queries]
            if expand:  # ``exclude`` is not applied here: see the docstring
                near = self._tops(queries, 1, passing)
                queries = normalize_rows(
                    queries + self._float_rows(np.array([r[0] for _, r, _ in near]))
                )
            return [self._hits(*top) for top in self._tops(queries, k, allowed)]

    def search_judged(
        self,
        queries: np.ndarray,
        query_times: np.ndarray,
        *,
        judgments: Judgments,
        liked_audio: Sequence[np.ndarray] = (),
        limit: int,
        encoder: str,
        exclude: int | None = None,
        where: ClipFilter | None = None,
        expand: bool = False,
    ) -> list[ClipMatch]:
        """The clips ranked for ``queries`` (chunk vectors, timed by ``query_times``; may be
        empty: "more like these") refined by the user's judgments (:mod:`audiosearch.feedback`).

        Liked examples are the liked clips and ``liked_audio`` (chunk vectors of liked clips
        given as audio). A clip's score for the query is the cosine of the query expanded with
        its nearest chunk not of a disliked clip (``expand``), plus its best cosine with a
        liked example; the ``CANDIDATES`` best unjudged clips then get the judgments' spread
        added. Liked clips come first (``judged="like"``, not counted in ``limit``); disliked
        clips are left out. Two passes over the rows, as a plain search with expansion.
        """
        with self._lock:
            for vectors in (queries, *liked_audio):
                if len(vectors):
                    self.check_encoder(encoder, vectors.shape[1])
            liked, disliked = self._clip_positions(judgments)
            if not len(self._ids):
                return []
            segs = self._seg_of_clip
            passing = self._allowed_segments(where) & (self._seg_clip >= 0)
            usable = passing if exclude is None else passing & self._segments_not_of(exclude)
            examples = [self._float_rows(self._rows_of(segs[i])) for i in liked]
            examples += [normalize_rows(v) for v in liked_audio]
            # Each liked example enters the pass over the rows as its mean direction: one
            # vector, not one per chunk, so a search with judgments costs about what one
            # without does; the graph below compares the candidates with every chunk.
            centres = [normalize_rows(e.mean(axis=0, keepdims=True)) for e in examples]
            queries = normalize_rows(queries) if len(queries) else queries
            not_disliked = passing.copy()
            not_disliked[segs[disliked]] = False  # expansion leans away from what was refused
            first, nearest = self._best_per_segment(
                np.concatenate([queries, *centres]) if examples else queries, not_disliked
            )
            score = np.zeros(len(self._seg_starts))
            if examples:
                score += first[len(queries) :].max(axis=0)
            if len(queries):
                if expand:
                    queries = normalize_rows(queries + self._float_rows(nearest[: len(queries)]))
                    query_best = self._best_per_segment(queries)[0]
                else:
                    query_best = first[: len(queries)]
                score += query_best.max(axis=0)
            judged = np.zeros(len(score), dtype=bool)
            judged[segs[np.concatenate([liked, disliked]).astype(np.int64)]] = True
            order = self._judged_order(score, usable & ~judged, examples, segs[disliked], limit)
            shown = liked[usable[segs[liked]]]  # liked clips the filters let through
            hits = [self._judged_hit(segs[i], score[segs[i]], queries, query_times, "like")
                    for i in shown[np.argsort(-score[segs[shown]], kind="stable")]]  # fmt: skip
            hits += [self._judged_hit(seg, value, queries, query_times) for seg, value in
                     order[:limit]]  # fmt: skip
            return hits

    def _clip_positions(self, judgments: Judgments) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``_ids`` of the liked and the disliked clips; InvalidInputError naming
        a clip that is not in the index."""
        found = []
        for name, ids in (("like", judgments.liked), ("unlike", judgments.disliked)):
            positions = [np.flatnonzero(self._ids == clip_id) for clip_id in ids]
            for clip_id, where in zip(ids, positions, strict=True):
                if not where.size:
                    raise InvalidInputError(
                        f"{name}: clip_id={clip_id} is not in the index; judge clips the "
                        "search returned (/list shows the library)"
                    )
            found.append(np.array([int(where[0]) for where in positions], dtype=np.int64))
        return found[0], found[1]

    def _row_span(self, seg: int) -> tuple[int, int]:
        return int(self._seg_starts[seg]), int(self._seg_ends[seg])

    def _rows_of(self, seg: int) -> np.ndarray:
        return np.arange(*self._row_span(seg))

    def _best_per_segment(
        self, vectors: np.ndarray, nearest_in: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each vector's best score in every segment, and its nearest row in the segments
        ``nearest_in`` (all); one pass over the rows, in blocks of vectors."""
        best = np.full((len(vectors), len(self._seg_starts)), -np.inf, dtype=np.float32)
        nearest = np.zeros(len(vectors), dtype=np.int64)
        if nearest_in is not None:
            outside = np.repeat(~nearest_in, self._seg_ends - self._seg_starts)
        per_block = max(1, _SCORE_BLOCK_BYTES // (4 * max(self._rows, 1)))
        for lo in range(0, len(vectors), per_block):
            scores = self._scores(vectors[lo : lo + per_block])
            best[lo : lo + per_block] = np.maximum.reduceat(scores, self._seg_starts, axis=1)
            if nearest_in is not None:
                scores[:, outside] = -np.inf
            nearest[lo : lo + per_block] = scores.argmax(axis=1)
        return best, nearest

    def _judged_order(
        self, score: np.ndarray, candidates: np.ndarray, examples: list[np.ndarray],
        disliked: np.ndarray, limit: int,
    ) -> list[tuple[int, float]]:  # fmt: skip
        """The best ``limit`` and more unjudged segments by score, the ``CANDIDATES`` best
        re-scored with the spread of the judgments over their graph, ahead of the rest."""
        ranked = np.flatnonzero(candidates)
        if len(ranked) > CANDIDATES + limit:  # only the best few are ever shown
            ranked = ranked[
                np.argpartition(-score[ranked], CANDIDATES + limit)[: CANDIDATES + limit]
            ]
        ranked = ranked[np.argsort(-score[ranked], kind="stable")]
        top, rest = ranked[:CANDIDATES], ranked[CANDIDATES:]
        if not examples and not len(disliked):
            return [(int(s), float(score[s])) for s in ranked]
        groups = examples + [self._float_rows(self._rows_of(s)) for s in (*disliked, *top)]
        starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
        seeds = np.concatenate(
            [np.ones(len(examples)), np.full(len(disliked), -DISLIKE_SEED), np.zeros(len(top))]
        )
        relevance = spread(best_pair_similarity(np.concatenate(groups), starts), seeds)
        refined = score[top] + SPREAD_WEIGHT * relevance[len(examples) + len(disliked) :]
        reorder = np.argsort(-refined, kind="stable")
        return [(int(top[i]), float(refined[i])) for i in reorder] + [
            (int(s), float(score[s])) for s in rest
        ]

    def _judged_hit(
        self, seg: int, score: float, queries: np.ndarray, query_times: np.ndarray,
        judged: str | None = None,
    ) -> ClipMatch:  # fmt: skip
        """Segment ``seg`` as a hit: its best row for its best query chunk (its first row when
        there is no query)."""
        rows = self._rows_of(seg)
        if len(queries):
            pairs = queries @ self._float_rows(rows).T
            chunk, row = np.unravel_index(int(pairs.argmax()), pairs.shape)
            query_start, query_end = query_times[chunk]
            row = rows[row]
        else:
            query_start = query_end = 0.0
            row = rows[0]
        clip_id = int(self._ids[self._seg_clip[seg]])
        start, end = self._times[row]
        return ClipMatch(clip_id, self._uri_of[clip_id], score, float(start), float(end),
                         float(query_start), float(query_end), judged)  # fmt: skip

    def _tops(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per query: its best ``k`` allowed segments, their best rows and those rows' scores."""
        found = (
            self._ann_tops(queries, k, allowed) if self._ann is not None else [None] * len(queries)
        )
        missing = [i for i, top in enumerate(found) if top is None]
        per_block = max(1, _SCORE_BLOCK_BYTES // (4 * self._rows))
        for lo in range(0, len(missing), per_block):
            block = missing[lo : lo + per_block]
            for i, top in zip(block, self._exact_top(queries[block], k, allowed), strict=True):
                found[i] = top
        return found  # type: ignore[return-value]

    def _segments_not_of(self, clip_id: int) -> np.ndarray:
        """Every segment but those of clip ``clip_id``."""
        others = np.ones(len(self._seg_starts), dtype=bool)
        others[self._seg_of_clip[self._ids == clip_id]] = False
        return others

    def _allowed_segments(self, where: ClipFilter | None) -> np.ndarray:
        """Which segments may be returned: those of the live clips that pass ``where``."""
        keep = np.ones(len(self._ids), dtype=bool)
        if where is not None:
            if where.min_duration is not None:
                keep &= self._duration >= where.min_duration
            if where.max_duration is not None:
                keep &= self._duration <= where.max_duration
            if where.path_glob is not None:
                pattern = re.compile(translate(where.path_glob))
                keep &= np.array(
                    [bool(pattern.match(self._uri_of[c])) for c in self._ids.tolist()], dtype=bool
                )
        allowed = np.zeros(len(self._seg_starts), dtype=bool)
        allowed[self._seg_of_clip[keep]] = True
        return allowed

    def _scores(self, queries: np.ndarray) -> np.ndarray:
        """Cosine of every query against every row: one matrix product."""
        if self._matrix.dtype == np.float16:
            return _half_product(queries, self._matrix)
        return queries @ self._matrix.T

    def _exact_top(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per query: the best ``k`` allowed segments, their best rows and those rows' scores."""
        scores = self._scores(queries)
        best = np.maximum.reduceat(scores, self._seg_starts, axis=1)
        best[:, ~allowed] = -np.inf
        tops = np.argpartition(-best, k - 1, axis=1)[:, :k]
        for q, top in enumerate(tops):
            segs = top[np.argsort(-best[q, top], kind="stable")]
            rows = np.array(
                [lo + int(np.argmax(scores[q, lo:hi]))
                 for lo, hi in zip(self._seg_starts[segs], self._seg_ends[segs], strict=True)],
                dtype=np.int64,
            )  # fmt: skip
            if self._matrix.dtype == np.float16:  # chosen by the fast product, scored exactly
                exact = self._float_rows(rows) @ queries[q]
                order = np.argsort(-exact, kind="stable")
                yield segs[order], rows[order], exact[order]
            else:
                yield segs, rows, scores[q, rows]

    def _ann_tops(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """Like :meth:`_exact_top`, from ANN candidates; None for a query with too few."""
        candidates = self._ann.search(  # type: ignore[union-attr]
            queries,
            k * self._ann_settings.candidates_per_clip,  # type: ignore[union-attr]
        )
        tops: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
        for query, rows in zip(queries, candidates, strict=True):
            rows = rows[rows >= 0]
            segs = np.searchsorted(self._seg_starts, rows, side="right") - 1
            rows, segs = rows[allowed[segs]], segs[allowed[segs]]
            scores = self._float_rows(rows) @ query  # exact, not the quantised estimate
            order = np.argsort(-scores, kind="stable")
            _, first = np.unique(segs[order], return_index=True)  # each segment's best row
            best = order[np.sort(first)][:k]
            tops.append((segs[best], rows[best], scores[best]) if len(best) == k else None)
        return tops

    def _hits(self, segs: np.ndarray, rows: np.ndarray, scores: np.ndarray) -> list[ChunkHit]:
        hits = []
        for seg, row, score in zip(segs.tolist(), rows.tolist(), scores.tolist(), strict=True):
            clip_id = int(self._ids[self._seg_clip[seg]])
            start, end = self._times[row]
            hits.append(ChunkHit(clip_id, self._uri_of[clip_id], score, start, end))
        return hits

    def _float_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._matrix[rows], dtype=np.float32)

    def close(self) -> None:
        """Save the ANN index, close the database and let another process open the workspace."""
        self.save_ann()
        self._db.close()
        self._lock_file.close()

    def __enter__(self) -> ChunkIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_stored_clip(workspace: str | Path, clip_id: int) -> StoredClip | None:
    """Clip ``clip_id`` as committed in ``workspace`` (None if absent), read-only.

    Works while another process has that index open: it reads one snapshot of the database,
    then the rows the snapshot names, so one shard can read a clip that another stores.
    Raises FileNotFoundError when ``workspace`` holds no index.
    """
    database = Path(workspace) / "index.sqlite"
    if not database.exists():
        raise FileNotFoundError(database)
    for _ in range(3):  # a compaction may remove the file between the snapshot and the read
        db = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
        try:
            db.execute("BEGIN")  # one read transaction: the clip and its rows agree
            settings = dict(db.execute("SELECT key, value FROM settings"))
            row = db.execute(
                f"SELECT {_INFO_COLUMNS}, first_row, times FROM clips WHERE id = ?", (clip_id,)
            ).fetchone()
            if row is None:
                return None
            row_type, suffix = ROW_TYPES[settings["dtype"]]
            row_bytes = np.dtype(row_type).itemsize * int(settings["dim"])
            path = Path(workspace) / f"vectors.{settings.get('generation', 0)}.{suffix}"
            try:
                with open(path, "rb") as f:
                    f.seek(row[6] * row_bytes)
                    data = f.read(row[3] * row_bytes)
            except FileNotFoundError:
                continue
        finally:
            db.close()
        times = np.frombuffer(row[7], dtype=np.float64).reshape(-1, 2)
        vectors = np.frombuffer(data, dtype=row_type).reshape(row[3], -1).astype(np.float32)
        return StoredClip(
            ClipInfo(*row[:6]), times[:, 0], times[:, 1], vectors, settings["encoder"]
        )
    raise IndexMismatchError(f"{path}: kept changing while clip {clip_id} was read; try again")


def _half_product(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``queries @ matrix.T`` for a float16 ``matrix``, float32 out."""
    import torch  # numpy multiplies float16 without BLAS, many times slower than torch

    with warnings.catch_warnings():  # the memory map is read-only; torch only reads it here
        warnings.simplefilter("ignore", UserWarning)
        stored = torch.from_numpy(matrix)
    return (torch.from_numpy(queries.astype(np.float16)) @ stored.T).float().numpy()


def _blocks(rows: np.ndarray) -> Iterator[np.ndarray]:
    for lo in range(0, len(rows), _ROW_BLOCK):
        yield rows[lo : lo + _ROW_BLOCK]


def _lock(workspace: Path):
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
