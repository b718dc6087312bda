"""Command line for the audio similarity search service.

    python app.py demo                    # index toy-data/ and show what is similar to what
    python app.py serve                   # start the flow: HTTP on 127.0.0.1:8080, /docs
    python app.py serve --allowed-root ~/sounds   # serve, reading files under ~/sounds too
    python app.py index ~/sounds          # index a folder (recursively) into that service
    python app.py search query.wav        # the indexed clips most similar to a clip, ranked
    python app.py list                    # the indexed clips (also: delete ID|PATH, stats)
    python app.py models download         # fetch the VGGish weights into models/

Run ``python app.py COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from audiosearch.rank import DEFAULT_LIMIT

ROOT = Path(__file__).resolve().parent
FLOW_YML = ROOT / "flow.yml"
#: The API key the service requires (if set where it runs) and that the commands send.
API_KEY_ENV = "AUDIOSEARCH_API_KEY"
#: Where the image keeps the index, and the named volume exported deployments keep it in.
CONTAINER_WORKSPACE = "/app/workspace"
INDEX_VOLUME = "audiosearch-index"
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".aif",
                  ".aiff", ".wma", ".webm"}  # fmt: skip


def flow_config(
    *, port: int | None = None, host: str | None = None, workspace: str | None = None,
    encoder: str | None = None, models_dir: str | None = None,
    allowed_roots: Sequence[str] = (), max_seconds: float | None = None,
    shards: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """flow.yml as a dict, with the given values put in place of its own.

    ``allowed_roots`` and the folders in AUDIOSEARCH_ALLOWED_ROOTS (os.pathsep-separated) are
    added to flow.yml's; AUDIOSEARCH_API_KEY, when set, becomes the gateway's API key.
    """
    config = yaml.safe_load(FLOW_YML.read_text())
    if port is not None:
        config["with"]["port"] = port
    if host is not None:
        config["with"]["host"] = host
    executors = {e["name"]: e for e in config["executors"]}
    if workspace is not None:
        executors["indexer"]["workspace"] = str(Path(workspace).absolute())
    if shards is not None:
        executors["indexer"]["shards"] = shards
    if encoder is not None:
        executors["encoder"]["uses_with"]["encoder"] = encoder
    if models_dir is not None:
        executors["encoder"]["uses_with"]["models_dir"] = str(Path(models_dir).absolute())
    # One mapping: flow.yml gives it to every reader by a YAML alias (&read_policy).
    read_policy = config["gateway"]["uses_with"]["read_policy"]
    env_roots = os.environ.get("AUDIOSEARCH_ALLOWED_ROOTS", "").split(os.pathsep)
    read_policy["allowed_roots"] = read_policy["allowed_roots"] + [
        str(Path(root).expanduser().absolute()) for root in (*env_roots, *allowed_roots) if root
    ]
    if max_seconds is not None:
        read_policy["max_seconds"] = max_seconds
    if os.environ.get(API_KEY_ENV):
        config["gateway"]["uses_with"]["api_key"] = os.environ[API_KEY_ENV]
    return config


def build_flow(config: dict[str, Any]):
    """A Jina Flow from ``config``; relative paths in it are taken from the project root."""
    from jina import Flow

    os.chdir(ROOT)  # py_modules, models/ and workspace/ in flow.yml are relative to it
    return Flow.load_config(config)


def base_url(config: dict[str, Any]) -> str:
    """Where the flow described by ``config`` answers HTTP."""
    host = config["with"]["host"]
    return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{config['with']['port']}"


def find_audio(paths: Sequence[str]) -> list[Path]:
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


class RequestFailed(Exception):
    """The service is up but answered one request with an HTTP error or did not answer in time."""


def api_key_header() -> dict[str, str]:
    """The X-API-Key header carrying AUDIOSEARCH_API_KEY, when it is set."""
    key = os.environ.get(API_KEY_ENV)
    return {"X-API-Key": key} if key else {}


def post(url: str, endpoint: str, docs: list[dict], parameters: dict | None = None) -> list[dict]:
    """POST ``docs`` to ``endpoint``; the returned documents.

    Raises :class:`RequestFailed` for an HTTP error or a time-out, SystemExit when nothing
    answers at ``url``.
    """
    try:
        response = httpx.post(
            f"{url}/{endpoint}", json={"data": docs, "parameters": parameters or {}},
            headers=api_key_header(), timeout=600,
        )  # fmt: skip
    except httpx.TimeoutException as exc:
        raise RequestFailed(f"{endpoint}: no answer in time ({exc!r})") from None
    except httpx.HTTPError as exc:
        raise SystemExit(
            f"cannot reach the service at {url} ({exc}); start it: python app.py serve"
        ) from None
    if response.status_code != 200:
        raise RequestFailed(f"{endpoint} failed: HTTP {response.status_code}: {reason(response)}")
    return response.json()["data"]


def reason(response: httpx.Response) -> str:
    """What an error response says: its JSON ``detail`` when it is a message, else its text."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return detail if isinstance(detail, str) else response.text[:500]


