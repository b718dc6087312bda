"""Document schemas that travel through the flow and its HTTP API (docarray v2).

One schema, :class:`AudioDoc`, goes in and out of every endpoint, so the Swagger page shows the
same shape for requests and responses. Fields that only executors use (the decoded waveform,
chunk vectors) are emptied before a response leaves the flow.
"""

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from docarray import BaseDoc, DocList
from docarray.typing import NdArray
from pydantic import Field

from audiosearch.errors import AudioSearchError


class ClipMatchDoc(BaseDoc):
    """One indexed clip that matches the query, with where it matches."""

    clip_id: int = Field(description="Id of the indexed clip")
    uri: str = Field(description="Path of the indexed clip")
    score: float = Field(
        description="Cosine similarity of the best matching chunk pair, -1..1 (other ranking "
        "strategies: their score; duplicates=true: correlation of the aligned audio, 0..1)"
    )
    start: float = Field(description="Start of the matched segment in the indexed clip, seconds")
    end: float = Field(description="End of the matched segment in the indexed clip, seconds")
    query_start: float = Field(0.0, description="Start of the query segment that matched, s")
    query_end: float = Field(0.0, description="End of the query segment that matched, s")
    judged: str | None = Field(
        None, description='"like" for a clip the request liked (listed first, not counted in '
        "limit)",
    )  # fmt: skip


class ChunkDoc(BaseDoc):
    """A 4 s window of a clip (internal to the flow)."""

    start: float
    end: float
    embedding: NdArray | None = None
    matches: DocList[ClipMatchDoc] = DocList[ClipMatchDoc]()


class AudioDoc(BaseDoc):
    """An audio clip to index or to search with, and what the service made of it."""

    uri: str | None = Field(
        None,
        description="Path of an audio file on the server",
        examples=["toy-data/piano_phrase_10s.wav"],
    )
    audio_base64: str | None = Field(
        None,
        description="For /search: the bytes of an audio file, base64-encoded, instead of uri "
        "(uri, if given, then only names the clip in messages)",
    )
    start: float | None = Field(
        None, description="For /search: search with the part of the clip from here, seconds "
        "(uri, audio_base64 or clip_id); match times stay in the whole clip's time",
    )  # fmt: skip
    end: float | None = Field(
        None, description="For /search: ... up to here, seconds (default: the clip's end)"
    )
    liked: bool | None = Field(
        None, description="For /search: this item is audio the user likes, not a query: the "
        "other items are searched with it as a liked clip (alone: more like it)",
    )  # fmt: skip
    duration: float | None = Field(
        None, description="Length of the decoded clip (of its region, with start/end), seconds"
    )
    clip_id: int | None = Field(None, description="Id of the clip in the index (after /index)")
    status: str | None = Field(
        None, description="Per item: added, replaced, unchanged, searched, example (a liked "
        "item) or error",
    )  # fmt: skip
    error: str | None = Field(None, description="What was wrong with this item and what to do")
    note: str | None = Field(
        None, description="What of this item was left out (e.g. the part of a file past "
        "max_seconds), though the item succeeded"
    )  # fmt: skip
    matches: DocList[ClipMatchDoc] = Field(
        DocList[ClipMatchDoc](), description="Ranked similar clips"
    )
    # Internal: filled and emptied inside the flow.
    fingerprint: str | None = Field(None, description="Internal: size and mtime of the file")
    encoder: str | None = Field(None, description="Internal: encoder name/version of the vectors")
    tensor: NdArray | None = Field(None, description="Internal: decoded 16 kHz mono waveform")
    decode_again: bool | None = Field(
        None, description="Internal: a long file's waveform left out; the encoder decodes uri"
    )
    chunks: DocList[ChunkDoc] = Field(DocList[ChunkDoc](), description="Internal: 4 s windows")
    # Library management (/list, /clips, /delete, /stats).
    chunk_count: int | None = Field(None, description="How many 4 s chunks of the clip are indexed")
    indexed_at: float | None = Field(None, description="When the clip was indexed, unix seconds")
    stats: dict | None = Field(
        None, description="/stats: clips, chunks, encoder, dim and the index's settings"
    )


#: The fields a client sends; the service fills every other field and refuses it from clients.
CLIENT_FIELDS = frozenset({"id", "uri", "audio_base64", "clip_id", "start", "end", "liked"})


def fail(doc: AudioDoc, message: str) -> None:
    """Mark ``doc`` as failed with ``message`` and drop what it carried through the flow."""
    doc.status = "error"
    doc.error = message
    doc.tensor = None
    doc.chunks = DocList[ChunkDoc]()


@contextmanager
def item_errors(doc: AudioDoc, logger: Any) -> Iterator[None]:
    """Turn an exception raised for one item into that item's error, leaving the others be.

    Errors the core raises on purpose already say what to do and are passed on as they are;
    anything else is a bug, logged with its traceback.
    """
    try:
        yield
    except AudioSearchError as exc:
        fail(doc, str(exc))
    except Exception as exc:
        logger.error(f"{doc.uri}: unexpected {exc!r}\n{traceback.format_exc()}")
        fail(doc, f"{doc.uri}: unexpected {exc.__class__.__name__}: {exc}; see the server log")
