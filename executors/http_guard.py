"""A guard in front of the HTTP API: an optional API key, bounded requests, and clear 4xx errors.

Jina's routes take whatever arrives: a 100 MB body is parsed into millions of documents,
unknown fields are dropped without a word and a bad parameter surfaces only deep in the flow.
The guard checks every request before a route sees it and answers, as ``{"detail": "..."}``:

- 401 when an API key is configured and the ``X-API-Key`` header is missing or wrong
  (``/``, the Swagger page and its assets stay open);
- 413 for a body over ``max_body_mb``, or an upload (``POST /upload/search``, whose multipart
  body is streamed to a temporary file, never held whole) over ``max_file_mb``;
- 400 for a flow endpoint's body that is not JSON, 422 for one that is not shaped like
  ``{"data": [...], "parameters": {...}}``: unknown fields, too many documents, fields only the
  service fills, a target executor, JSON nested deeper than ``MAX_NESTING``, a clip id out of
  range, or a parameter the endpoint does not take or a bad value of one
  (the endpoint's model in :mod:`audiosearch.params`);
- 503 while an executor of the flow is not answering (see :mod:`executors.health`).
"""

import difflib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, HTTPException
from starlette.responses import JSONResponse

from audiosearch.errors import InvalidInputError
from audiosearch.params import check_clip_id, check_parameters
from audiosearch.paths import MAX_FILE_BYTES
from executors.docs import CLIENT_FIELDS, AudioDoc
from executors.health import MAX_AGE_SECONDS, FlowHealth

MAX_BODY_MB = 32
MAX_DOCS = 256
API_KEY_HEADER = "X-API-Key"
#: The web page keeps the key in this same-site cookie: <audio> elements cannot send headers.
API_KEY_COOKIE = "audiosearch_api_key"
#: Paths anyone may GET: the health check Jina's tooling polls, the API's documentation and the
#: web page's static files (they hold no data; the page asks for the key on its first 401).
OPEN_PATHS = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/ui"})
OPEN_PREFIXES = ("/static-docs/", "/ui/")
#: The gateway's own routes that call the flow (besides the flow endpoints themselves).
FLOW_ROUTES = ("/upload/", "/audio/", "/peaks/", "/map")
#: Routes whose multipart body is a whole audio file: streamed, limited by ``max_file_mb``.
UPLOAD_PATHS = frozenset({"/upload/search"})
#: Top-level keys of a flow request: ours, plus those Jina's own Client sends.
REQUEST_KEYS = frozenset({"data", "parameters", "header", "exec_endpoint", "target_executor"})
#: Deepest nesting of JSON arrays and objects a request may have (a request needs 4).
MAX_NESTING = 16
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
    """The gateway's ``uses_with`` in flow.yml: ``api_key``, ``max_body_mb``, ``max_file_mb``
    (an upload's body; by default the largest file the read policy reads), ``max_docs``."""

    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_MB << 20
    max_file_bytes: int = MAX_FILE_BYTES
    max_docs: int = MAX_DOCS

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "GuardSettings":
        """Settings from the gateway's ``uses_with`` (absent keys keep their defaults)."""
        config = config or {}
        return cls(
            api_key=config.get("api_key") or None,
            max_body_bytes=round(float(config.get("max_body_mb", MAX_BODY_MB)) * 2**20),
            max_file_bytes=round(float(config.get("max_file_mb", MAX_FILE_BYTES / 2**20)) * 2**20),
            max_docs=int(config.get("max_docs", MAX_DOCS)),
        )


