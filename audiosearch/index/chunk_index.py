"""ChunkIndex: the catalog, the vector file and the ANN cache behind one lock, in a safe order."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiosearch.errors import AudioSearchError, IndexMismatchError, InvalidInputError
from audiosearch.feedback import Judgments
from audiosearch.index.ann import AnnCache, AnnSettings, ann_path
from audiosearch.index.catalog import (
    AddResult,
    Catalog,
    ClipInfo,
    ClipToAdd,
    clip_shard,
    committed_clip,
    lock_workspace,
    uri_shard,
)
from audiosearch.index.clip_means import clip_means
from audiosearch.index.layout import chunk_times
from audiosearch.index.scoring import (
    ClipFilter,
    IndexView,
    judged_search,
    normalize_rows,
    search_clips,
)
from audiosearch.index.vectors import ROW_TYPES, VectorFile, read_rows, vectors_path
from audiosearch.paths import same_content
from audiosearch.rank import ChunkHit, ClipMatch

__all__ = ["ChunkIndex", "IndexWriteError", "StoredClip", "read_stored_clip"]


class IndexWriteError(AudioSearchError):
    """The index's files could not be written: a full disk, a read-only folder."""


@dataclass(frozen=True)
class StoredClip:
    """A clip as committed: its facts, and its chunks' times and unit vectors (float32)."""

    info: ClipInfo
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    encoder: str