#: /index requests kept in flight: the segmenter decodes the next batch while the encoder (a
#: separate process) embeds the current one. More only holds more decoded audio in memory.
INDEX_REQUESTS_IN_FLIGHT = 2


def index_files(url: str, paths: Sequence[str], *, batch_size: int, quiet: bool) -> list[dict]:
    """Send the audio under ``paths`` to ``/index`` in batches, with a progress bar.

    ``INDEX_REQUESTS_IN_FLIGHT`` batches are under way at a time; results come back in order.
    The bar moves once per batch and shows files done, their rate, hours of audio indexed,
    the speed relative to real time and the failures so far.
    """
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from tqdm import tqdm

    results, files = skip_unchanged(url, find_audio(paths))
    started = time.monotonic()
    batches = list(batched(files, batch_size))
    pool = ThreadPoolExecutor(INDEX_REQUESTS_IN_FLIGHT)
    with tqdm(
        total=len(results) + len(files), initial=len(results), unit="file", disable=quiet,
        file=sys.stderr,
    ) as bar:  # fmt: skip
        try:
            for answer in pool.map(partial(index_batch, url), batches):
                results += answer
                bar.update(len(answer))  # one document per file
                bar.set_postfix_str(progress_note(results, time.monotonic() - started))
        finally:
            pool.shutdown(cancel_futures=True)  # after an error or Ctrl-C, send no more
    return results


def skip_unchanged(url: str, files: Sequence[Path]) -> tuple[list[dict], list[Path]]:
    """The files the index holds as they are now (as ``unchanged`` results), and the others.

    Comparing size and modification time here spares the service decoding and encoding files
    that it would only find unchanged: re-indexing a library costs what changed in it.
    """
    from audiosearch.paths import fingerprint, same_content

    unchanged: list[dict] = []
    todo: list[Path] = []
    try:
        per_request = flow_config()["gateway"]["uses_with"]["max_docs"]
        for batch in batched(files, per_request):
            for path, doc in zip(batch, post(url, "clips", [{"uri": str(p)} for p in batch]),
                                 strict=True):  # fmt: skip
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
    except RequestFailed:  # a service without /clips: it finds unchanged files itself
        return [], list(files)
    return unchanged, todo


def index_batch(url: str, files: Sequence[Path]) -> list[dict]:
    """``/index``'s answer for ``files``.

    Each file's problem is normally reported in its own document; should the request as a whole
    fail, the files are sent again one by one, so one bad file fails alone.
    """
    try:
        return post(url, "index", [{"uri": str(p)} for p in files])
    except RequestFailed as exc:
        if len(files) == 1:
            return [{"uri": str(files[0]), "status": "error", "error": str(exc)}]
        return [doc for path in files for doc in index_batch(url, [path])]


def progress_note(results: list[dict], seconds: float) -> str:
    """How much audio ``results`` hold, how much faster than real time, and failures."""
    audio = sum(d.get("duration") or 0 for d in results)
    failed = sum(d["status"] == "error" for d in results)
    length = f"{audio / 3600:.2f} h" if audio >= 3600 else f"{audio / 60:.1f} min"
    return f"{length} audio, {audio / max(seconds, 1e-9):.0f}x realtime, {failed} failed"


def print_index_summary(results: list[dict], seconds: float) -> None:
    """Counts by status and the totals, then each failed file with the reason."""
    from collections import Counter

    counts = Counter(d["status"] for d in results)
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(
        f"{len(results)} files in {seconds:.1f} s: {statuses}; {progress_note(results, seconds)}"
        if results
        else "no audio files found"
    )
    failures = [d for d in results if d["status"] == "error"]
    if failures:
        print("failed:")
    for doc in failures:
        uri = doc.get("uri") or "(no path)"
        print(f"  {uri}\n      {doc['error'].removeprefix(f'{uri}: ')}")


