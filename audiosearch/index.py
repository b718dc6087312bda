"""A persistent, exact cosine index of chunk vectors grouped by clip.

Layout under the workspace directory:

- ``index.sqlite``: clips, chunks and settings (WAL journal, synchronous=FULL).
- ``vectors.f32``: L2-normalised float32 rows, appended; row ``r`` of the file belongs to the
  chunk whose ``row`` is ``r``.

Adding clips appends their vectors, fsyncs the file, then commits one SQLite transaction that
makes the clips, their chunks and the new row count visible together. Rows past the committed
count (left by a crash between the two steps) are cut off when the index opens, so a clip is
either entirely present or absent. Deleted or replaced clips leave dead rows in the file; they
are never loaded.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiosearch.errors import IndexMismatchError, InvalidInputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uri TEXT NOT NULL UNIQUE,
    fingerprint TEXT,
    duration REAL NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY,
    clip_id INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    "end" REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_clip ON chunks(clip_id);
"""


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
class ChunkHit:
    """The best-matching chunk of one indexed clip for one query vector."""

    clip_id: int
    uri: str
    score: float
    start: float
    end: float


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32 (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


class ChunkIndex:
    """Exact cosine search over chunk vectors, persisted under ``workspace``.

    ``encoder`` ("name/version") and ``dim`` are recorded by the first clip added; later adds and
    searches with another encoder raise :class:`IndexMismatchError`. Safe to share between
    threads.
    """

    def __init__(self, workspace: str | Path) -> None:
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._vectors_path = self.workspace / "vectors.f32"
        self._db = sqlite3.connect(self.workspace / "index.sqlite", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        settings = dict(self._db.execute("SELECT key, value FROM settings"))
        self.encoder: str | None = settings.get("encoder")
        self.dim: int | None = int(settings["dim"]) if "dim" in settings else None
        self._committed_rows = int(settings.get("rows", 0))
        self._load()

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        """Read live rows into memory, dropping any uncommitted tail of the vectors file."""
        row_bytes = 4 * (self.dim or 0)
        committed_bytes = self._committed_rows * row_bytes
        if (
            row_bytes
            and self._vectors_path.exists()
            and self._vectors_path.stat().st_size > committed_bytes
        ):
            with open(self._vectors_path, "r+b") as f:
                f.truncate(committed_bytes)
                os.fsync(f.fileno())
        rows = self._db.execute(
            'SELECT c.row, c.clip_id, c.start, c."end" FROM chunks c ORDER BY c.clip_id, c.row'
        ).fetchall()
        table = np.array(rows, dtype=np.float64).reshape(-1, 4)
        file_rows = table[:, 0].astype(np.int64)
        if len(file_rows):
            stored = np.memmap(self._vectors_path, dtype=np.float32, mode="r")
            self._matrix = np.asarray(stored.reshape(-1, self.dim)[file_rows])
            del stored
        else:
            self._matrix = np.empty((0, self.dim or 0), dtype=np.float32)
        self._clip_of_row = table[:, 1].astype(np.int64)
        self._starts = table[:, 2]
        self._ends = table[:, 3]
        self._uris = dict(self._db.execute("SELECT id, uri FROM clips"))
        self._refresh_bounds()

    def _refresh_bounds(self) -> None:
        # Rows of one clip are contiguous in memory; `_bounds` holds where each clip begins.
        if len(self._clip_of_row):
            change = np.flatnonzero(np.diff(self._clip_of_row)) + 1
            self._bounds = np.concatenate([[0], change]).astype(np.int64)
        else:
            self._bounds = np.empty(0, dtype=np.int64)
        self._bound_clips = self._clip_of_row[self._bounds]

    # ------------------------------------------------------------------ facts
    def __len__(self) -> int:
        """Number of clips in the index."""
        return len(self._uris)

    @property
    def chunk_count(self) -> int:
        """Number of chunk vectors searched."""
        return len(self._clip_of_row)

    def lookup(self, uri: str) -> tuple[int, str | None] | None:
        """``(clip_id, fingerprint)`` of the clip stored for ``uri``, or None."""
        row = self._db.execute("SELECT id, fingerprint FROM clips WHERE uri = ?", (uri,)).fetchone()
        return None if row is None else (int(row[0]), row[1])

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
        another fingerprint (or none) is replaced.
        """
        with self._lock:
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
            known = self.lookup(clip.uri)
            if known and clip.fingerprint is not None and known[1] == clip.fingerprint:
                results[i] = AddResult(known[0], "unchanged")
            else:
                todo.append((i, clip, known[0] if known else None))
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
        first_row = self._committed_rows
        with open(self._vectors_path, "ab") as f:
            f.truncate(first_row * 4 * dim)  # drop a tail a failed add may have left
            f.write(vectors.tobytes())
            f.flush()
            os.fsync(f.fileno())

        now = time.time()
        replaced: list[int] = []
        row = first_row
        with self._db:  # one transaction: all of this request's clips appear together
            self._db.executemany(
                "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)",
                [("encoder", encoder), ("dim", str(dim)), ("rows", str(first_row + len(vectors)))],
            )
            for i, clip, old_id in todo:
                if old_id is not None:
                    self._db.execute("DELETE FROM clips WHERE id = ?", (old_id,))
                    replaced.append(old_id)
                clip_id = self._db.execute(
                    "INSERT INTO clips(uri, fingerprint, duration, indexed_at) VALUES (?,?,?,?)",
                    (clip.uri, clip.fingerprint, clip.duration, now),
                ).lastrowid
                n = len(clip.starts)
                self._db.executemany(
                    'INSERT INTO chunks(row, clip_id, start, "end") VALUES (?,?,?,?)',
                    zip(
                        range(row, row + n),
                        [clip_id] * n,
                        np.asarray(clip.starts, dtype=float).tolist(),
                        np.asarray(clip.ends, dtype=float).tolist(),
                        strict=True,
                    ),
                )
                row += n
                results[i] = AddResult(int(clip_id), "added" if old_id is None else "replaced")
        self._committed_rows = row
        self.encoder, self.dim = encoder, dim

        if replaced:
            self._drop_from_memory(replaced)
        added = [(results[i], clip) for i, clip, _ in todo]
        self._matrix = np.concatenate([self._matrix.reshape(-1, dim), vectors])
        self._clip_of_row = np.concatenate(
            [self._clip_of_row]
            + [np.full(len(c.starts), r.clip_id, dtype=np.int64) for r, c in added]
        )
        # Times stay float64, as SQLite stores them, so they read back identical after a restart.
        self._starts = np.concatenate([self._starts] + [c.starts for _, c in added], dtype=float)
        self._ends = np.concatenate([self._ends] + [c.ends for _, c in added], dtype=float)
        self._uris.update({r.clip_id: c.uri for r, c in added})  # type: ignore[union-attr]
        self._refresh_bounds()

    def _drop_from_memory(self, clip_ids: Sequence[int]) -> None:
        keep = ~np.isin(self._clip_of_row, clip_ids)
        self._matrix = self._matrix[keep]
        self._clip_of_row = self._clip_of_row[keep]
        self._starts = self._starts[keep]
        self._ends = self._ends[keep]
        for clip_id in clip_ids:
            self._uris.pop(clip_id, None)
        self._refresh_bounds()

    # ----------------------------------------------------------------- reading
    def search(self, queries: np.ndarray, *, limit: int, encoder: str) -> list[list[ChunkHit]]:
        """For each query vector, the ``limit`` clips whose best chunk is most similar.

        Exact: every stored chunk is scored by cosine similarity, each clip keeps its best chunk,
        and the clips are ranked by that score (highest first).
        """
        queries = normalize_rows(np.atleast_2d(queries))
        with self._lock:
            if not len(self._uris):
                return [[] for _ in queries]
            self.check_encoder(encoder, queries.shape[1])
            scores = queries @ self._matrix.T
            best = np.maximum.reduceat(scores, self._bounds, axis=1)
            k = min(limit, best.shape[1])
            top = np.argpartition(-best, k - 1, axis=1)[:, :k]
            results = []
            for q, clip_cols in enumerate(top):
                clip_cols = clip_cols[np.argsort(-best[q, clip_cols], kind="stable")]
                hits = []
                for col in clip_cols:
                    lo = self._bounds[col]
                    hi = self._bounds[col + 1] if col + 1 < len(self._bounds) else scores.shape[1]
                    row = lo + int(np.argmax(scores[q, lo:hi]))
                    clip_id = int(self._bound_clips[col])
                    hits.append(
                        ChunkHit(
                            clip_id,
                            self._uris[clip_id],
                            float(scores[q, row]),
                            float(self._starts[row]),
                            float(self._ends[row]),
                        )
                    )
                results.append(hits)
            return results

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()