def install_http_guard(app: FastAPI, gateway: Any, health: FlowHealth) -> None:
    """Put the guard in front of ``app``, configured from ``gateway``'s flow.yml ``uses_with``.

    The flow endpoints (``/index``, ``/search``, ...) are the ones Jina found in the executors.
    """
    settings = GuardSettings.from_config(getattr(gateway.runtime_args, "uses_with", None))
    endpoints = gateway._request_handler.streamer._endpoints_models_map
    flow_paths = frozenset(f"/{e.strip('/')}" for e in endpoints if not e.startswith("_jina"))
    app.add_middleware(HTTPGuard, settings=settings, flow_paths=flow_paths, health=health)
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
    """ASGI middleware: checks each HTTP request, then replays its body to the app.

    Requests that go through the flow get 503, naming the executor, while one does not answer
    (as the last health report says, or a fresh one when the flow fails a request): never a
    bare 500 for a dead executor.
    """

    def __init__(
        self, app: Callable, settings: GuardSettings, flow_paths: frozenset[str],
        health: FlowHealth,
    ) -> None:  # fmt: skip
        self.app = app
        self.settings = settings
        self.flow_paths = flow_paths
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a rejected request with its 4xx or 503; pass every other one on unchanged."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = None
        through_flow = scope["path"] in self.flow_paths or scope["path"].startswith(FLOW_ROUTES)
        try:
            check_api_key(scope, self.settings.api_key)
            if scope["method"] in ("POST", "PUT", "PATCH") and scope["path"] in UPLOAD_PATHS:
                receive = limited_upload(scope, receive, self.settings.max_file_bytes)
            elif scope["method"] in ("POST", "PUT", "PATCH"):
                body = await read_body(scope, receive, self.settings.max_body_bytes)
                if scope["path"] in self.flow_paths:
                    check_flow_request(body, scope["path"], max_docs=self.settings.max_docs)
            if through_flow:
                await self.check_health(fresh=False)
        except Rejected as exc:
            await reject(exc, scope, receive, send)
            return
        receive = receive if body is None else replay(body, receive)
        if not through_flow:
            await self.app(scope, receive, send)
            return
        held = HeldErrorResponse(send)
        try:
            await self.app(scope, receive, held.send)
            if held.messages:  # the flow failed: a dead executor says 503, else the 500 goes
                await self.check_health(fresh=True)
                await held.release()
        except Rejected as exc:
            await reject(exc, scope, receive, send)
        except Exception:
            if held.started:
                raise
            try:
                await self.check_health(fresh=True)
            except Rejected as exc:
                await reject(exc, scope, receive, send)
                return
            raise

    async def check_health(self, *, fresh: bool) -> None:
        """Raise 503 if an executor does not answer: by the last report (checked again when
        it said so and is over a second old), or, with ``fresh``, by a report made now."""
        last = self.health.last
        if fresh or (last is not None and not last.healthy):
            last = await self.health.report(max_age=0 if fresh else MAX_AGE_SECONDS)
        if last is not None and not last.healthy:
            raise Rejected(503, last.detail())


async def reject(exc: Rejected, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the rejection's status and ``{"detail": ...}``."""
    await JSONResponse({"detail": exc.detail}, status_code=exc.status)(scope, receive, send)


class HeldErrorResponse:
    """Passes a response on, except one with a 5xx status, which it holds until released."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.messages: list[Message] = []
        self.started = False

    async def send(self, message: Message) -> None:
        """ASGI ``send``: hold the messages of a 5xx response, pass any other response on."""
        if message["type"] == "http.response.start":
            self.started = True
            if message["status"] >= 500:
                self.messages.append(message)
                return
        if self.messages:
            self.messages.append(message)
            return
        await self._send(message)

    async def release(self) -> None:
        """Send the held response as it was."""
        for message in self.messages:
            await self._send(message)


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


def upload_too_large(size: str, max_bytes: int) -> str:
    """The 413 message for an upload of ``size`` over ``max_bytes``."""
    return (
        f"upload is {size}; the limit for uploads is {max_bytes / 2**20:g} MiB (max_file_mb in "
        "flow.yml): upload a shorter clip or a part of it (the web page sends only the region "
        "you select, as 16 kHz mono)"
    )


def limited_upload(scope: Scope, receive: Receive, max_bytes: int) -> Receive:
    """A ``receive`` that passes an upload's body on as it arrives, refusing it with 413 once it
    is known to exceed ``max_bytes``: the route streams it to a temporary file meanwhile.

    Past the declared length it raises :class:`HTTPException`, which the route's form parsing
    lets through as the 413 response (any other exception there would become a bare 400).
    """
    declared = dict(scope["headers"]).get(b"content-length", b"")
    if declared.isdigit() and int(declared) > max_bytes:
        raise Rejected(413, upload_too_large(f"{int(declared):,} bytes", max_bytes))
    size = 0

    async def receive_counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > max_bytes:
            raise HTTPException(413, upload_too_large(f"over {max_bytes:,} bytes", max_bytes))
        return message

    return receive_counted


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
    except RecursionError:
        raise Rejected(422, too_deep()) from None
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
    if nested_deeper(request, MAX_NESTING):
        raise Rejected(422, too_deep())
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
        for name, value in doc.items():
            if name not in CLIENT_FIELDS and value:
                raise Rejected(422, f"data[{i}].{name}: is filled by the service; leave it out")
        if doc.get("clip_id") is not None:
            try:
                check_clip_id(doc["clip_id"])
            except InvalidInputError as exc:
                raise Rejected(422, f"data[{i}].{exc}") from None
    parameters = request.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise Rejected(422, 'parameters must be a JSON object, e.g. {"limit": 10}')
    try:
        check_parameters(path, parameters or {})
    except InvalidInputError as exc:
        raise Rejected(422, f"parameters.{exc}") from None


def nested_deeper(value: Any, limit: int) -> bool:
    """Whether JSON arrays and objects nest more than ``limit`` deep in ``value``.

    Walked with a stack, not recursion: a request may nest as deep as the JSON parser allows.
    """
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth == limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def too_deep() -> str:
    """The message for a request nested deeper than MAX_NESTING."""
    return (
        f"request body nests arrays and objects more than {MAX_NESTING} deep; send "
        '{"data": [{"uri": "toy-data/bell_strikes.wav"}], "parameters": {"limit": 10}}'
    )


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