def print_matches(query: str, doc: dict) -> None:
    """A ranked table of one query's matches."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if doc.get("status") == "error":
        console.print(f"[red]{doc['error']}[/red]")
        return
    table = Table(title=f"Most similar to {query}", title_justify="left")
    for column in ("rank", "id", "score", "matched segment", "query segment", "path"):
        table.add_column(
            column, justify="right" if column in ("rank", "id", "score") else "left",
            overflow="fold" if column == "path" else "ellipsis",
        )  # fmt: skip
    marks = {"like": " +", "unlike": " -"}
    for rank, m in enumerate(doc["matches"], 1):
        table.add_row(
            f"{rank}{marks.get(m.get('judged'), '')}", str(m["clip_id"]), f"{m['score']:.3f}",
            f"{m['start']:.1f}-{m['end']:.1f} s",
            f"{m['query_start']:.1f}-{m['query_end']:.1f} s", _short(m["uri"]),
        )  # fmt: skip
    console.print(table)


def _short(uri: str) -> str:
    path = Path(uri)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else uri


#: Seconds between the health checks ``serve`` makes of its own flow.
HEALTH_INTERVAL_SECONDS = 2.0
#: Seconds an executor may fail its health checks before ``serve`` exits with an error, so that
#: a supervisor (Docker's restart policy, systemd, Kubernetes) starts the service again.
UNHEALTHY_EXIT_SECONDS = 10.0
#: Seconds the flow has to stop once asked; then its processes are killed.
STOP_SECONDS = 5.0


def cmd_serve(args: argparse.Namespace) -> None:
    config = flow_config(
        port=args.port, host=args.host, workspace=args.workspace, encoder=args.encoder,
        models_dir=args.models_dir, allowed_roots=args.allowed_root, max_seconds=args.max_seconds,
        shards=args.shards,
    )  # fmt: skip
    url = base_url(config)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `docker stop`: as Ctrl-C
    flow = build_flow(config)
    problem = None
    try:
        flow.start()
        print(f"serving on {url} (web page: {url}/ui, Swagger UI: {url}/docs)", flush=True)
        problem = wait_while_healthy(url)
    except KeyboardInterrupt:
        pass
    finally:
        stop_within(flow, STOP_SECONDS)
    if problem:
        raise SystemExit(f"stopped: {problem}; exiting with an error so a supervisor restarts it")


def wait_while_healthy(url: str) -> str:
    """Block while the flow at ``url`` answers its health check; what failed, once it has
    failed for ``UNHEALTHY_EXIT_SECONDS``."""
    failing_since = None
    while True:
        time.sleep(HEALTH_INTERVAL_SECONDS)
        problem = health_problem(url)
        if problem is None:
            failing_since = None
        elif failing_since is None:
            failing_since = time.monotonic()
        elif time.monotonic() - failing_since >= UNHEALTHY_EXIT_SECONDS:
            return problem


def health_problem(url: str) -> str | None:
    """What ``GET /health`` at ``url`` says is wrong, or None when every executor answers."""
    try:
        response = httpx.get(f"{url}/health", timeout=10)
    except httpx.HTTPError as exc:
        return f"the gateway at {url} does not answer ({exc.__class__.__name__})"
    return None if response.status_code == 200 else reason(response)


def stop_within(flow: Any, seconds: float) -> None:
    """Close ``flow``; processes of it still running after ``seconds`` are killed."""
    import multiprocessing
    import threading

    closing = threading.Thread(target=flow.close, daemon=True)
    closing.start()
    closing.join(seconds)
    for child in multiprocessing.active_children():
        child.kill()


def cmd_index(args: argparse.Namespace) -> None:
    started = time.monotonic()
    results = index_files(args.url, args.paths, batch_size=args.batch_size, quiet=args.json)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_index_summary(results, time.monotonic() - started)
    if any(d["status"] == "error" for d in results):
        sys.exit(1)


def search_query(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The /search documents for the command line's query (none for "more like these"), and
    a name for it."""
    region = {k: v for k, v in (("start", args.start), ("end", args.end)) if v is not None}
    if args.clip_id is not None:
        return [{"clip_id": args.clip_id} | region], f"clip {args.clip_id}"
    if args.file is None:  # the liked clips are the query
        return [], "the liked clips " + ", ".join(map(str, args.like))
    path = Path(args.file).expanduser().absolute()
    if args.server_path:
        return [{"uri": str(path)} | region], args.file
    try:  # sent as bytes, so the service may run on another machine
        data = path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"{args.file}: cannot read it ({exc.strerror}); check the path") from None
    query = {"audio_base64": base64.b64encode(data).decode("ascii"), "uri": path.name}
    return [query | region], args.file


