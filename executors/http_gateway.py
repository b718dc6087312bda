"""The HTTP gateway: Jina's own routes, plus upload search, the web UI, audio streaming for its
players, a health check that asks the executors, request examples in the OpenAPI schema and a
Swagger UI that needs no network."""

import base64
import json
import mimetypes
import os
import re
import stat
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import fastapi_offline
from docarray import DocList
from docarray.base_doc.docarray_response import DocArrayResponse
from fastapi import FastAPI, File, Form, Header, HTTPException, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jina.proto import jina_pb2
from jina.serve.runtimes.gateway.http import HTTPGateway

from audiosearch.errors import InvalidInputError
from audiosearch.params import (
    ENDPOINT_PARAMETERS,
    SearchParameters,
    parse_parameters,
)
from audiosearch.paths import ReadPolicy
from executors.health import FlowHealth
from executors.http_guard import GuardSettings, install_http_guard
from executors.ui_routes import add_ui_routes, indexed_file

#: Swagger UI's JS and CSS, shipped inside the fastapi-offline wheel.
SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
_CDN_DOC_PATHS = {"/docs", "/docs/oauth2-redirect", "/redoc"}
_COMPONENT = "#/components/schemas/"
#: The web page's HTML, CSS and JS (no build step, no CDN).
UI_DIR = Path(__file__).parent / "ui"
#: Bytes per read when streaming a byte range of an audio file.
_STREAM_CHUNK = 64 * 1024
#: Digits of a byte offset worth reading: more name offsets past any file (and Python refuses
#: to parse numbers of over 4,300 digits).
_MAX_OFFSET_DIGITS = 18

#: Request bodies that Swagger's "Try it out" sends as they are (paths relative to the server's
#: working directory, the project root, where toy-data/ lives).
REQUEST_EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "/index": {
        "toy clips": {
            "summary": "Index two files the server can read",
            "value": {
                "data": [{"uri": "toy-data/bell_strikes.wav"}, {"uri": "toy-data/tom_fill.ogg"}]
            },
        },
    },
    "/search": {
        "by path": {
            "summary": "Clips most similar to a file on the server",
            "value": {"data": [{"uri": "toy-data/bell_strikes.wav"}], "parameters": {"limit": 5}},
        },
        "more like this": {
            "summary": "Clips most similar to indexed clip 1 (the clip itself left out)",
            "value": {"data": [{"clip_id": 1}], "parameters": {"limit": 5}},
        },
        "refined": {
            "summary": "The part 0-4 s of a file, with clip 1 liked and clip 2 disliked",
            "value": {
                "data": [{"uri": "toy-data/bell_strikes.wav", "start": 0, "end": 4}],
                "parameters": {"limit": 5, "like": [1], "unlike": [2]},
            },
        },
        "filtered": {
            "summary": "Only clips of 2 to 30 s under toy-data/ that score at least 0.5",
            "value": {
                "data": [{"uri": "toy-data/bell_strikes.wav"}],
                "parameters": {
                    "limit": 10,
                    "min_score": 0.5,
                    "min_duration": 2.0,
                    "max_duration": 30.0,
                    "path_glob": "*/toy-data/*",
                },
            },
        },
    },
}


class RangeNotSatisfiable(Exception):
    """A Range header that asks only for bytes past the end of the file."""


class AudioSearchGateway(HTTPGateway):
    """Jina's HTTP gateway with the routes people use from a browser or curl.

    - ``POST /upload/search``: search with an uploaded file (multipart), same answer as /search.
    - ``GET /ui``: the web page; ``GET /audio/{clip_id}``: an indexed clip's audio, with ranges;
      ``GET /limits``, ``/peaks/{clip_id}`` and ``/map`` for the page (ui_routes.py).
    - ``GET /`` and ``GET /health``: 200 when every executor answers, else 503 naming it.
    - ``GET /docs``: Swagger UI from local assets (FastAPI's default loads them from a CDN).

    Its ``uses_with`` in flow.yml: the guard's settings (http_guard.py) and ``read_policy``,
    which ``/audio`` applies before it serves a file.
    """

    @property
    def app(self) -> FastAPI:
        """Jina's FastAPI app with this service's routes added."""
        streamer = self._request_handler.streamer
        send_each_call_whole(streamer)
        config = getattr(self.runtime_args, "uses_with", None) or {}
        flow = FlowCaller(streamer)
        health = FlowHealth(
            grpc_addresses(self.runtime_args.deployments_addresses), partial(probe_shards, flow)
        )
        app = super().app
        serve_swagger_offline(app)
        add_request_examples(app, REQUEST_EXAMPLES)
        add_parameter_schemas(app)
        add_health_routes(app, health)
        policy = ReadPolicy.from_config(config.get("read_policy"))
        add_search_routes(app, flow, policy)
        add_ui_routes(app, flow, policy, GuardSettings.from_config(config))  # ui_routes.py
        app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
        install_http_guard(app, self, health)  # API key, limits, clear 4xx/503: http_guard.py
        return app


