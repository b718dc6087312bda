"""The one HTTP client of the service: the command line, the tests and the benchmarks use it.

    from audiosearch.client import AudioSearchClient
    client = AudioSearchClient()            # AUDIOSEARCH_URL, else flow.yml's port on 127.0.0.1
    client.index(["~/sounds"])              # one result per file
    client.search("query.wav", audio=Path("query.wav").read_bytes(), limit=5)

Every method raises :class:`RequestFailed` when the service answers a request with an HTTP
error or not in time, and :class:`ServiceUnreachable` (a RequestFailed) when nothing answers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = [
    "API_KEY_ENV", "AUDIO_SUFFIXES", "INDEX_REQUESTS_IN_FLIGHT", "URL_ENV", "AudioSearchClient",
    "RequestFailed", "ServiceUnreachable", "batched", "default_url", "find_audio",
]  # fmt: skip

#: The API key the service requires (if set where it runs) and that clients send.
API_KEY_ENV = "AUDIOSEARCH_API_KEY"
#: Where the service answers, for every client that is not told otherwise.
URL_ENV = "AUDIOSEARCH_URL"
FLOW_YML = Path(__file__).resolve().parent.parent / "flow.yml"
#: Suffixes of the files that ``index`` collects from folders.
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus",
                            ".aif", ".aiff", ".wma", ".webm"})  # fmt: skip
#: /index requests kept in flight: the segmenter decodes the next batch while the encoder (a
#: separate process) embeds the current one. More only holds more decoded audio in memory.
INDEX_REQUESTS_IN_FLIGHT = 2
#: Files per /index request unless told otherwise.
DEFAULT_BATCH_SIZE = 16
#: Seconds a request may take (a batch of long files takes minutes on a slow machine).
DEFAULT_TIMEOUT = 600.0

Doc = dict[str, Any]


class RequestFailed(Exception):
    """The service answered a request with an HTTP error (``status``), or did not answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServiceUnreachable(RequestFailed):
    """Nothing answers at the client's URL."""


def default_url() -> str:
    """``AUDIOSEARCH_URL``, else http://127.0.0.1 at the port flow.yml serves on."""
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV].rstrip("/")
    port = yaml.safe_load(FLOW_YML.read_text())["with"]["port"]
    return f"http://127.0.0.1:{port}"


def find_audio(paths: Iterable[str | Path]) -> list[Path]:
    """Audio files named in ``paths``, folders searched recursively, sorted, absolute."""
    found: list[Path] = []
    for name in paths:
        path = Path(name).expanduser().absolute()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            found.append(path)  # the service reports a missing or unreadable file itself
    return found


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def _named(clips: Iterable[int | str | Path]) -> list[Doc]:
    """Documents naming clips by id (an int or a string of digits) or by path."""
    return [
        {"clip_id": int(c)} if isinstance(c, int) or str(c).isdigit() else {"uri": str(c)}
        for c in clips
    ]