def cmd_search(args: argparse.Namespace) -> None:
    queries, name = search_query(args)
    optional = {
        "min_score": args.min_score, "min_duration": args.min_duration,
        "max_duration": args.max_duration, "path_glob": args.path_glob, "strategy": args.strategy,
        "query_expansion": False if args.no_expansion else None,
        "duplicates": True if args.duplicates else None,
    }  # fmt: skip
    parameters = {"limit": args.limit} | {k: v for k, v in optional.items() if v is not None}
    judged = {"like": list(dict.fromkeys(args.like)), "unlike": list(dict.fromkeys(args.unlike))}
    while True:
        [doc] = post(
            args.url, "search", queries, parameters | {k: v for k, v in judged.items() if v}
        )
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print_matches(name, doc)
        if doc.get("status") == "error":
            sys.exit(1)
        if not args.refine or not read_marks(doc["matches"], judged):
            return


#: What --refine asks after each table.
REFINE_PROMPT = "mark by rank: +N more like it, -N less like it (e.g. +1 +3 -2); Enter to stop: "


def read_marks(matches: list[dict], judged: dict[str, list[int]]) -> bool:
    """Read "+3 -2" style marks for the ranks of ``matches`` into ``judged`` (clip ids by
    judgment); False when the user ends the loop (an empty line or end of input)."""
    while True:
        try:
            line = input(REFINE_PROMPT).strip()
        except EOFError:
            return False
        if not line:
            return False
        try:
            marks = [parse_mark(token, len(matches)) for token in line.split()]
        except ValueError as exc:
            print(exc, file=sys.stderr)
            continue
        for sign, rank in marks:
            clip_id = matches[rank - 1]["clip_id"]
            mine, other = ("like", "unlike") if sign == "+" else ("unlike", "like")
            judged[other] = [c for c in judged[other] if c != clip_id]
            judged[mine] = list(dict.fromkeys([*judged[mine], clip_id]))
        return True


def parse_mark(token: str, ranks: int) -> tuple[str, int]:
    """``("+", 3)`` for "+3"; ValueError saying what to type for anything else."""
    if len(token) < 2 or token[0] not in "+-" or not token[1:].isdigit():
        raise ValueError(f"{token!r}: type + or - and a rank, e.g. +3 or -2")
    rank = int(token[1:])
    if not 1 <= rank <= ranks:
        raise ValueError(f"{token!r}: the table shows ranks 1 to {ranks}")
    return token[0], rank


def cmd_list(args: argparse.Namespace) -> None:
    docs = post(args.url, "list", [], {"offset": args.offset, "limit": args.limit})
    if args.json:
        print(json.dumps(docs, indent=2))
    else:
        print_clips(docs, title=f"Indexed clips {args.offset + 1}-{args.offset + len(docs)}")
    if any(d.get("status") == "error" for d in docs):
        sys.exit(1)


def cmd_delete(args: argparse.Namespace) -> None:
    named = [
        {"clip_id": int(c)} if c.isdigit() else {"uri": str(Path(c).expanduser().absolute())}
        for c in args.clips
    ]
    docs = post(args.url, "delete", named)
    if args.json:
        print(json.dumps(docs, indent=2))
    else:
        print_clips(docs, title="Deleted")
    if any(d.get("status") == "error" for d in docs):
        sys.exit(1)


def cmd_stats(args: argparse.Namespace) -> None:
    [doc] = post(args.url, "stats", [])
    stats = doc.get("stats") or {}
    if args.json:
        print(json.dumps(stats, indent=2))
        return
    for key, value in stats.items():
        if key != "per_shard":
            print(f"{key:>14}: {value}")