def grpc_addresses(deployments_addresses: str) -> dict[str, list[str]]:
    """Each executor's gRPC addresses, from the gateway's ``deployments_addresses`` argument."""
    return {
        name: addresses.get("grpc", []) if isinstance(addresses, dict) else addresses
        for name, addresses in json.loads(deployments_addresses).items()
    }


async def probe_shards(flow: "FlowCaller") -> tuple[int, Sequence[str]]:
    """How many indexer shards the flow has, and which did not answer a ``/stats`` request."""
    [doc] = (await flow.post("/stats", [{}], {})).docs
    stats = doc.stats or {}
    return int(stats.get("shards", 1)), list(stats.get("missing_shards", []))


def add_health_routes(app: FastAPI, health: FlowHealth) -> None:
    """``GET /`` and ``GET /health``: every executor's state; 503 when one does not answer.

    Replaces Jina's ``GET /``, which answers 200 whatever the executors' state.
    """
    app.router.routes = [
        r for r in app.router.routes
        if not (getattr(r, "path", None) == "/" and "GET" in getattr(r, "methods", ()))
    ]  # fmt: skip

    async def flow_health() -> JSONResponse:
        report = await health.report()
        return JSONResponse(report.as_json(), status_code=200 if report.healthy else 503)

    summary = "Whether every executor answers: 200, or 503 naming the one that does not"
    app.add_api_route("/", flow_health, methods=["GET"], summary=summary, tags=["Health"])
    app.add_api_route("/health", flow_health, methods=["GET"], summary=summary, tags=["Health"])


def send_each_call_whole(streamer: Any) -> None:
    """Make every HTTP request one request through the flow, however many documents it holds.

    Jina's POST routes leave ``stream_docs`` its default ``request_size`` of 100: a request of
    more documents went through the flow in batches of 100, and the route answered with the
    first batch to come back, dropping the others' answers. The guard caps documents per
    request (``max_docs``), so one batch stays bounded.
    """
    stream_docs = streamer.stream_docs

    def whole(docs: DocList, *args: Any, **kwargs: Any) -> Any:
        return stream_docs(docs, *args, **(kwargs | {"request_size": max(1, len(docs))}))

    streamer.stream_docs = whole


class FlowCaller:
    """Sends documents through the flow from inside the gateway, as Jina's own POST routes do."""

    def __init__(self, streamer: Any) -> None:
        self.streamer = streamer

    async def post(self, endpoint: str, data: list[dict], parameters: dict) -> Any:
        """The flow's response (a Jina ``DataRequest``) to ``data`` sent to ``endpoint``."""
        models = self.streamer._endpoints_models_map.get(endpoint)
        if models is None:
            raise HTTPException(501, f"this flow has no {endpoint} endpoint; update the service")
        doc_type = models["input"]
        async for response in self.streamer.stream_docs(
            DocList[doc_type]([doc_type(**d) for d in data]),
            exec_endpoint=endpoint,
            parameters=parameters,
            return_results=True,
            return_type=DocList[models["output"]],
        ):
            status = response.header.status
            if status.code == jina_pb2.StatusProto.ERROR:
                raise HTTPException(500, status.description)
            return response
        raise HTTPException(500, f"the flow sent no response to {endpoint}")


def serve_swagger_offline(app: FastAPI) -> None:
    """Replace FastAPI's CDN doc pages with a ``/docs`` whose assets are served locally."""
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "path", None) not in _CDN_DOC_PATHS
    ]
    app.mount("/static-docs", StaticFiles(directory=SWAGGER_ASSETS), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/static-docs/swagger-ui-bundle.js",
            swagger_css_url="/static-docs/swagger-ui.css",
            swagger_favicon_url="/static-docs/favicon.png",
        )


