"""A guard in front of the HTTP API: an optional API key, bounded requests, and clear 4xx errors.

Jina's routes take whatever arrives: a 100 MB body is parsed into millions of documents,
unknown fields are dropped without a word and a bad parameter surfaces only deep in the flow.
The guard checks every request before a route sees it and answers, as ``{"detail": "..."}``:

- 401 when an API key is configured and the ``X-API-Key`` header is missing or wrong
  (``/``, the Swagger page and its assets stay open);
- 413 for a body over ``max_body_mb``;
- 400 for a flow endpoint's body that is not JSON, 422 for one that is not shaped like
  ``{"data": [...], "parameters": {...}}``: unknown fields, too many documents, fields only the
  service fills, a target executor, or a ``limit`` outside 1..1000 on /search.
"""

import difflib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI
from starlette.responses import JSONResponse

from audiosearch.errors import InvalidInputError
from audiosearch.rank import check_limit
from executors.docs import AudioDoc

MAX_BODY_MB = 32
MAX_DOCS = 256
API_KEY_HEADER = "X-API-Key"
#: The web page keeps the key in this same-site cookie: <audio> elements cannot send headers.
API_KEY_COOKIE = "audiosearch_api_key"
#: Paths anyone may GET: the health check Jina's tooling polls, the API's documentation and the
#: web page's static files (they hold no data; the page asks for the key on its first 401).
OPEN_PATHS = frozenset({"/", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/ui"})
OPEN_PREFIXES = ("/static-docs/", "/ui/")
#: Top-level keys of a flow request: ours, plus those Jina's own Client sends.
REQUEST_KEYS = frozenset({"data", "parameters", "header", "exec_endpoint", "target_executor"})
#: Document fields only the flow fills; a client must leave them empty.
INTERNAL_FIELDS = ("tensor", "chunks", "encoder", "fingerprint")
#: Said after an unknown document field: the fields a client usually sends.
_DOC_FIELDS_HINT = "Documents take uri, audio_base64 or clip_id (see /docs)."

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Rejected(Exception):
    """A request the guard answers itself with ``status`` and ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class GuardSettings:
    """The gateway's ``uses_with`` in flow.yml: ``api_key``, ``max_body_mb``, ``max_docs``."""

    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_MB << 20
    max_docs: int = MAX_DOCS

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "GuardSettings":
        """Settings from the gateway's ``uses_with`` (absent keys keep their defaults)."""
        config = config or {}
        return cls(
            api_key=config.get("api_key") or None,
            max_body_bytes=round(float(config.get("max_body_mb", MAX_BODY_MB)) * 2**20),
            max_docs=int(config.get("max_docs", MAX_DOCS)),
        )


def install_http_guard(app: FastAPI, gateway: Any) -> None:
    """Put the guard in front of ``app``, configured from ``gateway``'s flow.yml ``uses_with``.

    The flow endpoints (``/index``, ``/search``, ...) are the ones Jina found in the executors.
    """
    settings = GuardSettings.from_config(getattr(gateway.runtime_args, "uses_with", None))
    endpoints = gateway._request_handler.streamer._endpoints_models_map
    flow_paths = frozenset(f"/{e.strip('/')}" for e in endpoints if not e.startswith("_jina"))
    app.add_middleware(HTTPGuard, settings=settings, flow_paths=flow_paths)
    if settings.api_key:
        document_api_key(app)


def document_api_key(app: FastAPI) -> None:
    """Declare the key in the OpenAPI schema, so Swagger's "Authorize" button sends it."""
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build_schema()  # FastAPI caches it: this edits the cached schema in place
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["APIKey"] = {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
        schema["security"] = [{"APIKey": []}]
        return schema

    app.openapi = openapi


class HTTPGuard:
    """ASGI middleware: checks each HTTP request, then replays its body to the app."""

    def __init__(self, app: Callable, settings: GuardSettings, flow_paths: frozenset[str]):
        self.app = app
        self.settings = settings
        self.flow_paths = flow_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a rejected request with its 4xx; pass every other one on unchanged."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = None
        try:
            check_api_key(scope, self.settings.api_key)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body = await read_body(scope, receive, self.settings.max_body_bytes)
                if scope["path"] in self.flow_paths:
                    check_flow_request(body, scope["path"], max_docs=self.settings.max_docs)
        except Rejected as exc:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status)
            await response(scope, receive, send)
            return
        await self.app(scope, receive if body is None else replay(body, receive), send)


def check_api_key(scope: Scope, api_key: str | None) -> None:
    """Raise 401 unless no key is configured, the path is open, or the request carries the key."""
    path = scope["path"]
    if not api_key or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return
    headers = dict(scope["headers"])
    given = headers.get(API_KEY_HEADER.lower().encode())
    if given is None and b"cookie" in headers:
        cookie = SimpleCookie(headers[b"cookie"].decode("latin-1")).get(API_KEY_COOKIE)
        given = unquote(cookie.value).encode() if cookie else None
    if given is None:
        raise Rejected(
            401,
            f"this server needs an API key: send it in the {API_KEY_HEADER} header "
            "(app.py sends AUDIOSEARCH_API_KEY from its environment; the web page asks for it)",
        )
    if not hmac.compare_digest(given, api_key.encode()):
        raise Rejected(401, f"the {API_KEY_HEADER} header does not hold this server's API key")


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The whole request body, or 413 as soon as it is known to exceed ``max_bytes``."""

    def too_large(size: str) -> Rejected:
        return Rejected(
            413,
            f"request body is {size}; the limit is {max_bytes / 2**20:g} MiB (max_body_mb in "
            "flow.yml): send fewer or smaller documents per request",
        )

    declared = dict(scope["headers"]).get(b"content-length", b"")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(f"{int(declared):,} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"over {max_bytes:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app ``body`` first, then whatever the client sends next."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


def check_flow_request(body: bytes, path: str, *, max_docs: int) -> None:
    """Raise 400/422 unless ``body`` is a well-formed request to the flow endpoint ``path``."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(
            400,
            f"request body is not valid JSON ({exc}); send "
            '{"data": [{"uri": "toy-data/bell_strikes.wav"}], "parameters": {}}',
        ) from None
    if not isinstance(request, dict):
        raise Rejected(
            422,
            f"request body is a JSON {type(request).__name__}; send an object: "
            '{"data": [{"uri": "toy-data/bell_strikes.wav"}], "parameters": {}}',
        )
    unknown(request, REQUEST_KEYS, "request")
    check_target(request)
    check_target(request.get("header") or {})
    data = request.get("data")
    docs = data if isinstance(data, list) else [data]
    if data is None or not all(isinstance(d, dict) for d in docs):
        raise Rejected(
            422, 'data must be a list of documents (JSON objects), e.g. [{"uri": "a.wav"}]'
        )
    if len(docs) > max_docs:
        raise Rejected(
            422,
            f"data holds {len(docs)} documents; at most {max_docs} are taken per request "
            "(max_docs in flow.yml): send them in batches",
        )
    fields = frozenset(AudioDoc.model_fields) | {"id"}
    for i, doc in enumerate(docs):
        unknown(doc, fields, f"data[{i}]", hint=_DOC_FIELDS_HINT)
        for name in INTERNAL_FIELDS:
            if doc.get(name):
                raise Rejected(422, f"data[{i}].{name}: is filled by the service; leave it out")
    parameters = request.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise Rejected(422, 'parameters must be a JSON object, e.g. {"limit": 10}')
    if path == "/search" and parameters and "limit" in parameters:
        try:
            check_limit(parameters["limit"])
        except InvalidInputError as exc:
            raise Rejected(422, f"parameters.{exc}") from None


def unknown(given: dict, known: Iterable[str], where: str, *, hint: str = "") -> None:
    """Raise 422 naming the first key of ``given`` not in ``known``, with a likely fix."""
    known = sorted(known)
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}."
            raise Rejected(422, f"{where}.{key}: unknown field; {fix} {hint}".rstrip())


def check_target(header: dict) -> None:
    """Raise 422 for a request that tries to skip steps of the flow."""
    for key in ("target_executor", "targetExecutor"):
        if isinstance(header, dict) and header.get(key):
            raise Rejected(
                422,
                f"{key}={header[key]!r}: not accepted; requests go through the whole flow",
            )
