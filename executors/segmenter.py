"""AudioSegmenter: decode each clip and cut it into 4 s windows at a 2 s stride."""

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path

from docarray import DocList
from jina import Executor, requests

from audiosearch.audio import MAX_SECONDS, SAMPLE_RATE, load_audio
from audiosearch.errors import InvalidInputError
from audiosearch.paths import (
    DEFAULT_ROOTS,
    HTTP_TIMEOUT_SECONDS,
    MAX_FILE_BYTES,
    ReadPolicy,
    is_http_uri,
    open_audio_source,
)
from audiosearch.segment import STRIDE_SECONDS, Segments, segment
from executors.docs import AudioDoc, ChunkDoc, item_errors


class AudioSegmenter(Executor):
    """Decodes each clip into ``doc.tensor`` (16 kHz mono) and one chunk per window.

    Files are read only under ``allowed_roots`` (relative ones from the working directory, the
    project root), up to ``max_file_mb``; ``http(s)://`` URIs only when ``allow_http``, each
    download within ``http_timeout_seconds``. At most the first ``max_seconds`` of a file are
    decoded. A local file longer than ``max_carried_seconds`` is sent on to /index without its
    waveform: the encoder decodes it again, so no request carries hours of audio through the
    gateway (each process it passes would hold several copies of it).
    """

    def __init__(
        self,
        stride_seconds: float = STRIDE_SECONDS,
        allowed_roots: Sequence[str] = DEFAULT_ROOTS,
        allow_http: bool = False,
        max_file_mb: float = MAX_FILE_BYTES / 2**20,
        max_seconds: float = MAX_SECONDS,
        http_timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
        max_carried_seconds: float = 600.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.stride_seconds = stride_seconds
        self.max_seconds = max_seconds
        self.max_carried_seconds = max_carried_seconds
        self.policy = ReadPolicy(
            roots=tuple(allowed_roots),
            allow_http=allow_http,
            max_file_bytes=round(max_file_mb * 2**20),
            http_timeout_seconds=http_timeout_seconds,
        )
        self.logger.info(
            f"reading audio files under {self.policy.describe_roots()} (up to {max_file_mb:g} "
            f"MiB, first {max_seconds:g} s); http(s) downloads {'on' if allow_http else 'off'}"
        )

    @requests(on="/index")
    def segment_files(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Decode and window the file each document names; a failure marks only that one."""
        for doc in docs:
            doc.decode_again = None  # set here only: a client cannot have the encoder read files
            with item_errors(doc, self.logger):
                if doc.audio_base64:
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
        """Decode and window each query, given as a file path or as base64 audio bytes."""
        for doc in docs:
            doc.decode_again = None  # see segment_files
            with item_errors(doc, self.logger):
                if doc.clip_id is not None:  # like an indexed clip: its stored chunks are used
                    continue
                if doc.audio_base64:
                    label = f"uploaded audio {doc.uri!r}" if doc.uri else "uploaded audio"
                    data, doc.audio_base64 = doc.audio_base64, None  # never echoed back
                    self._window(doc, self._segments(decode_base64(data, label), label))
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
            return self._segments(source.path, source.uri)

    def _segments(self, audio: Path | bytes, label: str) -> Segments:
        """Windows of ``audio`` (a path or a file's bytes), decoded up to ``max_seconds``."""
        waveform = load_audio(audio, max_seconds=self.max_seconds, label=label)
        if waveform.size >= round(self.max_seconds * SAMPLE_RATE):
            self.logger.warning(f"{label}: only its first {self.max_seconds:g} s are used")
        return segment(waveform, stride_seconds=self.stride_seconds)

    @staticmethod
    def _window(doc: AudioDoc, segments: Segments) -> None:
        doc.tensor = segments.waveform
        doc.duration = segments.duration
        doc.chunks = DocList[ChunkDoc](
            ChunkDoc(start=float(s), end=float(e))
            for s, e in zip(segments.start_seconds, segments.end_seconds, strict=True)
        )


def decode_base64(data: str, label: str) -> bytes:
    """The bytes of an audio file that ``data`` carries in base64."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{label}: audio_base64 is not valid base64; send the file's bytes base64-encoded"
        ) from None
