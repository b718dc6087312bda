"""Ranker: collapse the chunk matches of each query into its most similar clips."""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from docarray import DocList
from jina import Executor, requests

from audiosearch.audio import SAMPLE_RATE, load_audio
from audiosearch.duplicates import find_duplicates
from audiosearch.errors import AudioSearchError, InvalidInputError
from audiosearch.params import SearchParameters, parse_parameters
from audiosearch.paths import ReadPolicy, readable_file
from audiosearch.rank import (
    DEFAULT_STRATEGY,
    ChunkHit,
    ClipMatch,
    QueryChunkHits,
    check_strategy,
    rank_clips,
)
from executors.docs import AudioDoc, ChunkDoc, ClipMatchDoc, item_errors


class Ranker(Executor):
    """Ranks clips by their chunk matches and keeps the top ``limit``.

    ``strategy`` names how chunk matches make a clip's score (see
    :data:`audiosearch.rank.STRATEGIES`); a request may pick another with its ``strategy``
    parameter. With ``duplicates=true`` a request gets, of those ``limit`` clips, only the
    copies of the query (re-encoded, trimmed, louder or quieter), each scored by how well its
    audio correlates with the query's (see :mod:`audiosearch.duplicates`); their files are
    read as ``read_policy`` (flow.yml's, shared with the segmenter) allows.
    """

    def __init__(
        self,
        strategy: str = DEFAULT_STRATEGY,
        read_policy: Mapping[str, Any] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.strategy = check_strategy(strategy)
        self.policy = ReadPolicy.from_config(read_policy)

    @requests(on="/search")
    def rank(self, docs: DocList[AudioDoc], parameters: dict, **kwargs) -> DocList[AudioDoc]:
        """Replace each query's chunk matches with its ranked clip matches (a query searched
        with judgments comes ranked by the index already)."""
        for doc in docs:
            with item_errors(doc, self.logger):
                if doc.status in ("error", "example"):
                    continue
                request = parse_parameters(SearchParameters, parameters)
                if doc.matches:  # ranked with judgments
                    if request.duplicates:
                        raise InvalidInputError(
                            "duplicates=true finds copies of one query: send it without "
                            "like/unlike or liked items"
                        )
                    ranked = [ClipMatch(**m.dict(exclude={"id"})) for m in doc.matches]
                else:
                    ranked = self._ranked(doc, request)
                doc.matches = DocList[ClipMatchDoc](
                    ClipMatchDoc(**vars(m))
                    for m in ranked
                    if request.min_score is None or m.score >= request.min_score
                )
                doc.status = "searched"
            doc.chunks = DocList[ChunkDoc]()
            doc.fingerprint = doc.encoder = doc.tensor = None
        return docs

    def _ranked(self, doc: AudioDoc, request: SearchParameters) -> list[ClipMatch]:
        """The clips ``doc``'s chunk matches rank first (of them, with ``duplicates``, the
        copies of the query)."""
        chunks = [
            QueryChunkHits(
                c.start, c.end,
                [ChunkHit(m.clip_id, m.uri, m.score, m.start, m.end) for m in c.matches],
            )
            for c in doc.chunks
        ]  # fmt: skip
        ranked = rank_clips(
            chunks,
            strategy=request.strategy or self.strategy,
            limit=request.limit,
            exclude=doc.clip_id,  # "more like this": not the clip itself
        )
        if not request.duplicates:
            return ranked
        ranked = find_duplicates(self._query_waveform(doc), ranked, self._load_indexed)
        offset = doc.start or 0.0  # aligned within the region: back to the query file's time
        return [
            replace(m, query_start=m.query_start + offset, query_end=m.query_end + offset)
            for m in ranked
        ]

    @staticmethod
    def _query_waveform(doc: AudioDoc) -> np.ndarray:
        """The query's decoded audio, which the encoder keeps for ``duplicates=true``."""
        if doc.tensor is None:
            raise InvalidInputError(
                "duplicates=true compares audio: send the query as uri or audio_base64 "
                "(a clip_id alone carries none)"
            )
        # The segmenter loops a clip shorter than a window; the copy check needs the clip itself.
        return np.asarray(doc.tensor, dtype=np.float32)[: round(doc.duration * SAMPLE_RATE)]

    def _load_indexed(self, uri: str) -> np.ndarray | None:
        """An indexed clip's audio up to the policy's ``max_seconds``, or None (logged) when
        the policy no longer lets its file be read or it cannot be decoded."""
        try:
            source = readable_file(uri, self.policy)
            return load_audio(source.path, max_seconds=self.policy.max_seconds, label=uri)
        except AudioSearchError as exc:
            self.logger.warning(f"duplicates: skipping {uri}: {exc}")
            return None

    @requests(on=["/index", "/list", "/clips", "/delete", "/stats", "/map"])
    def pass_through(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Nothing to rank; the endpoints exist because Jina chains every step."""
        return docs