class ChunkIndex:
    """Cosine search over chunk vectors, persisted under ``workspace``.

    The first clip added records ``encoder`` ("name/version") and ``dim``; another encoder later
    raises :class:`IndexMismatchError`. ``dtype``: how rows are stored (converted on opening).
    ``shard`` of ``shards`` fixes the clip ids it allocates; ``ann`` answers large indexes
    approximately. One process may open a workspace; its threads may share the index."""

    def __init__(
        self, workspace: str | Path, *, dtype: str = "float32", shard: int = 0, shards: int = 1,
        ann: AnnSettings | None = None,
    ) -> None:  # fmt: skip
        if dtype not in ROW_TYPES:
            raise InvalidInputError(f"dtype={dtype!r}: expected float32 or float16")
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.shard, self.shards = shard, shards
        self._lock_file = lock_workspace(self.workspace)
        self._catalog = Catalog(self.workspace, shard=shard, shards=shards)
        self._lock, self._ann = threading.RLock(), AnnCache(ann)
        try:
            self._open(dtype)
        except BaseException:
            self._catalog.close()
            self._lock_file.close()
            raise

    def _open(self, dtype: str) -> None:
        """Read the settings and the clips, drop what no commit refers to, then convert to
        ``dtype``, compact and bring the ANN index up to date as needed."""
        stored = self._catalog.open_settings(dtype)
        self.encoder = stored.encoder
        self._vectors = VectorFile(
            self.workspace, generation=stored.generation, dtype=stored.dtype, dim=stored.dim,
            rows=stored.rows,
        )  # fmt: skip
        self._vectors.cut_uncommitted_tail()
        _remove_stale(self.workspace, keep=(self._vectors.path, self._ann_path))
        self._vectors.map()
        self._clips = self._catalog.clip_layout(self._vectors.rows)
        self._compact_and_sync_ann(dtype)

    @property
    def dim(self) -> int | None:
        """The stored vectors' width (None before the first add)."""
        return self._vectors.dim

    @property
    def dtype(self) -> str:
        """How rows are stored: ``float32`` or ``float16``."""
        return self._vectors.dtype

    @property
    def _ann_path(self) -> Path:
        return ann_path(self.workspace, self._vectors.generation)

    def __len__(self) -> int:
        """Number of clips in the index."""
        return len(self._clips)

    @property
    def chunk_count(self) -> int:
        """Number of chunk vectors searched."""
        return self._clips.chunk_count

    def owns_uri(self, uri: str) -> bool:
        """Whether ``uri`` belongs in this shard."""
        return uri_shard(uri, self.shards) == self.shard

    def owns_clip(self, clip_id: int) -> bool:
        """Whether clip ``clip_id`` would be stored in this shard."""
        return clip_shard(clip_id, self.shards) == self.shard

    def find(self, uri: str) -> ClipInfo | None:
        """The clip stored for ``uri``, or None."""
        with self._lock:  # the connection is shared: never read another thread's open write
            return self._catalog.find(uri)

    def get(self, clip_id: int) -> ClipInfo | None:
        """Clip ``clip_id``, or None."""
        with self._lock:
            return self._catalog.get(clip_id)

    def clips(self, *, offset: int = 0, limit: int | None = None) -> list[ClipInfo]:
        """Stored clips ordered by id, ``limit`` of them (all if None) from ``offset``."""
        with self._lock:
            return self._catalog.page(offset, limit)

    def stats(self) -> dict[str, object]:
        """Counts and settings, for ``/stats``."""
        with self._lock:
            ann, rows = self._ann.index, self._vectors.rows
            return {
                "clips": len(self), "chunks": self.chunk_count,
                "dead_chunks": rows - self.chunk_count,
                "audio_seconds": float(self._clips.duration.sum()),
                "encoder": self.encoder, "dim": self.dim, "dtype": self.dtype,
                "vector_bytes": rows * self._vectors.row_bytes,
                "search": "ann" if ann is not None and self._ann.settings.approximate else "exact",
                "ann_clusters": None if ann is None else ann.nlist,
                "shard": self.shard, "shards": self.shards,
            }  # fmt: skip

    def check_encoder(self, encoder: str, dim: int) -> None:
        """Raise :class:`IndexMismatchError` unless vectors of ``encoder``/``dim`` fit here."""
        if self.encoder is not None and (encoder != self.encoder or dim != self.dim):
            raise IndexMismatchError(
                f"the index in {self.workspace} holds {self.dim}-d vectors of encoder "
                f"'{self.encoder}', but this flow encodes with '{encoder}' ({dim}-d); set the "
                "encoder the index was built with, or use a new workspace and index again"
            )

    def add(self, clips: Sequence[ClipToAdd], *, encoder: str) -> list[AddResult]:
        """Store ``clips`` and make them visible atomically: a uri stored with the same
        fingerprint is left as it is; with another (or none) it is replaced, old chunks and all."""
        with self._lock, _write_errors(self.workspace, self._committed_state):
            results, todo = _sort_out(clips, encoder, self.check_encoder, self.find)
            if todo:
                new, old_ids = [clips[i] for i in todo], list(todo.values())
                first_row = self._vectors.rows
                vectors = normalize_rows(np.concatenate([clip.vectors for clip in new]))
                # 1. The rows go after the committed ones and are fsynced, but count only once
                self._vectors.append(vectors)
                # 2. one transaction commits the clips and the new row count together; a crash
                #    between 1 and 2 leaves a tail of rows that the next open cuts off.
                added = self._catalog.commit_add(
                    list(zip(new, old_ids, strict=True)), first_row,
                    encoder=encoder, dim=vectors.shape[1],
                )  # fmt: skip
                # 3. Memory follows the commit; then the dead rows may be compacted away.
                self.encoder = encoder
                self._vectors.count_committed(first_row + len(vectors), vectors.shape[1])
                self._forget([old_id for old_id in old_ids if old_id is not None])
                self._clips = self._clips.appended(
                    [result.clip_id for result in added], [clip.uri for clip in new],
                    [clip.duration for clip in new], [chunk_times(c.starts, c.ends) for c in new],
                )  # fmt: skip
                self._ann.add(vectors, np.arange(first_row, self._vectors.rows))
                self._compact_and_sync_ann()
                results.update(zip(todo, added, strict=True))
            return _with_repeats(clips, results)

    def delete(self, clip_ids: Sequence[int]) -> list[bool]:
        """Remove clips; for each id, whether it was stored."""
        with self._lock, _write_errors(self.workspace, self._committed_state):
            stored_ids = set(self._clips.ids.tolist())
            stored = [clip_id in stored_ids for clip_id in clip_ids]
            doomed = sorted({c for c, was in zip(clip_ids, stored, strict=True) if was})
            if doomed:
                self._catalog.commit_delete(doomed)
                self._forget(doomed)
                self._compact_and_sync_ann()
            return stored

    def _committed_state(self) -> tuple[int, int]:
        """Rows written and clips alive: what a committed add or delete changes."""
        return self._vectors.rows, len(self._clips)

    def _forget(self, clip_ids: Sequence[int]) -> None:
        """Drop deleted or replaced clips from memory (their rows stay in the file, dead)."""
        if clip_ids:
            self._ann.remove_clips(self._clips, clip_ids)
            self._clips = self._clips.without(clip_ids)

    def _compact_and_sync_ann(self, dtype: str | None = None) -> None:
        """Compact to ``dtype`` rows (the stored type if None) when that is another type, or
        when the dead rows are as many as the live ones; then bring the ANN index up to date."""
        rows, alive = self._vectors.rows, self.chunk_count
        if (dtype or self.dtype) != self.dtype or (rows and rows - alive >= alive):
            self._compact(dtype or self.dtype)
        self._ann.sync(self._ann_path, self._clips, self._vectors.float_rows)

    def _compact(self, dtype: str) -> None:
        """Copy the live rows (as ``dtype``) to the next generation's file and switch to it:
        the file is written and fsynced, then one transaction switches, then the old go."""
        alive, packed = self._clips.alive_rows(), self._clips.packed()
        self._vectors.write_next_generation(alive, dtype)
        self._catalog.commit_compaction(
            packed.ids, packed.first, self._vectors.generation + 1, len(alive), dtype
        )
        old_ann = self._ann_path
        self._clips = packed
        self._vectors.switch_to_next(len(alive), dtype)
        old_ann.unlink(missing_ok=True)
        self._ann.renumber(self._clips, self._vectors.float_rows)

    def save_ann(self) -> None:
        """Write the ANN index to disk if it changed, so the next start need not rebuild it."""
        with self._lock:
            self._ann.save(self._ann_path)

    def search(
        self, queries: np.ndarray, *, limit: int, encoder: str, exclude: int | None = None,
        where: ClipFilter | None = None, expand: bool = False,
    ) -> list[list[ChunkHit]]:  # fmt: skip
        """For each query vector, the ``limit`` clips whose best chunk is most similar, highest
        cosine first (:func:`~audiosearch.index.scoring.search_clips`). ``exclude`` (a clip id)
        and ``where`` leave clips out before ranking. ``expand``: the query is first expanded
        with its nearest chunk that passes ``where``, not excluding ``exclude``, so an indexed
        clip searched by its id ranks as when searched by its file."""
        queries = normalize_rows(np.atleast_2d(queries))
        with self._lock:
            if not len(self._clips):
                return [[] for _ in queries]
            self.check_encoder(encoder, queries.shape[1])
            return search_clips(
                self._view(), queries, limit=limit, exclude=exclude, where=where, expand=expand
            )

    def search_judged(
        self, queries: np.ndarray, query_times: np.ndarray, *, judgments: Judgments,
        liked_audio: Sequence[np.ndarray] = (), limit: int, encoder: str,
        exclude: int | None = None, where: ClipFilter | None = None, expand: bool = False,
    ) -> list[ClipMatch]:  # fmt: skip
        """The clips ranked for ``queries`` (chunk vectors, timed by ``query_times``; may be
        empty: "more like these") refined by the user's ``judgments`` and ``liked_audio`` (chunk
        vectors of liked clips given as audio): liked clips first (``judged="like"``, not
        counted in ``limit``), disliked ones left out
        (:func:`~audiosearch.index.scoring.judged_search` says how clips are scored)."""
        with self._lock:
            for vectors in (queries, *liked_audio):
                if len(vectors):
                    self.check_encoder(encoder, vectors.shape[1])
            return judged_search(
                self._view(), queries, query_times, judgments=judgments,
                liked_audio=liked_audio, limit=limit, exclude=exclude, where=where,
                expand=expand,
            )  # fmt: skip

    def clip_means(self) -> tuple[np.ndarray, np.ndarray]:
        """Every clip's id and mean chunk vector (:func:`~.clip_means.clip_means`)."""
        with self._lock:
            return clip_means(self._view())

    def _view(self) -> IndexView:
        return IndexView(self._vectors, self._clips, self._ann)

    def close(self) -> None:
        """Save the ANN index, close the database and let another process open the workspace."""
        self.save_ann()
        self._catalog.close()
        self._lock_file.close()

    def __enter__(self) -> ChunkIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def _write_errors(workspace: Path, committed: Callable[[], object]) -> Iterator[None]:
    """Turn a failed write (a full disk, a read-only folder) into :class:`IndexWriteError`,
    which says whether the request's change took effect (whether ``committed()`` changed)."""
    before = committed()
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise IndexWriteError(
            f"the index in {workspace} could not be written ({reason}): "
            + (
                "the request's change was made, but tidying the index afterwards failed"
                if committed() != before
                else "nothing of this request was stored or changed"
            )
            + "; free disk space (or make the folder writable) and send it again"
        ) from exc