def add_request_examples(app: FastAPI, examples: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Put ``examples`` (path -> named examples) on those POST routes' JSON request bodies."""
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build_schema()  # FastAPI builds it once and caches it; this edits it in place
        for path, named in examples.items():
            operation = schema["paths"].get(path, {}).get("post")
            if operation and "requestBody" in operation:
                operation["requestBody"]["content"]["application/json"]["examples"] = named
        return schema

    app.openapi = openapi


def add_parameter_schemas(app: FastAPI) -> None:
    """Show each flow endpoint's parameters model (:mod:`audiosearch.params`) in the OpenAPI
    schema: as a component, and as the ``parameters`` of the endpoint's request body."""
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build_schema()  # FastAPI caches it: this edits the cached schema in place
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path, model in ENDPOINT_PARAMETERS.items():
            name = model.__name__
            components[name] = model.model_json_schema(ref_template=_COMPONENT + "{model}")
            body = schema["paths"].get(path, {}).get("post", {}).get("requestBody")
            content = (body or {}).get("content", {}).get("application/json", {})
            request = components.get(content.get("schema", {}).get("$ref", "").split("/")[-1])
            if request is None or "parameters" not in request.get("properties", {}):
                continue  # not Jina's request model: leave it as it is
            properties = request["properties"] | {"parameters": {"$ref": _COMPONENT + name}}
            components[f"{name}Request"] = request | {"properties": properties}
            content["schema"] = {"$ref": f"{_COMPONENT}{name}Request"}
        return schema

    app.openapi = openapi


SEARCH_FIELDS = SearchParameters.model_fields


def form_field(name: str, *, note: str = "") -> Any:
    """The upload form's field for /search's parameter ``name``, described as the model
    describes it (the model checks its value)."""
    return Form(description=f"{SEARCH_FIELDS[name].description}{note}")


def add_search_routes(app: FastAPI, flow: FlowCaller, policy: ReadPolicy) -> None:
    """``POST /upload/search`` and ``GET /audio/{clip_id}``, both answered through the flow;
    ``/audio`` serves a file only as ``policy`` allows and while it is the file indexed."""
    # Jina adds /search only once the executors answered; without it the flow is failing anyway.
    search_route = next(
        (r for r in app.router.routes if getattr(r, "path", None) == "/search"), None
    )

    @app.post(
        "/upload/search",
        response_model=getattr(search_route, "response_model", None),
        response_class=DocArrayResponse,
        summary="Search with an uploaded audio file (multipart/form-data)",
        description="The same search as POST /search with audio_base64, for browsers and "
        "`curl -F file=@query.wav http://127.0.0.1:8080/upload/search`.",
    )
    async def upload_search(
        file: Annotated[UploadFile, File(description="The query clip: wav, flac, mp3, m4a...")],
        limit: Annotated[int, form_field("limit")] = SEARCH_FIELDS["limit"].default,
        min_score: Annotated[float | None, form_field("min_score")] = None,
        min_duration: Annotated[float | None, form_field("min_duration")] = None,
        max_duration: Annotated[float | None, form_field("max_duration")] = None,
        path_glob: Annotated[str | None, form_field("path_glob")] = None,
        strategy: Annotated[str | None, form_field("strategy")] = None,
        query_expansion: Annotated[bool | None, form_field("query_expansion")] = None,
        duplicates: Annotated[bool | None, form_field("duplicates")] = None,
        start: Annotated[float | None, Form(description="Search from here in the file, s")] = None,
        end: Annotated[float | None, Form(description="... up to here, s")] = None,
        like: Annotated[str | None, form_field("like", note=", separated by commas: 7,12")] = None,
        unlike: Annotated[str | None, form_field("unlike", note=", separated by commas: 3")] = None,
    ) -> dict[str, Any]:
        given = {
            "limit": limit, "min_score": min_score, "min_duration": min_duration,
            "max_duration": max_duration, "path_glob": path_glob, "strategy": strategy,
            "query_expansion": query_expansion, "duplicates": duplicates,
            "like": id_list("like", like), "unlike": id_list("unlike", unlike),
        }  # fmt: skip
        parameters = {k: v for k, v in given.items() if v is not None}
        try:
            parse_parameters(SearchParameters, parameters)
        except InvalidInputError as exc:
            raise HTTPException(422, str(exc)) from None
        data = await file.read()
        if not data:
            raise HTTPException(
                422, f"the uploaded file {file.filename or ''!r} is empty (0 bytes); "
                "choose a file with audio in it",
            )  # fmt: skip
        # The file's name only labels it in messages: the segmenter never reads that path.
        query: dict[str, Any] = {"audio_base64": base64.b64encode(data).decode("ascii")}
        if file.filename:
            query["uri"] = file.filename
        query |= {k: v for k, v in (("start", start), ("end", end)) if v is not None}
        response = await flow.post("/search", [query], parameters)
        return response.to_dict()  # shaped by /search's response model, as Jina's route is

    @app.get(
        "/audio/{clip_id}",
        response_class=Response,
        summary="The audio file of an indexed clip, for players (supports HTTP Range requests)",
        responses={
            200: {"content": {"audio/*": {}}, "description": "The whole file"},
            206: {"description": "The requested byte range"},
            403: {"description": "The file may no longer be read, or changed since indexing"},
            404: {"description": "No such clip, or its file is gone"},
            416: {"description": "The range starts past the end of the file"},
            422: {"description": "clip_id is not a valid clip id"},
        },
    )
    async def audio(
        clip_id: int, range_header: Annotated[str | None, Header(alias="range")] = None
    ) -> Response:
        _, source = await indexed_file(flow, policy, clip_id)
        try:
            opened = open_no_follow(source.path)
        except InvalidInputError as exc:
            raise HTTPException(403, f"clip {clip_id} is not served: {exc}") from None
        return file_response(opened, source.path.name, range_header)


def id_list(name: str, text: str | None) -> list[int] | None:
    """The clip ids a form field lists ("7, 12"); 422 for anything else."""
    if not text or not text.strip():
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HTTPException(
            422, f"{name}={text!r}: expected clip ids separated by commas, e.g. 7,12"
        ) from None


def open_no_follow(path: Path) -> BinaryIO:
    """``path`` opened for reading, refusing a symbolic link put in its place since it was
    checked (the check resolved every link; a new one here would lead elsewhere)."""
    try:
        fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be opened ({exc.strerror})") from None
    opened = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        opened.close()
        raise InvalidInputError(f"{path}: is no longer a regular file")
    return opened


def file_response(opened: BinaryIO, name: str, range_header: str | None) -> Response:
    """The open file called ``name`` as a whole (200) or the single byte range a player asked
    for (206, or 416); the file is closed once sent.

    Starlette 0.38's FileResponse ignores Range, and a player cannot seek in an audio file
    without it (Chromium then plays from the start whatever ``currentTime`` is set to).
    """
    size = os.fstat(opened.fileno()).st_size
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    try:
        wanted = byte_range(range_header, size)
    except RangeNotSatisfiable:
        opened.close()
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    first, last = wanted or (0, size - 1)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1)}
    if wanted:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        read_bytes(opened, first, last), status_code=206 if wanted else 200,
        media_type=media_type, headers=headers,
    )  # fmt: skip


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte offsets a ``Range`` header asks of a ``size``-byte file.

    None means "send the whole file": no header, a malformed one, or several ranges (RFC 9110
    lets a server ignore those). Raises :class:`RangeNotSatisfiable` for a range past the end.
    """
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if not match or match.groups() == ("", ""):
        return None
    first_text, last_text = match.groups()
    if not first_text:  # "bytes=-N": the last N bytes
        suffix = offset(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    first = offset(first_text)
    last = min(offset(last_text), size - 1) if last_text else size - 1
    if last_text and offset(last_text) < first:
        return None  # an invalid range is ignored, not refused
    if first >= size:
        raise RangeNotSatisfiable(header)
    return first, last


def offset(digits: str) -> int:
    """A byte offset of a Range header; one too long to read counts as past every file."""
    return int(digits) if len(digits.lstrip("0")) <= _MAX_OFFSET_DIGITS else 10**_MAX_OFFSET_DIGITS


def read_bytes(opened: BinaryIO, first: int, last: int) -> Iterator[bytes]:
    """Bytes ``first..last`` (inclusive) of the open file, in chunks; then closes it."""
    with opened as f:
        f.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = f.read(min(_STREAM_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
