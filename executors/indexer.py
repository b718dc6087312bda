"""SimpleIndexer: the library of indexed clips, searched exactly or approximately.

With ``shards: N`` in flow.yml every shard receives every request (``polling: ALL``) and acts
for the clips it owns: a file's uri hashes to one shard, and a clip id names its shard (ids are
``shard + N * n``). A shard leaves other shards' documents untouched; :class:`ShardMerger`, the
shards' ``uses_after``, joins their answers.
"""

import os
from pathlib import Path
from traceback import format_exc
from urllib.parse import unquote, urlparse

import numpy as np
from docarray import DocList
from jina import Executor, requests

from audiosearch.audio.segment import check_region, windows_in_region
from audiosearch.errors import AudioSearchError, InvalidInputError
from audiosearch.feedback import Judgments, check_judgments
from audiosearch.index import (
    AnnSettings,
    ChunkIndex,
    ClipFilter,
    ClipInfo,
    ClipToAdd,
    clip_shard,
    read_stored_clip,
)
from audiosearch.library_map import project
from audiosearch.params import ListParameters, SearchParameters, parse_parameters
from audiosearch.paths import is_http_uri
from audiosearch.rank import check_flag
from executors.docs import AudioDoc, ChunkDoc, ClipMatchDoc, fail, item_errors

#: Totals that add up over shards in /stats.
_ADDITIVE_STATS = ("clips", "chunks", "dead_chunks", "audio_seconds", "vector_bytes")


def _encoded(docs: DocList[AudioDoc]) -> list[AudioDoc]:
    return [d for d in docs if d.status != "error" and d.chunks and d.encoder]


def stored_uri(uri: str) -> str:
    """``uri`` as the index stores it: a URL as it is, a path (or ``file://`` URI) absolute."""
    if is_http_uri(uri):
        return uri
    parsed = urlparse(uri)
    if parsed.scheme.lower() == "file":
        uri = unquote(parsed.path)
    return os.path.abspath(Path(uri).expanduser())


def describe(doc: AudioDoc, clip: ClipInfo, status: str) -> AudioDoc:
    """``doc`` filled with what the index knows of ``clip``."""
    doc.clip_id, doc.uri, doc.duration = clip.clip_id, clip.uri, clip.duration
    doc.chunk_count, doc.indexed_at = clip.chunk_count, clip.indexed_at
    doc.fingerprint, doc.status = clip.fingerprint, status
    return doc


def not_indexed(name: str) -> InvalidInputError:
    """The error for a clip id or uri that names no indexed clip."""
    return InvalidInputError(f"{name}: not in the index; list the library with /list")


