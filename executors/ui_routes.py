"""The gateway's routes for the web page (#16): its limits, clip outlines and the library map.

- ``GET /limits``: how much audio the service reads and how large an upload may be, so the
  page sends only what will be searched.
- ``GET /peaks/{clip_id}?points=N``: an indexed clip's outline (the loudest sample of each of
  N spans), drawn under each result; served as ``/audio`` serves the file, and cached.
- ``GET /map``: every clip's place on a 2-D map of the library (the indexer's ``/map``).
"""

from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from audiosearch.audio import decode_audio
from audiosearch.errors import AudioDecodeError, FileGoneError, InvalidInputError
from audiosearch.params import check_clip_id
from audiosearch.paths import AudioSource, ReadPolicy, readable_file
from audiosearch.peaks import MAX_POINTS, peaks
from executors.http_guard import GuardSettings

__all__ = ["PEAKS_RATE", "PeaksCache", "add_ui_routes", "indexed_file"]

#: Samples per second decoded for an outline: enough for any thumbnail, cheap to decode.
PEAKS_RATE = 4_000
#: Outlines kept in memory (a few KiB each).
PEAKS_CACHED = 2_048


class PeaksCache:
    """The outlines of the clips asked for last, keyed by file, fingerprint and points: a clip
    indexed again (a new fingerprint) is decoded again."""

    def __init__(self, size: int = PEAKS_CACHED) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()

    def get(self, path: Path, fingerprint: str, points: int, max_seconds: float) -> dict[str, Any]:
        """``{"seconds": ..., "peaks": [...]}`` of the file at ``path`` (its first
        ``max_seconds``), from the cache or decoded now."""
        key = (str(path), fingerprint, points)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        waveform = decode_audio(path, sample_rate=PEAKS_RATE, max_seconds=max_seconds).waveform
        outline = {
            "seconds": len(waveform) / PEAKS_RATE,
            "peaks": np.round(peaks(waveform, points).astype(np.float64), 4).tolist(),
        }
        self._items[key] = outline
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return outline


def add_ui_routes(app: FastAPI, flow: Any, policy: ReadPolicy, guard: GuardSettings) -> None:
    """Add ``GET /limits``, ``GET /peaks/{clip_id}`` and ``GET /map`` (``flow``: the gateway's
    FlowCaller; ``policy`` and ``guard``: the gateway's read policy and guard settings)."""
    cache = PeaksCache()

    @app.get("/limits", summary="How much audio the service reads, and the largest upload")
    async def limits() -> dict[str, float]:
        return {
            "max_seconds": policy.max_seconds,
            "max_file_mb": guard.max_file_bytes / 2**20,
            "max_body_mb": guard.max_body_bytes / 2**20,
        }

    @app.get(
        "/peaks/{clip_id}",
        summary="An indexed clip's outline for drawing: the loudest sample of each of N spans",
        responses={404: {"description": "No such clip, or its file is gone"}},
    )
    async def clip_peaks(
        clip_id: int,
        points: Annotated[int, Query(ge=1, le=MAX_POINTS, description="Spans")] = 200,
    ) -> dict[str, Any]:
        clip, source = await indexed_file(flow, policy, clip_id)
        try:
            outline = await run_in_threadpool(
                cache.get, source.path, clip.fingerprint or "", points, policy.max_seconds
            )
        except AudioDecodeError as exc:
            raise HTTPException(422, f"clip {clip_id}: {exc}") from None
        return {"clip_id": clip_id, "duration": clip.duration, **outline}

    @app.get("/map", summary="Every indexed clip as a point on a 2-D map of the library")
    async def library_map() -> dict[str, Any]:
        [doc] = (await flow.post("/map", [{}], {})).docs
        if doc.status == "error":
            raise HTTPException(409, doc.error)
        return doc.stats


async def indexed_file(flow: Any, policy: ReadPolicy, clip_id: int) -> tuple[Any, AudioSource]:
    """Clip ``clip_id``'s document and its file, if ``policy`` lets the service read it now;
    otherwise HTTP 422 (not a clip id), 404 (not indexed, or its file is gone) or 403."""
    try:
        check_clip_id(clip_id)
    except InvalidInputError as exc:
        raise HTTPException(422, str(exc)) from None
    [clip] = (await flow.post("/clips", [{"clip_id": clip_id}], {})).docs
    if clip.status == "error" or not clip.uri:
        raise HTTPException(404, clip.error or f"clip_id={clip_id}: not in the index")
    try:
        return clip, readable_file(clip.uri, policy, indexed_fingerprint=clip.fingerprint)
    except FileGoneError as exc:
        raise HTTPException(404, f"{exc}; index it again or delete clip {clip_id}") from None
    except InvalidInputError as exc:
        raise HTTPException(403, f"clip {clip_id} is not served: {exc}") from None
