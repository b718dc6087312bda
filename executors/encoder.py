"""AudioEncoder: one vector per 4 s chunk, from VGGish or the pretrained sound-effects CNN."""

import numpy as np
import torch
from docarray import DocList
from jina import Executor, requests

from audiosearch.audio import SAMPLE_RATE
from audiosearch.encoder import load_encoder
from executors.docs import AudioDoc, item_errors


class AudioEncoder(Executor):
    """Fills ``chunk.embedding`` for every chunk and drops the waveform afterwards.

    ``encoder`` is ``auto`` (VGGish when its weights are in ``models_dir``, else ``sfx``),
    ``vggish`` or ``sfx``. ``threads``: torch's intra-op threads in this process (0: torch's
    default, one per physical core). The windows of all documents of a request go through the
    network together, in batches that run across files.
    """

    def __init__(
        self, encoder: str = "auto", models_dir: str = "models", threads: int = 0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if threads:  # flow.yml says why its value is what it is
            torch.set_num_threads(threads)
        self.model, reason = load_encoder(encoder, models_dir=models_dir)
        self.logger.info(f"{reason}; {torch.get_num_threads()} torch threads")
        self.identity = f"{self.model.name}/{self.model.version}"

    @requests(on=["/index", "/search"])
    def encode(self, docs: DocList[AudioDoc], parameters: dict, **kwargs) -> DocList[AudioDoc]:
        """Embed the chunks of every document that decoded, all in one batch."""
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


def clip(doc: AudioDoc) -> tuple[np.ndarray, np.ndarray]:
    """The waveform of ``doc`` and the sample offsets of its chunks."""
    starts = np.array([round(c.start * SAMPLE_RATE) for c in doc.chunks], dtype=np.int64)
    return np.asarray(doc.tensor, np.float32), starts
