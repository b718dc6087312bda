"""AudioEncoder: one vector per 4 s chunk, from VGGish or the pretrained sound-effects CNN."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from docarray import DocList
from jina import Executor, requests

from audiosearch.audio import SAMPLE_RATE, load_audio
from audiosearch.encoders import load_encoder
from audiosearch.errors import InvalidInputError
from audiosearch.paths import ReadPolicy, readable_file
from executors.docs import AudioDoc, item_errors


class AudioEncoder(Executor):
    """Fills ``chunk.embedding`` for every chunk and drops the waveform afterwards.

    ``encoder`` is ``auto`` (VGGish when its weights are in ``models_dir``, else ``sfx``),
    ``vggish`` or ``sfx``. ``threads``: torch's intra-op threads in this process (0: torch's
    default, one per physical core). The windows of all documents of a request go through the
    network together, in batches that run across files. ``read_policy`` (flow.yml's, shared with
    the segmenter) governs decoding a long file again.
    """

    def __init__(
        self,
        encoder: str = "auto",
        models_dir: str = "models",
        threads: int = 0,
        read_policy: Mapping[str, Any] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.policy = ReadPolicy.from_config(read_policy)
        if threads:  # flow.yml says why its value is what it is
            torch.set_num_threads(threads)
        self.model, reason = load_encoder(encoder, models_dir=models_dir)
        self.logger.info(f"{reason}; {torch.get_num_threads()} torch threads")
        self.identity = f"{self.model.name}/{self.model.version}"

    @requests(on=["/index", "/search"])
    def encode(self, docs: DocList[AudioDoc], parameters: dict, **kwargs) -> DocList[AudioDoc]:
        """Embed the chunks of every document that decoded, all in one batch; then, one by
        one, those of long files the segmenter left for this process to decode again."""
        todo = [d for d in docs if d.status != "error" and d.tensor is not None]
        try:
            vectors = self.model.embed_batch([clip(doc) for doc in todo])
        except Exception:  # one document's fault: embed them one by one so it fails alone
            for doc in todo:
                with item_errors(doc, self.logger):
                    self._store(doc, self.model.embed_windows(*clip(doc)), parameters)
        else:
            for doc, doc_vectors in zip(todo, vectors, strict=True):
                self._store(doc, doc_vectors, parameters)
        for doc in docs:
            if doc.decode_again and doc.status != "error":
                with item_errors(doc, self.logger):
                    doc.tensor = decode_again(doc, self.policy)
                    self._store(doc, self.model.embed_windows(*clip(doc)), parameters)
                doc.tensor, doc.decode_again = None, None
        return docs

    def _store(self, doc: AudioDoc, vectors: np.ndarray, parameters: dict) -> None:
        """Put one vector on each chunk of ``doc``; drop its waveform unless still needed."""
        for chunk, vector in zip(doc.chunks, vectors, strict=True):
            chunk.embedding = vector
        doc.encoder = self.identity
        if not parameters.get("duplicates"):  # the ranker's copy check needs the audio
            doc.tensor = None

    @requests
    def pass_through(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """The library endpoints (/list, /clips, /delete, /stats) are the indexer's."""
        return docs


def decode_again(doc: AudioDoc, policy: ReadPolicy) -> np.ndarray:
    """The waveform of a long file the segmenter decoded and windowed but did not send on,
    provided the policy still lets it be read and it is still the file the segmenter read."""
    try:
        source = readable_file(doc.uri, policy, indexed_fingerprint=doc.fingerprint)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"{doc.uri}: changed while it was being indexed ({exc}); index it again"
        ) from None
    waveform = load_audio(source.path, max_seconds=doc.duration, label=doc.uri)
    if len(waveform) != round(doc.duration * SAMPLE_RATE):  # rewritten meanwhile
        raise InvalidInputError(f"{doc.uri}: changed while it was being indexed; index it again")
    return waveform


def clip(doc: AudioDoc) -> tuple[np.ndarray, np.ndarray]:
    """The waveform of ``doc`` (of its region, if it has one) and the sample offsets of its
    chunks in it (chunk times are the file's: a region's start is taken off)."""
    offset = doc.start or 0.0
    starts = np.array([round((c.start - offset) * SAMPLE_RATE) for c in doc.chunks], dtype=np.int64)
    return np.asarray(doc.tensor, np.float32), starts
