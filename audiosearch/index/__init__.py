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

Modules, each importing only those above it: ``layout`` (where clips lie among the rows; pure
numpy), ``catalog`` (SQLite), ``vectors`` (the vector file), ``ann`` (faiss candidates),
``scoring`` (exact, ANN and judged scoring, query expansion), ``chunk_index`` (:class:`ChunkIndex`,
which puts them together in a crash-safe order).
"""

from audiosearch.index.ann import AnnSettings
from audiosearch.index.catalog import (
    AddResult,
    ClipInfo,
    ClipToAdd,
    IndexLockedError,
    check_offset,
    clip_shard,
    uri_shard,
)
from audiosearch.index.chunk_index import ChunkIndex, IndexWriteError, StoredClip, read_stored_clip
from audiosearch.index.scoring import ClipFilter, check_clip_filter, check_min_score, normalize_rows
from audiosearch.index.vectors import ROW_TYPES

__all__ = [
    "ROW_TYPES",
    "AddResult",
    "AnnSettings",
    "ChunkIndex",
    "ClipFilter",
    "ClipInfo",
    "ClipToAdd",
    "IndexLockedError",
    "IndexWriteError",
    "StoredClip",
    "check_clip_filter",
    "check_min_score",
    "check_offset",
    "clip_shard",
    "normalize_rows",
    "read_stored_clip",
    "uri_shard",
]
