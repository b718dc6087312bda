"""AudioSegmenter: decode each clip and cut it into 4 s windows at a 2 s stride."""

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docarray import DocList
from jina import Executor, requests

from audiosearch.audio import decode_audio
from audiosearch.audio.segment import STRIDE_SECONDS, Segments, check_region, cut_region, segment
from audiosearch.errors import InvalidInputError
from audiosearch.paths import MAX_SECONDS, ReadPolicy, is_http_uri, open_audio_source
from executors.docs import AudioDoc, ChunkDoc, item_errors


class AudioSegmenter(Executor):
    """Decodes each clip into ``doc.tensor`` (16 kHz mono) and one chunk per window.

    Files are read as ``read_policy`` (flow.yml; :meth:`ReadPolicy.from_config`) allows: under
    its allowed roots, up to its size and length limits. A file longer than the policy's
    ``max_seconds`` is used up to there, and its item says so in ``note``. A local file longer
    than ``max_carried_seconds`` is sent on to /index without its waveform: the encoder decodes
    it again, so no request carries hours of audio through the gateway (each process it passes
    would hold several copies of it).
    """

    def __init__(
        self,
        stride_seconds: float = STRIDE_SECONDS,
        read_policy: Mapping[str, Any] | None = None,
        max_carried_seconds: float = MAX_SECONDS,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.stride_seconds = stride_seconds
        self.max_carried_seconds = max_carried_seconds
        self.policy = ReadPolicy.from_config(read_policy)
        self.logger.info(
            f"reading audio files under {self.policy.describe_roots()} (up to "
            f"{self.policy.max_file_bytes / 2**20:g} MiB, first {self.policy.max_seconds:g} s); "
            f"http(s) downloads {'on' if self.policy.allow_http else 'off'}"
        )

    @requests(on="/index")
    def segment_files(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Decode and window the file each document names; a failure marks only that one."""
        for doc in docs:
            doc.decode_again = None  # set here only: a client cannot have the encoder read files
            with item_errors(doc, self.logger):
                if doc.start is not None or doc.end is not None:
                    raise InvalidInputError(
                        f"{doc.uri}: start/end choose the part of a query to search with; "
                        "/index stores whole files: leave them out"
                    )
                if doc.audio_base64 is not None:
                    doc.audio_base64 = None
                    raise InvalidInputError(
                        "/index stores files the server can read again: send uri, not "
                        "audio_base64 (uploaded audio can be searched with, not indexed)"
                    )
                self._window(doc, self._decode_file(doc))
                if doc.duration > self.max_carried_seconds and not is_http_uri(doc.uri):
                    doc.tensor, doc.decode_again = None, True
        return docs

    @requests(on="/search")
    def segment_queries(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Decode and window each query, given as a file path or as base64 audio bytes; with
        ``start``/``end``, only that region of it (chunk times stay in the file's time)."""
        for doc in docs:
            doc.decode_again = None  # see segment_files
            with item_errors(doc, self.logger):
                if doc.clip_id is not None:  # like an indexed clip: the indexer reads its chunks
                    continue
                if doc.audio_base64 is not None:  # uri, if any, only names it: never read
                    label = f"uploaded audio {doc.uri!r}" if doc.uri else "uploaded audio"
                    data, doc.audio_base64 = doc.audio_base64, None  # never echoed back
                    self._window(doc, self._segments(doc, decode_base64(data, label), label))
                else:
                    self._window(doc, self._decode_file(doc))
        return docs

    @requests
    def pass_through(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """The library endpoints (/list, /clips, /delete, /stats) are the indexer's."""
        return docs

    def _decode_file(self, doc: AudioDoc) -> Segments:
        with open_audio_source(doc.uri, self.policy) as source:
            doc.uri, doc.fingerprint = source.uri, source.fingerprint
            return self._segments(doc, source.path, source.uri)

    def _segments(self, doc: AudioDoc, audio: Path | bytes, label: str) -> Segments:
        """Windows of ``audio`` (a path or a file's bytes), decoded up to ``max_seconds`` (or
        the end of the item's region); a longer file's item gets a note saying what was left
        out. With a region, the windows are the region's (looped when it is short)."""
        region = check_region(doc.start, doc.end)
        read_to = self.policy.max_seconds
        if region is not None and region.end is not None:
            read_to = min(read_to, region.end)
        decoded = decode_audio(audio, max_seconds=read_to, label=label)
        if decoded.capped and read_to == self.policy.max_seconds:
            doc.note = capped_note(self.policy.max_seconds, decoded.declared_seconds)
        waveform = decoded.waveform
        if region is not None:
            waveform = cut_region(waveform, region, label=label)
        return segment(waveform, stride_seconds=self.stride_seconds)

    @staticmethod
    def _window(doc: AudioDoc, segments: Segments) -> None:
        """Put the windows on ``doc``, timed in its file (a region's start added)."""
        offset = doc.start or 0.0
        doc.tensor = segments.waveform
        doc.duration = segments.duration
        doc.chunks = DocList[ChunkDoc](
            ChunkDoc(start=float(s) + offset, end=float(e) + offset)
            for s, e in zip(segments.start_seconds, segments.end_seconds, strict=True)
        )


def capped_note(max_seconds: float, declared_seconds: float | None) -> str:
    """What an item says when only the first ``max_seconds`` of its file were used."""
    of = f" of {declared_seconds:,.0f} s" if declared_seconds else ""
    return (
        f"only the first {max_seconds:g} s{of} were used: files are read up to "
        "read_policy.max_seconds (flow.yml, or app.py serve --max-seconds); raise it to use more"
    )


def decode_base64(data: str, label: str) -> bytes:
    """The bytes of an audio file that ``data`` carries in base64."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{label}: audio_base64 is not valid base64; send the file's bytes base64-encoded"
        ) from None
