"""Ranker: collapse the chunk matches of each query into its most similar clips."""

from docarray import DocList
from jina import Executor, requests

from audiosearch.index import ChunkHit
from audiosearch.rank import QueryChunkHits, check_limit, rank_by_best_chunk
from executors.docs import AudioDoc, ChunkDoc, ClipMatchDoc, item_errors


class Ranker(Executor):
    """Ranks clips by their best chunk-pair cosine score and keeps the top ``limit``."""

    @requests(on="/search")
    def rank(self, docs: DocList[AudioDoc], parameters: dict, **kwargs) -> DocList[AudioDoc]:
        """Replace each query's chunk matches with its ranked clip matches."""
        for doc in docs:
            with item_errors(doc, self.logger):
                if doc.status == "error":
                    continue
                chunks = [
                    QueryChunkHits(
                        c.start,
                        c.end,
                        [ChunkHit(m.clip_id, m.uri, m.score, m.start, m.end) for m in c.matches],
                    )
                    for c in doc.chunks
                ]
                ranked = rank_by_best_chunk(chunks, limit=check_limit(parameters.get("limit", 10)))
                doc.matches = DocList[ClipMatchDoc](ClipMatchDoc(**vars(m)) for m in ranked)
                doc.status = "searched"
            doc.chunks = DocList[ChunkDoc]()
            doc.fingerprint = doc.encoder = None
        return docs

    @requests(on="/index")
    def pass_through(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Indexing has nothing to rank; the endpoint exists because Jina chains every step."""
        return docs