class SimpleIndexer(Executor):
    """Stores clips under the executor's workspace; lists, describes, deletes and searches them.

    ``dtype``: how chunk vectors are stored, ``float32`` or ``float16`` (half the memory).
    ``search``: ``auto`` answers approximately once the library holds ``ann_min_chunks``
    chunks, scanning ``ann_nprobe`` clusters per query chunk (faiss IVF), exactly below;
    ``ann`` is its older name. ``exact`` scores every row; from ``ann_min_chunks`` chunks an
    IVF index then only guesses query expansion's nearest chunks (one pass, same answers).
    ``query_expansion``: search each query chunk again together with its nearest indexed
    chunk (see :meth:`ChunkIndex.search`); a /search request may say otherwise.
    Scale out with ``shards``; replicas of one shard would share, and fight over, its workspace.
    """

    def __init__(
        self,
        dtype: str = "float32",
        search: str = "auto",
        ann_min_chunks: int = AnnSettings.min_chunks,
        ann_nprobe: int = AnnSettings.nprobe,
        query_expansion: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.query_expansion = check_flag("query_expansion", query_expansion)
        if search not in ("auto", "exact", "ann"):
            raise InvalidInputError(
                f"search={search!r}: expected auto, exact or ann (the indexer's uses_with in "
                "flow.yml)"
            )
        self.shard = getattr(self.runtime_args, "shard_id", None) or 0
        self.shards = getattr(self.runtime_args, "shards", None) or 1
        if self.query_expansion and self.shards > 1:
            self.logger.warning(
                f"query expansion is off: with {self.shards} shards each would expand a query "
                "with its own nearest chunk, and the answers would differ from one index's"
            )
            self.query_expansion = False
        ann = AnnSettings(
            min_chunks=ann_min_chunks, nprobe=ann_nprobe, approximate=search != "exact"
        )
        self.index = ChunkIndex(
            self.workspace, dtype=dtype, shard=self.shard, shards=self.shards, ann=ann
        )
        stats = self.index.stats()
        self.logger.info(
            f"index in {self.workspace}: {stats['clips']} clips, {stats['chunks']} chunks, "
            f"{stats['dtype']}, {stats['search']} search, shard {self.shard} of {self.shards}"
        )

    @requests(on="/index")
    def add(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Store every encoded document this shard owns: added, replaced or unchanged."""
        batch = [d for d in _encoded(docs) if self.index.owns_uri(d.uri)]
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
            try:
                results = self.index.add(clips, encoder=batch[0].encoder)
            except AudioSearchError as exc:  # the whole write failed: every item says why
                for doc in batch:
                    fail(doc, str(exc))
            except Exception as exc:
                self.logger.error(f"storing {len(batch)} clips: {exc!r}\n{format_exc()}")
                for doc in batch:
                    fail(doc, f"storing this request's clips failed ({exc!r}); see the server "
                              "log, then send the request again")  # fmt: skip
            else:
                for doc, result in zip(batch, results, strict=True):
                    doc.clip_id, doc.status = result.clip_id, result.status
        for doc in docs:
            doc.chunks = DocList[ChunkDoc]()
            doc.encoder = None
        return docs

    @requests(on="/search")
    def search(self, docs: DocList[AudioDoc], parameters: dict, **kwargs) -> DocList[AudioDoc]:
        """Attach to every query chunk the ``limit`` clips whose best chunk is closest; with
        judgments, rank the clips of each query here (:meth:`ChunkIndex.search_judged`).

        A document with a ``clip_id`` asks for clips like that indexed clip: its stored chunks
        are the query and it is left out of the answer. ``min_duration``, ``max_duration`` and
        ``path_glob`` leave out clips before the best are chosen. ``query_expansion`` (true or
        false) overrides the flow's setting for this request. ``like`` and ``unlike`` (clip
        ids) and documents marked ``liked`` (audio the user likes) are judgments; with no
        query document they are the query ("more like these"), answered in a new document.
        """
        examples = [d for d in docs if d.liked]
        if (parameters.get("like") or examples) and len(examples) == len(docs):
            docs.append(AudioDoc(uri=None))  # "more like these": the answer needs a document
        for doc in examples:
            doc.status = doc.status or "example"
        for doc in docs:
            if doc.liked:
                continue
            with item_errors(doc, self.logger):
                self._search_one(doc, parameters, examples)
        for doc in examples:
            doc.chunks, doc.encoder = DocList[ChunkDoc](), None
        return docs

    def _search_one(self, doc: AudioDoc, parameters: dict, examples: list[AudioDoc]) -> None:
        """Search with one query document, as :meth:`search` says."""
        if doc.status == "error":
            return
        request = parse_parameters(SearchParameters, parameters)
        limit = request.limit
        expand = (
            self.query_expansion if request.query_expansion is None else request.query_expansion
        )
        if expand and self.shards > 1:
            raise InvalidInputError(
                f"query_expansion=true: needs a single indexer shard, this flow has "
                f"{self.shards}; leave the parameter out"
            )
        where = request.clip_filter()
        judgments = check_judgments(request.like, request.unlike)
        failed = [e for e in examples if e.status == "error"]
        if failed:
            raise InvalidInputError(f"a liked example failed: {failed[0].error}")
        judged = bool(judgments.liked or judgments.disliked or examples)
        if doc.clip_id is not None and doc.status != "error" and not doc.chunks:
            self._query_with_stored_chunks(doc)
        if judged:
            self._search_judged(doc, judgments, examples, limit, where, expand)
            return
        if doc not in _encoded([doc]):
            return
        queries = np.stack([np.asarray(c.embedding) for c in doc.chunks])
        per_chunk = self.index.search(
            queries, limit=limit, encoder=doc.encoder, exclude=doc.clip_id, where=where,
            expand=expand,
        )  # fmt: skip
        for chunk, hits in zip(doc.chunks, per_chunk, strict=True):
            chunk.embedding = None
            chunk.matches = DocList[ClipMatchDoc](
                ClipMatchDoc(clip_id=h.clip_id, uri=h.uri, score=h.score, start=h.start, end=h.end)
                for h in hits
            )

    def _search_judged(
        self, doc: AudioDoc, judgments: Judgments, examples: list[AudioDoc], limit: int,
        where: ClipFilter | None, expand: bool,
    ) -> None:  # fmt: skip
        """Rank clips for ``doc`` with the judgments; the ranked clips go in ``doc.matches``."""
        if self.shards > 1:
            raise InvalidInputError(
                f"like/unlike: judgments need a single indexer shard, this flow has {self.shards}"
                "; search without them"
            )
        if doc.chunks and not doc.encoder:
            return  # the query failed before it was encoded
        if not doc.chunks and not (judgments.liked or examples):
            raise InvalidInputError(
                "nothing to search with: send a query, or like at least one clip"
            )
        vectors = [np.asarray(c.embedding) for c in doc.chunks]
        width = len(vectors[0]) if vectors else (self.index.dim or 0)  # none: more like these
        hits = self.index.search_judged(
            np.array(vectors, dtype=np.float32).reshape(len(vectors), width),
            np.array([(c.start, c.end) for c in doc.chunks]).reshape(len(vectors), 2),
            judgments=judgments,
            liked_audio=[np.stack([np.asarray(c.embedding) for c in e.chunks]) for e in examples],
            limit=limit, encoder=doc.encoder or next((e.encoder for e in examples), ""),
            exclude=doc.clip_id, where=where, expand=expand,
        )  # fmt: skip
        doc.chunks = DocList[ChunkDoc]()
        doc.matches = DocList[ClipMatchDoc](ClipMatchDoc(**vars(h)) for h in hits)

    def _query_with_stored_chunks(self, doc: AudioDoc) -> None:
        """Make the stored chunks of clip ``doc.clip_id`` the query (any shard may store it)."""
        owner = clip_shard(doc.clip_id, self.shards)
        workspace = (
            Path(self.workspace)
            if owner == self.shard
            else Path(self.workspace).parent / str(owner)
        )
        try:
            stored = read_stored_clip(workspace, doc.clip_id)
        except FileNotFoundError:
            raise InvalidInputError(
                f"clip_id={doc.clip_id}: stored by indexer shard {owner}, whose workspace "
                f"{workspace} this shard cannot read; searching like an indexed clip across "
                "shards needs their workspaces on one filesystem: search with its file instead"
            ) from None
        if stored is None:
            raise not_indexed(f"clip_id={doc.clip_id}")
        doc.uri, doc.duration, doc.encoder = stored.info.uri, stored.info.duration, stored.encoder
        chosen = np.arange(len(stored.starts))
        region = check_region(doc.start, doc.end)
        if region is not None:  # the stored windows of that part of the clip
            chosen = windows_in_region(
                stored.starts, stored.ends, region, duration=stored.info.duration,
                label=f"clip_id={doc.clip_id}",
            )  # fmt: skip
            doc.duration = (stored.info.duration if region.end is None else region.end) - (
                region.start
            )
        doc.chunks = DocList[ChunkDoc](
            ChunkDoc(start=float(stored.starts[i]), end=float(stored.ends[i]),
                     embedding=stored.vectors[i])
            for i in chosen
        )  # fmt: skip

    @requests(on="/list")
    def list_clips(self, docs: DocList[AudioDoc], parameters: dict, **kwargs) -> DocList[AudioDoc]:
        """One page of the library in clip id order: ``limit`` clips from ``offset``."""
        try:
            page = parse_parameters(ListParameters, parameters)
        except InvalidInputError as exc:
            return DocList[AudioDoc]([AudioDoc(status="error", error=str(exc))])
        offset, limit = page.offset, page.limit
        if self.shards > 1:  # any shard may hold any part of the page: the merger cuts it
            offset, limit = 0, offset + limit
        return DocList[AudioDoc](
            describe(AudioDoc(), clip, "indexed")
            for clip in self.index.clips(offset=offset, limit=limit)
        )

    @requests(on="/clips")
    def clips(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """What the index knows of each clip named by ``clip_id`` or ``uri``."""
        for doc in docs:
            with item_errors(doc, self.logger):
                clip = self._named_clip(doc)
                if clip is not None:
                    describe(doc, clip, "indexed")
        return docs

    @requests(on="/delete")
    def delete(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """Remove each clip named by ``clip_id`` or ``uri`` from the index, in one transaction."""
        doomed: list[tuple[AudioDoc, ClipInfo]] = []
        for doc in docs:
            with item_errors(doc, self.logger):
                clip = self._named_clip(doc)
                if clip is not None:
                    doomed.append((doc, clip))
        try:
            self.index.delete([clip.clip_id for _, clip in doomed])
        except AudioSearchError as exc:  # the whole write failed: every item says why
            for doc, _ in doomed:
                fail(doc, str(exc))
            return docs
        for doc, clip in doomed:
            describe(doc, clip, "deleted")
        return docs

    def _named_clip(self, doc: AudioDoc) -> ClipInfo | None:
        """The clip ``doc`` names; None if another shard owns it; InvalidInputError if absent."""
        if doc.clip_id is not None:
            if not self.index.owns_clip(doc.clip_id):
                return None
            clip, name = self.index.get(doc.clip_id), f"clip_id={doc.clip_id}"
        elif doc.uri:
            uri = stored_uri(doc.uri)
            if not self.index.owns_uri(uri):
                return None
            clip, name = self.index.find(uri), uri
        else:
            raise InvalidInputError(
                'name the clip: send {"clip_id": N} or {"uri": "<path>"}, as /list shows them'
            )
        if clip is None:
            raise not_indexed(name)
        return clip

    @requests(on="/stats")
    def stats(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """One document whose ``stats`` hold the counts and settings of the index."""
        return DocList[AudioDoc]([AudioDoc(stats=self.index.stats())])

    @requests(on="/map")
    def library_map(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """One document whose ``stats`` hold every clip's ``clip_ids``, ``uris`` and map
        coordinates ``x``, ``y`` (0..1, :func:`audiosearch.library_map.project`)."""
        if self.shards > 1:
            return DocList[AudioDoc]([AudioDoc(status="error", error=(
                f"the library map needs a single indexer shard, this flow has {self.shards}; "
                "list the library with /list instead"
            ))])  # fmt: skip
        ids, means = self.index.clip_means()
        points = project(means)
        uris = {clip.clip_id: clip.uri for clip in self.index.clips()}
        return DocList[AudioDoc]([AudioDoc(status="mapped", stats={
            "clip_ids": ids.tolist(), "uris": [uris[int(i)] for i in ids],
            "x": points[:, 0].round(5).tolist(), "y": points[:, 1].round(5).tolist(),
        })])  # fmt: skip

    def close(self) -> None:
        """Save and close the index when the executor stops."""
        self.index.close()
        super().close()


class ShardMerger(Executor):
    """Joins the answers of the indexer's shards into one (their ``uses_after`` in flow.yml).

    Jina runs it only for ``shards`` > 1 and hands it each shard's documents as
    ``docs_matrix``. A shard that does not answer is left out by the shards' head without a
    word; here every item it would have answered for says so instead, and a search, a page or
    the stats, which would be incomplete without it, fail whole.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shards = getattr(self.runtime_args, "shards", None) or 1

    def _missing(self, docs_matrix: list | None) -> str | None:
        """What to tell the client when fewer shards answered than the flow has, else None."""
        answered = len(docs_matrix) if docs_matrix else 1
        if answered >= self.shards:
            return None
        return (
            f"{self.shards - answered} of the {self.shards} indexer shards did not answer "
            "(GET /health names them); try again once it answers ok"
        )

    @requests(on=["/index", "/clips", "/delete", "/map"])
    def owners_answers(
        self, docs: DocList[AudioDoc], docs_matrix: list | None = None, **kwargs
    ) -> DocList[AudioDoc]:
        """Each document as the shard that owns it answered (the others left it untouched)."""
        missing = self._missing(docs_matrix)
        merged = (
            DocList[AudioDoc](
                next((d for d in copies if d.status is not None), copies[0])
                for copies in zip(*docs_matrix, strict=True)
            )
            if docs_matrix and len(docs_matrix) > 1
            else docs
        )
        for doc in merged:
            if missing and doc.status is None:  # its owner is the shard that did not answer
                fail(doc, f"{doc.uri or f'clip_id={doc.clip_id}'}: not done: {missing}")
        return merged

    @requests(on="/search")
    def all_matches(
        self, docs: DocList[AudioDoc], docs_matrix: list | None = None, **kwargs
    ) -> DocList[AudioDoc]:
        """Each query chunk with the matches of every shard (an error from any shard wins)."""
        missing = self._missing(docs_matrix)
        if missing:
            for doc in docs:
                if doc.status != "error":
                    fail(doc, f"not searched: the answer would lack clips; {missing}")
            return docs
        merged = DocList[AudioDoc]()
        for copies in zip(*docs_matrix, strict=True):
            failed = [d for d in copies if d.status == "error"]
            doc = failed[0] if failed else copies[0]
            if not failed:
                for other in copies[1:]:
                    for chunk, other_chunk in zip(doc.chunks, other.chunks, strict=True):
                        chunk.matches.extend(other_chunk.matches)
            merged.append(doc)
        return merged

    @requests(on="/list")
    def page(
        self, docs: DocList[AudioDoc], parameters: dict, docs_matrix: list | None = None, **kwargs
    ) -> DocList[AudioDoc]:
        """The requested page of the shards' lists merged in clip id order."""
        failed = [d for d in docs if d.status == "error"]
        if failed:  # a bad offset or limit: every shard said so
            return DocList[AudioDoc](failed[:1])
        missing = self._missing(docs_matrix)
        if missing:
            return DocList[AudioDoc]([AudioDoc(status="error", error=f"no page: {missing}")])
        page = parse_parameters(ListParameters, parameters)
        ordered = sorted(docs, key=lambda d: d.clip_id)
        return DocList[AudioDoc](ordered[page.offset : page.offset + page.limit])

    @requests(on="/stats")
    def totals(self, docs: DocList[AudioDoc], **kwargs) -> DocList[AudioDoc]:
        """The shards' counts added up; their own stats under ``per_shard``. With a shard
        missing, an error naming it (``stats.missing_shards``), which GET /health reports."""
        parts = sorted((d.stats for d in docs if d.stats), key=lambda s: s["shard"])
        answered = {p["shard"] for p in parts}
        absent = [f"indexer shard {i}" for i in range(self.shards) if i not in answered]
        if absent:
            return DocList[AudioDoc]([AudioDoc(
                status="error",
                error=f"{', '.join(absent)} did not answer; try again once GET /health answers ok",
                stats={"shards": self.shards, "missing_shards": absent},
            )])  # fmt: skip
        total = {k: v for k, v in parts[0].items() if k != "shard"}
        total.update({key: sum(p[key] for p in parts) for key in _ADDITIVE_STATS})
        total["search"] = "ann" if any(p["search"] == "ann" for p in parts) else "exact"
        total["per_shard"] = parts
        return DocList[AudioDoc]([AudioDoc(stats=total)])
