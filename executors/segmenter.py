"""AudioSegmenter: decode each clip and cut it into 4 s windows at a 2 s stride."""

import base64
import binascii

from docarray import DocList
from jina import Executor, requests

from audiosearch.audio import load_audio
from audiosearch.errors import InvalidInputError
from audiosearch.paths import fingerprint, resolve_audio_path
from audiosearch.segment import STRIDE_SECONDS, Segments, segment
from executors.docs import AudioDoc, ChunkDoc, item_errors


class AudioSegmenter(Executor):
    """Decodes each clip into ``doc.tensor`` (16 kHz mono) and one chunk per window."""

    def __init__(self, stride_seconds: float = STRIDE_SECONDS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stride_seconds = stride_seconds

    @requests(on="/index")
    def segment_files(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Decode and window the file each document names; a failure marks only that one."""
        for doc in docs:
            with item_errors(doc, self.logger):
                if doc.audio_base64:
                    doc.audio_base64 = None
                    raise InvalidInputError(
                        "/index stores files the server can read again: send uri, not "
                        "audio_base64 (uploaded audio can be searched with, not indexed)"
                    )
                self._window(doc, self._decode_file(doc))
        return docs

    @requests(on="/search")
    def segment_queries(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Decode and window each query, given as a file path or as base64 audio bytes."""
        for doc in docs:
            with item_errors(doc, self.logger):
                if doc.audio_base64:
                    label = f"uploaded audio {doc.uri!r}" if doc.uri else "uploaded audio"
                    data, doc.audio_base64 = doc.audio_base64, None  # never echoed back
                    self._window(doc, segment_bytes(data, label, self.stride_seconds))
                else:
                    self._window(doc, self._decode_file(doc))
        return docs

    def _decode_file(self, doc: AudioDoc) -> Segments:
        path = resolve_audio_path(doc.uri)
        doc.uri = str(path)
        doc.fingerprint = fingerprint(path)
        return segment(load_audio(path), stride_seconds=self.stride_seconds)

    @staticmethod
    def _window(doc: AudioDoc, segments: Segments) -> None:
        doc.tensor = segments.waveform
        doc.duration = segments.duration
        doc.chunks = DocList[ChunkDoc](
            ChunkDoc(start=float(s), end=float(e))
            for s, e in zip(segments.start_seconds, segments.end_seconds, strict=True)
        )


def segment_bytes(data: str, label: str, stride_seconds: float) -> Segments:
    """Windows of the audio file whose bytes ``data`` carries in base64."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{label}: audio_base64 is not valid base64; send the file's bytes base64-encoded"
        ) from None
    return segment(load_audio(raw, label=label), stride_seconds=stride_seconds)
