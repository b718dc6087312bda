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
    ``vggish`` or ``sfx``. ``threads`` caps torch's intra-op threads (0: torch's default).
    """

    def __init__(
        self, encoder: str = "auto", models_dir: str = "models", threads: int = 0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if threads:
            torch.set_num_threads(threads)
        self.model, reason = load_encoder(encoder, models_dir=models_dir)
        self.logger.info(reason)
        self.identity = f"{self.model.name}/{self.model.version}"

    @requests(on=["/index", "/search"])
    def encode(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Embed the chunks of every document that decoded."""
        for doc in docs:
            if doc.status == "error" or doc.tensor is None:
                continue
            with item_errors(doc, self.logger):
                starts = np.array([round(c.start * SAMPLE_RATE) for c in doc.chunks])
                vectors = self.model.embed_windows(np.asarray(doc.tensor, np.float32), starts)
                for chunk, vector in zip(doc.chunks, vectors, strict=True):
                    chunk.embedding = vector
                doc.encoder = self.identity
                doc.tensor = None
        return docs
