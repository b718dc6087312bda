"""AudioSegmenter: decode each clip and cut it into 4 s windows at a 2 s stride."""

from docarray import DocList
from jina import Executor, requests

from audiosearch.audio import load_audio
from audiosearch.paths import fingerprint, resolve_audio_path
from audiosearch.segment import STRIDE_SECONDS, segment
from executors.docs import AudioDoc, ChunkDoc, item_errors


class AudioSegmenter(Executor):
    """Decodes ``doc.uri`` into ``doc.tensor`` (16 kHz mono) and one chunk per window."""

    def __init__(self, stride_seconds: float = STRIDE_SECONDS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stride_seconds = stride_seconds

    @requests(on=["/index", "/search"])
    def segment(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Decode and window every document; a failure marks only that document."""
        for doc in docs:
            with item_errors(doc, self.logger):
                path = resolve_audio_path(doc.uri)
                doc.uri = str(path)
                doc.fingerprint = fingerprint(path)
                segments = segment(load_audio(path), stride_seconds=self.stride_seconds)
                doc.tensor = segments.waveform
                doc.duration = segments.duration
                doc.chunks = DocList[ChunkDoc](
                    ChunkDoc(start=float(s), end=float(e))
                    for s, e in zip(segments.start_seconds, segments.end_seconds, strict=True)
                )
        return docs
