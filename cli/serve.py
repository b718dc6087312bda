"""Commands that run the flow itself: ``serve`` (until interrupted or unhealthy), ``demo`` and
``export``."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from audiosearch.client import URL_ENV, AudioSearchClient, RequestFailed, find_audio
from cli.flowconfig import ROOT, base_url, build_flow, containerized, finish_compose, flow_config
from cli.render import index_with_progress, print_index_summary, print_matches

__all__ = [
    "HARMLESS_LOG", "HARMLESS_WARNINGS", "cmd_demo", "cmd_export", "cmd_serve", "health_problem",
    "quiet_startup", "serve_address", "started_flow", "stop_within",
]  # fmt: skip

#: Seconds between the health checks ``serve`` makes of its own flow.
HEALTH_INTERVAL_SECONDS = 2.0
#: Seconds an executor may fail its health checks before ``serve`` exits with an error, so that
#: a supervisor (Docker's restart policy, systemd, Kubernetes) starts the service again.
UNHEALTHY_EXIT_SECONDS = 10.0
#: Seconds a health check may take.
HEALTH_TIMEOUT_SECONDS = 10.0
#: Seconds the flow has to stop once asked; then its processes are killed.
STOP_SECONDS = 5.0


#: Warnings of Jina's and its packages' start-up that say nothing about this service: a
#: deprecated module Jina's hub client imports, Jina's note on a module name it loads twice,
#: and pydantic v1 config keys in Jina's own models.
HARMLESS_WARNINGS = (
    r"pkg_resources is deprecated",
    r"\s*http_gateway shadows",
    r"Valid config keys have changed in V2",
)
#: Log messages of Jina and gRPC that say nothing is wrong: the gateway asking executors that
#: are still loading their models, notes on endpoints this flow does not use, and gRPC
#: keep-alive pings refused between processes (the connection is opened again).
HARMLESS_LOG = re.compile(
    r"Getting endpoints failed|does not expose /default|is used for health checks|GOAWAY|"
    r"too_many_pings"
)


class _HarmlessDropped(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not HARMLESS_LOG.search(record.getMessage())


class _QuietLogger(logging.Logger):
    """A logger that drops :data:`HARMLESS_LOG` messages (Jina makes one per process)."""

    def __init__(self, name: str, level: int = logging.NOTSET) -> None:
        super().__init__(name, level)
        self.addFilter(_HarmlessDropped())


def quiet_startup() -> None:
    """Leave out the known-harmless warnings and log messages of the flow's start-up, in this
    process and in the flow's processes (forked from it); everything else still shows."""
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    logging.setLoggerClass(_QuietLogger)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def started_flow(config: dict[str, Any]) -> Any:
    """The flow of ``config``, built to start without Jina's address panel (it names
    addresses of the container network, and the command prints the URLs itself)."""
    quiet_startup()
    flow = build_flow(config)
    flow._get_summary_table = lambda panels: None  # Jina prints it whatever the log level
    return flow


def serve_address(args: argparse.Namespace) -> tuple[str | None, int | None]:
    """The host and port to serve on: ``--host`` and ``--port``, else those of ``--url`` (or
    AUDIOSEARCH_URL), else flow.yml's (None)."""
    url = urlsplit(args.url or os.environ.get(URL_ENV) or "")
    return getattr(args, "host", None) or url.hostname, args.port or url.port


def cmd_serve(args: argparse.Namespace) -> None:
    host, port = serve_address(args)
    config = flow_config(
        port=port, host=host, workspace=args.workspace, encoder=args.encoder,
        models_dir=args.models_dir, allowed_roots=args.allowed_root, max_seconds=args.max_seconds,
        shards=args.shards, dtype=args.dtype,
    )  # fmt: skip
    url = base_url(config)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `docker stop`: as Ctrl-C
    flow = started_flow(config)
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
        health = AudioSearchClient(url, timeout=HEALTH_TIMEOUT_SECONDS).health()
    except RequestFailed as exc:
        return f"the gateway at {url} does not answer ({exc})"
    return None if health.get("status") == "ok" else str(health.get("detail", health))


def stop_within(flow: Any, seconds: float) -> None:
    """Close ``flow``; processes of it still running after ``seconds`` are killed."""
    import multiprocessing
    import threading

    closing = threading.Thread(target=flow.close, daemon=True)
    closing.start()
    closing.join(seconds)
    for child in multiprocessing.active_children():
        child.kill()


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
    host, port = serve_address(args)
    config = flow_config(
        port=port, host=host, workspace=args.workspace, encoder=args.encoder,
        models_dir=args.models_dir,
    )  # fmt: skip
    client = AudioSearchClient(base_url(config))
    with started_flow(config):
        started = time.monotonic()
        results = index_with_progress(client, [ROOT / "toy-data"], batch_size=8, quiet=False)
        print_index_summary(results, time.monotonic() - started)
        for query in find_audio([ROOT / "toy-data"])[: args.queries]:
            print_matches(query.name, client.search_result(query, limit=5))