class AudioSearchClient:
    """Calls the service at ``url`` over HTTP, sending ``api_key`` (default: the environment's
    AUDIOSEARCH_API_KEY) in the X-API-Key header; ``timeout`` in seconds, None for none."""

    def __init__(
        self, url: str | None = None, *, api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:  # fmt: skip
        self.url = (url or default_url()).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.headers = {"X-API-Key": key} if key else {}
        self.timeout = timeout

    def post(self, endpoint: str, docs: list[Doc], parameters: dict | None = None) -> list[Doc]:
        """POST ``docs`` and ``parameters`` to ``endpoint``; the documents of the answer."""
        endpoint = endpoint.strip("/")
        body = {"data": docs, "parameters": parameters or {}}
        response = self._send("POST", endpoint, json=body)
        if response.status_code != 200:
            raise RequestFailed(
                f"{endpoint} failed: HTTP {response.status_code}: {reason(response)}",
                response.status_code,
            )
        return response.json()["data"]

    def health(self) -> dict[str, Any]:
        """``GET /health``: ``{"status": "ok" | "unavailable", "executors": {...}}``."""
        response = self._send("GET", "health")
        try:
            return response.json()
        except ValueError:
            raise RequestFailed(
                f"health failed: HTTP {response.status_code}: {response.text[:500]}",
                response.status_code,
            ) from None

    def index(
        self, paths: Iterable[str | Path], *, batch_size: int | None = None,
        skip_unchanged: bool = True, progress: Callable[[list[Doc]], None] | None = None,
    ) -> list[Doc]:  # fmt: skip
        """Index the audio files under ``paths`` (folders recursively); one result per file.

        Files the index holds as they are now come first, as ``unchanged``, without being sent
        (with ``skip_unchanged``). The others go in batches of ``batch_size``,
        ``INDEX_REQUESTS_IN_FLIGHT`` at a time; a batch the service fails as a whole is sent
        again file by file, so one bad file fails alone. ``progress`` is called with the
        results so far once the unchanged files are known, then after each batch.
        """
        files = find_audio(paths)
        results, todo = self._unchanged(files) if skip_unchanged else ([], files)
        if progress is not None:
            progress(results)
        pool = ThreadPoolExecutor(INDEX_REQUESTS_IN_FLIGHT)
        try:
            for answer in pool.map(
                self._index_batch, batched(todo, batch_size or DEFAULT_BATCH_SIZE)
            ):
                results += answer
                if progress is not None:
                    progress(results)
        finally:
            pool.shutdown(cancel_futures=True)  # after an error or Ctrl-C, send no more
        return results

    def search(
        self, path: str | Path | None = None, *, clip_id: int | None = None,
        audio: bytes | None = None, start: float | None = None, end: float | None = None,
        like: Iterable[int] = (), unlike: Iterable[int] = (), **parameters: Any,
    ) -> list[Doc]:  # fmt: skip
        """The ranked matches of a query: the file at ``path`` as the service reads it, the
        bytes ``audio`` (``path`` then only names them), or indexed clip ``clip_id``; with no
        query, the ``like`` clips are it. See :meth:`search_result`."""
        answer = self.search_result(
            path, clip_id=clip_id, audio=audio, start=start, end=end, like=like, unlike=unlike,
            **parameters,
        )  # fmt: skip
        if answer.get("status") == "error":
            raise RequestFailed(f"search failed: {answer['error']}")
        return answer["matches"]

    def search_result(
        self, path: str | Path | None = None, *, clip_id: int | None = None,
        audio: bytes | None = None, start: float | None = None, end: float | None = None,
        like: Iterable[int] = (), unlike: Iterable[int] = (), **parameters: Any,
    ) -> Doc:  # fmt: skip
        """The whole answer document of a search (``status``, ``error``, ``matches``...);
        ``parameters`` are /search's (:class:`audiosearch.params.SearchParameters`)."""
        query: Doc = {}
        if clip_id is not None:
            query["clip_id"] = clip_id
        if audio is not None:
            query["audio_base64"] = base64.b64encode(audio).decode("ascii")
        if path is not None:
            query["uri"] = Path(path).name if audio is not None else str(path)
        query |= {k: v for k, v in (("start", start), ("end", end)) if v is not None}
        judged = {"like": list(dict.fromkeys(like)), "unlike": list(dict.fromkeys(unlike))}
        parameters = {k: v for k, v in parameters.items() if v is not None}
        [answer] = self.post(
            "search", [query] if query else [], parameters | {k: v for k, v in judged.items() if v}
        )
        return answer

    def clips(self, ids: Iterable[int | str | Path]) -> list[Doc]:
        """What the index holds of each clip, named by id or path (``status`` ``indexed``)."""
        return self.post("clips", _named(ids))

    def list(self, offset: int = 0, limit: int | None = None) -> list[Doc]:
        """One page of the library in clip id order (``limit``: the service's default)."""
        parameters = {"offset": offset} | ({"limit": limit} if limit is not None else {})
        return self.post("list", [], parameters)

    def delete(self, ids: Iterable[int | str | Path]) -> list[Doc]:
        """Remove clips, named by id or path, from the index; one result each."""
        return self.post("delete", _named(ids))

    def stats(self) -> dict[str, Any]:
        """What the index holds and how it is set up."""
        [doc] = self.post("stats", [])
        if doc.get("status") == "error":
            raise RequestFailed(f"stats failed: {doc['error']}")
        return doc.get("stats") or {}

    def _send(self, method: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        try:
            return httpx.request(
                method, f"{self.url}/{endpoint}", headers=self.headers, timeout=self.timeout,
                **kwargs,
            )  # fmt: skip
        except httpx.TimeoutException as exc:
            raise RequestFailed(f"{endpoint}: no answer in time ({exc!r})") from None
        except httpx.HTTPError as exc:
            raise ServiceUnreachable(
                f"cannot reach the service at {self.url} ({exc}); start it: python app.py serve"
            ) from None

    def _unchanged(self, files: Sequence[Path]) -> tuple[list[Doc], list[Path]]:
        """The files the index holds as they are now (as ``unchanged`` results), and the others.

        Comparing size and modification time here spares the service decoding and encoding
        files that it would only find unchanged: re-indexing a library costs what changed.
        """
        from audiosearch.paths import fingerprint, same_content

        unchanged: list[Doc] = []
        todo: list[Path] = []
        per_request = yaml.safe_load(FLOW_YML.read_text())["gateway"]["uses_with"]["max_docs"]
        try:
            for batch in batched(files, per_request):
                for path, doc in zip(batch, self.clips(batch), strict=True):
                    stored = doc.get("fingerprint")
                    if (
                        doc.get("status") == "indexed"
                        and stored
                        and path.is_file()
                        and same_content(stored, fingerprint(path))
                    ):
                        unchanged.append(doc | {"status": "unchanged"})
                    else:
                        todo.append(path)
        except ServiceUnreachable:
            raise
        except RequestFailed:  # a service without /clips: it finds unchanged files itself
            return [], list(files)
        return unchanged, todo

    def _index_batch(self, files: Sequence[Path]) -> list[Doc]:
        """``/index``'s answer for ``files``; after a failure of the whole request, each
        file's own answer."""
        try:
            return self.post("index", [{"uri": str(p)} for p in files])
        except ServiceUnreachable:
            raise
        except RequestFailed as exc:
            if len(files) == 1:
                return [{"uri": str(files[0]), "status": "error", "error": str(exc)}]
            return [doc for path in files for doc in self._index_batch([path])]


def reason(response: httpx.Response) -> str:
    """What an error response says: its JSON ``detail`` when it is a message, else its text."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return detail if isinstance(detail, str) else response.text[:500]