def print_clips(docs: list[dict], *, title: str) -> None:
    """A table of clips as /list, /clips and /delete describe them; errors in red."""
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title, title_justify="left")
    for column in ("id", "duration", "chunks", "indexed", "path"):
        table.add_column(column, justify="right" if column in ("id", "chunks") else "left",
                         overflow="fold" if column == "path" else "ellipsis")  # fmt: skip
    for doc in docs:
        if doc.get("status") == "error":
            console.print(f"[red]{doc['error']}[/red]")
            continue
        indexed = datetime.fromtimestamp(doc["indexed_at"]).strftime("%Y-%m-%d %H:%M")
        table.add_row(str(doc["clip_id"]), f"{doc['duration']:.1f} s", str(doc["chunk_count"]),
                      indexed, _short(doc["uri"]))  # fmt: skip
    if table.rows:
        console.print(table)


def cmd_models(args: argparse.Namespace) -> None:
    from audiosearch.encoders.model_files import download_model_files, find_vggish_files
    from audiosearch.encoders.vggish import smoke_test
    from audiosearch.errors import ModelFileError

    models_dir = Path(args.models_dir)
    try:
        if args.models_command == "download":
            for path in download_model_files(models_dir):
                print(f"ok {path}")
            return
        weights, pca = find_vggish_files(models_dir)
        report = smoke_test(models_dir, weights_file=weights, pca_file=pca)
    except ModelFileError as exc:
        raise SystemExit(f"models {args.models_command} failed: {exc}") from None
    for key, expected in report["expected"].items():
        print(f"{key:>20}: {report[key]:10.6f}  (reference {expected}, within 10 %)")
    if not report["passed"]:
        raise SystemExit(f"{weights} does not reproduce Google's VGGish: {report['failed']} off")
    print(f"ok: {weights} reproduces the reference VGGish smoke test")


def containerized(config: dict[str, Any], image: str, tag: str) -> tuple[dict[str, Any], list[str]]:
    """``config`` with the gateway and every executor run from an image of its own, and the
    ``docker build`` commands that make those images from this project's Dockerfile."""
    builds: list[str] = []

    def image_of(name: str, uses: str, py_modules: list[str]) -> str:
        builds.append(
            f"docker build --build-arg EXECUTOR={uses} --build-arg PY_MODULE={py_modules[0]} "
            f"-t {image}-{name}:{tag} ."
        )
        return f"docker://{image}-{name}:{tag}"

    gateway = config["gateway"]
    gateway["uses"] = image_of("gateway", gateway["uses"], gateway["py_modules"])
    for executor in config["executors"]:
        if executor.get("shards", 1) > 1:  # Jina runs the shards' head from the plain image
            builds.insert(0, f"docker build -t {image}:{tag} .")
        if "uses_after" in executor:
            executor["uses_after"] = image_of(
                f"{executor['name']}-merger", executor["uses_after"], executor["py_modules"]
            )
        executor["uses"] = image_of(executor["name"], executor["uses"], executor["py_modules"])
        if "workspace" in executor:  # a volume that outlives the container, where the image has it
            executor["workspace"] = CONTAINER_WORKSPACE
            executor["volumes"] = [f"{INDEX_VOLUME}:{CONTAINER_WORKSPACE}"]
    config["with"]["disable_auto_volume"] = True  # else compose mounts a cache over /app, the code
    # Container paths, not the exporting host's: the image's library mount point added.
    read_policy = config["gateway"]["uses_with"]["read_policy"]
    read_policy["allowed_roots"] = [*yaml.safe_load(FLOW_YML.read_text())["gateway"]["uses_with"][
        "read_policy"]["allowed_roots"], "/data"]  # fmt: skip
    return config, builds


def finish_compose(path: Path) -> None:
    """Make the docker-compose file Jina wrote restart what dies and keep the index.

    Every service restarts when its process dies (a dead executor brings the service back by
    itself); the indexer's shards share one named volume, so the index outlives
    ``docker compose down`` and any shard can read another's clips for "more like this"; the
    gateway is published on 127.0.0.1 only, as the Dockerfile advises.
    """
    compose = yaml.safe_load(path.read_text())
    for service in compose["services"].values():
        service["restart"] = "unless-stopped"
        service["ports"] = [f"127.0.0.1:{p}" for p in service.get("ports", [])] or None
        if service["ports"] is None:
            del service["ports"]
    compose["volumes"] = {INDEX_VOLUME: {}}
    path.write_text(yaml.safe_dump(compose, sort_keys=False))


