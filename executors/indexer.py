"""SimpleIndexer: persistent exact cosine search over chunk vectors."""

import numpy as np
from docarray import DocList
from jina import Executor, requests

from audiosearch.index import ChunkIndex, ClipToAdd
from audiosearch.rank import check_limit
from executors.docs import AudioDoc, ChunkDoc, ClipMatchDoc, item_errors


def _encoded(docs: DocList[AudioDoc]) -> list[AudioDoc]:
    return [d for d in docs if d.status != "error" and d.chunks and d.encoder]


class SimpleIndexer(Executor):
    """Stores clips under the executor's workspace and finds each query chunk's best clips."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index = ChunkIndex(self.workspace)
        self.logger.info(
            f"index in {self.workspace}: {len(self.index)} clips, {self.index.chunk_count} chunks"
        )

    @requests(on="/index")
    def add(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Store every encoded document; each reports added, replaced or unchanged."""
        batch = _encoded(docs)
        clips = [
            ClipToAdd(
                uri=d.uri,
                duration=d.duration,
                starts=np.array([c.start for c in d.chunks]),
                ends=np.array([c.end for c in d.chunks]),
                vectors=np.stack([np.asarray(c.embedding) for c in d.chunks]),
                fingerprint=d.fingerprint,
            )
            for d in batch
        ]
        if batch:
            with item_errors(batch[0], self.logger):
                for doc, result in zip(
                    batch, self.index.add(clips, encoder=batch[0].encoder), strict=True
                ):
                    doc.clip_id, doc.status = result.clip_id, result.status
            if batch[0].status == "error":  # the whole write failed: every item says so
                for doc in batch[1:]:
                    doc.status, doc.error = "error", batch[0].error
        for doc in docs:
            doc.chunks = DocList[ChunkDoc]()
            doc.encoder = None
        return docs

    @requests(on="/search")
    def search(self, docs: DocList[AudioDoc], parameters: dict, **kwargs) -> DocList[AudioDoc]:
        """Attach to every query chunk the ``limit`` clips whose best chunk is closest."""
        for doc in docs:
            with item_errors(doc, self.logger):
                limit = check_limit(parameters.get("limit", 10))
                if doc not in _encoded([doc]):
                    continue
                queries = np.stack([np.asarray(c.embedding) for c in doc.chunks])
                per_chunk = self.index.search(queries, limit=limit, encoder=doc.encoder)
                for chunk, hits in zip(doc.chunks, per_chunk, strict=True):
                    chunk.embedding = None
                    chunk.matches = DocList[ClipMatchDoc](
                        ClipMatchDoc(
                            clip_id=h.clip_id, uri=h.uri, score=h.score, start=h.start, end=h.end
                        )
                        for h in hits
                    )
        return docs

    def close(self) -> None:
        """Close the index when the executor stops."""
        self.index.close()
        super().close()