def _sort_out(
    clips: Sequence[ClipToAdd], encoder: str, check_encoder: Callable[[str, int], None],
    find: Callable[[str], ClipInfo | None],
) -> tuple[dict[int, AddResult], dict[int, int | None]]:  # fmt: skip
    """The results of unchanged clips and the clips to store, each by its position in
    ``clips``: for these, the id of the version each replaces (None if new). Each clip's
    shape and encoder are checked before it is looked up with ``find``."""
    results: dict[int, AddResult] = {}
    todo: dict[int, int | None] = {}
    seen: set[str] = set()
    for i, clip in enumerate(clips):
        if clip.uri in seen:  # the same file twice in one request: store it once
            continue
        seen.add(clip.uri)
        _check_shape(clip)
        check_encoder(encoder, clip.vectors.shape[1])
        known = find(clip.uri)
        if (
            known
            and None not in (known.fingerprint, clip.fingerprint)
            and same_content(known.fingerprint, clip.fingerprint)
        ):
            results[i] = AddResult(known.clip_id, "unchanged")
        else:
            todo[i] = known.clip_id if known else None
    return results, todo


def _check_shape(clip: ClipToAdd) -> None:
    """InvalidInputError unless ``clip`` has one vector per chunk, and chunks."""
    if clip.vectors.ndim != 2 or len(clip.vectors) != len(clip.starts) or not len(clip.starts):
        raise InvalidInputError(
            f"{clip.uri}: {len(clip.starts)} chunks but vectors of shape "
            f"{clip.vectors.shape}; expected one vector per chunk"
        )