def cmd_export(args: argparse.Namespace) -> None:
    out = Path(args.out).absolute()
    config, builds = containerized(
        flow_config(host="0.0.0.0", shards=args.shards), args.image, args.tag
    )
    os.environ.setdefault("JINA_GATEWAY_IMAGE", f"{args.image}:{args.tag}")  # for shard heads
    flow = build_flow(config)
    if args.target == "kubernetes":
        flow.to_kubernetes_yaml(str(out), k8s_namespace=args.namespace)
    else:
        out.mkdir(parents=True, exist_ok=True)
        flow.to_docker_compose_yaml(str(out / "docker-compose.yml"))
        finish_compose(out / "docker-compose.yml")
    print(f"wrote {out}; build the images it runs, in {ROOT}:")
    for command in dict.fromkeys(builds):
        print(f"  {command}")


def cmd_demo(args: argparse.Namespace) -> None:
    """Start the flow, index toy-data/ and search with a few of its clips."""
    config = flow_config(
        port=args.port, workspace=args.workspace, encoder=args.encoder, models_dir=args.models_dir
    )
    url = base_url(config)
    with build_flow(config):
        started = time.monotonic()
        results = index_files(url, [str(ROOT / "toy-data")], batch_size=8, quiet=False)
        print_index_summary(results, time.monotonic() - started)
        for query in sorted(find_audio([str(ROOT / "toy-data")]))[: args.queries]:
            [doc] = post(url, "search", [{"uri": str(query)}], {"limit": 5})
            print_matches(query.name, doc)


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    top = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(dest="command", required=True)
    flow = flow_config()
    default_url = base_url(flow)
    read_policy = flow["gateway"]["uses_with"]["read_policy"]

    def command(name: str, help: str, example: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=f"{help}\n\nexample:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip

    for name, help, example in (
        ("serve", "Start the flow and serve HTTP until interrupted.", "python app.py serve"),
        ("demo", "Index toy-data/ and search with some of its clips.", "python app.py demo"),
    ):
        sub = command(name, help, example)
        sub.add_argument("--port", type=int, help="HTTP port (flow.yml: 8080)")
        sub.add_argument("--workspace", help="where the index lives (flow.yml: workspace/)")
        sub.add_argument("--encoder", choices=("auto", "vggish", "sfx"), help="flow.yml: auto")
        sub.add_argument("--models-dir", help="where VGGish weights are (flow.yml: models/)")
    commands.choices["serve"].add_argument(
        "--host", help="address to listen on (flow.yml: 127.0.0.1; 0.0.0.0 exposes it)"
    )
    commands.choices["serve"].add_argument(
        "--allowed-root", action="append", default=[], metavar="DIR",
        help="also read clients' audio files under DIR (repeatable; flow.yml: toy-data, data)",
    )  # fmt: skip
    commands.choices["serve"].add_argument(
        "--max-seconds",
        type=float,
        help=f"decode only this much of each file (flow.yml: {read_policy['max_seconds']:g})",
    )
    commands.choices["serve"].add_argument(
        "--shards", type=int, help="indexer shards; keep the number an index was built with (1)"
    )
    commands.choices["demo"].add_argument(
        "--queries", type=int, default=3, help="how many toy clips to search with"
    )

    index = command(
        "index", "Index audio files or folders (recursively).", "python app.py index ~/sounds"
    )
    index.add_argument("paths", nargs="+", help="audio files or folders")
    index.add_argument(
        "--batch-size", type=int, default=16, help="files per request (progress shows per batch)"
    )

    search = command(
        "search",
        "Find the indexed clips most similar to FILE (its bytes are sent, so the service may "
        "run elsewhere), or to an indexed clip.",
        "python app.py search q.wav --limit 5 --max-duration 10\n"
        "  python app.py search --clip-id 12        # more like indexed clip 12\n"
        "  python app.py search q.wav --from 2.5 --to 6 --like 7 --unlike 3 --refine",
    )
    search.set_defaults(search_parser=search)  # main() reports a search with no query by it
    query = search.add_mutually_exclusive_group()
    query.add_argument("file", nargs="?", help="the query clip")
    query.add_argument("--clip-id", type=int, help="search with this indexed clip instead")
    search.add_argument(
        "--from", dest="start", type=float, metavar="SECONDS",
        help="search with the query from this time on (match times stay in its own time)",
    )  # fmt: skip
    search.add_argument(
        "--to", dest="end", type=float, metavar="SECONDS", help="... up to this time"
    )
    search.add_argument(
        "--like", type=int, action="append", default=[], metavar="CLIP_ID",
        help="a result you want more like (repeatable); with no FILE: more like these clips",
    )  # fmt: skip
    search.add_argument(
        "--unlike", type=int, action="append", default=[], metavar="CLIP_ID",
        help="a result you want less like (repeatable)",
    )  # fmt: skip
    search.add_argument(
        "--refine", action="store_true",
        help="after each table, read marks by rank (+3 +5 -2) and search again with them",
    )  # fmt: skip
    search.add_argument(
        "--server-path", action="store_true",
        help="send FILE's path for the service to read instead of its bytes (same machine)",
    )  # fmt: skip
    search.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"how many clips to show ({DEFAULT_LIMIT})"
    )
    search.add_argument("--min-score", type=float, help="leave out clips scoring less (-1..1)")
    search.add_argument("--min-duration", type=float, help="shortest clip to show, seconds")
    search.add_argument("--max-duration", type=float, help="longest clip to show, seconds")
    search.add_argument("--path-glob", help="only clips whose path matches, e.g. '*/drums/*'")
    search.add_argument(
        "--strategy", help="how window matches make a clip's score, e.g. mean_chunk or votes "
        "(default: flow.yml's; README 'Retrieval quality' compares them)",
    )  # fmt: skip
    search.add_argument(
        "--no-expansion", action="store_true",
        help="score by plain cosines: no second search with the nearest indexed window",
    )  # fmt: skip
    search.add_argument(
        "--duplicates", action="store_true",
        help="show only copies of the query (re-encoded, trimmed, louder or quieter)",
    )  # fmt: skip

    listing = command(
        "list", "List the indexed clips, by id, a page at a time.",
        "python app.py list --offset 50 --limit 50",
    )  # fmt: skip
    listing.add_argument("--offset", type=int, default=0, help="clips to skip (default 0)")
    listing.add_argument("--limit", type=int, default=50, help="clips to show, 1..1000")
    delete = command(
        "delete", "Remove clips from the index (the files stay where they are).",
        "python app.py delete 12 ~/sounds/old_take.wav",
    )  # fmt: skip
    delete.add_argument("clips", nargs="+", help="clip ids (whole numbers) or file paths")
    stats = command(
        "stats", "Show what the index holds and how it is set up.", "python app.py stats"
    )

    for sub in (index, search, listing, delete, stats):
        sub.add_argument("--url", default=default_url, help=f"the service (default {default_url})")
        sub.add_argument("--json", action="store_true", help="print the raw JSON results")

    export = command(
        "export", "Write Kubernetes or docker-compose files for the flow in flow.yml, each "
        "executor in an image of its own (the command prints how to build them).",
        "python app.py export kubernetes k8s/ --shards 2",
    )  # fmt: skip
    export.add_argument("target", choices=("kubernetes", "docker-compose"))
    export.add_argument("out", help="folder to write into")
    export.add_argument("--image", default="audiosearch", help="image name (prefix)")
    export.add_argument("--tag", default="latest", help="image tag")
    export.add_argument("--shards", type=int, help="indexer shards (flow.yml: 1)")
    export.add_argument("--namespace", default="audiosearch", help="Kubernetes namespace")

    models = command("models", "Manage model files.", "python app.py models download")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    for name, help in (
        ("download", "Fetch VGGish weights and PCA parameters, verify their sha256."),
        ("check", "Run Google's VGGish smoke test on the weights in models/."),
    ):
        models_commands.add_parser(name, help=help).add_argument(
            "--models-dir", default=str(ROOT / "models")
        )
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line."""
    args = parser().parse_args(argv)
    if args.command == "search" and args.file is None and args.clip_id is None and not args.like:
        args.search_parser.error("one of the arguments file --clip-id --like is required")
    handlers = {
        "serve": cmd_serve, "demo": cmd_demo, "index": cmd_index, "search": cmd_search,
        "list": cmd_list, "delete": cmd_delete, "stats": cmd_stats, "export": cmd_export,
        "models": cmd_models,
    }  # fmt: skip
    try:
        handlers[args.command](args)
    except RequestFailed as exc:
        raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    main()