def _with_repeats(clips: Sequence[ClipToAdd], results: dict[int, AddResult]) -> list[AddResult]:
    """The result of each of ``clips`` in order: a repeat of a uri within one request is
    ``unchanged``, with the id its first occurrence got."""
    first: dict[str, int] = {}
    for i, clip in enumerate(clips):
        first.setdefault(clip.uri, i)
    return [
        results.get(i) or AddResult(results[first[clip.uri]].clip_id, "unchanged")
        for i, clip in enumerate(clips)
    ]


def _remove_stale(workspace: Path, keep: Sequence[Path]) -> None:
    """Delete the vector and ANN files other than ``keep``: left by an interrupted compaction
    or save."""
    for stale in [*workspace.glob("vectors.*"), *workspace.glob("ann.*")]:
        if stale not in keep:
            stale.unlink()


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
        with committed_clip(database, clip_id) as found:
            if found is None:
                return None
            stored, row = found
            path = vectors_path(Path(workspace), stored.generation, stored.dtype)
            try:
                vectors = read_rows(path, stored.dtype, stored.dim or 0, row[6], row[3])
            except FileNotFoundError:
                continue
        times = np.frombuffer(row[7], dtype=np.float64).reshape(-1, 2)
        return StoredClip(
            ClipInfo(*row[:6]), times[:, 0], times[:, 1], vectors, stored.encoder or ""
        )
    raise IndexMismatchError(f"{path}: kept changing while clip {clip_id} was read; try again")
