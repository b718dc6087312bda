"""End to end: the flow as `app.py export docker-compose` deploys it, one process per service.

Each compose service (the gateway, every executor, the indexer's head, its two shards and their
merger) is started as its own local process from the command its container would run, and the
processes talk to each other over loopback only through the addresses the export wrote. This
is what "scale out with Jina" rests on: the exported deployment works beyond one Flow object.

The local command for a service is its container's ``entrypoint`` + ``command`` with what only
a container has put back to local terms:

- ``--uses config.yml``: the Dockerfile writes that file from the image's build arguments
  (``jtype: EXECUTOR``, ``py_modules: [PY_MODULE]``); the export prints those ``docker build``
  commands, so the class and module come from there.
- hostnames (compose service names): 127.0.0.1; listening on 0.0.0.0: on 127.0.0.1.
- ports: every container listens on the same port in a namespace of its own; here each service
  gets a free port of its own, and every address that names a service is rewritten to it.
- ``/app/workspace`` (one named volume, shared by the indexer's containers): one folder of the
  test's own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ROOT, _stop_with_parent, free_port, toy_clips

pytestmark = pytest.mark.slow

SHARDS = 2
#: The indexer shard the test kills; compose names shards ``<executor>-<shard id>``.
KILLED_SHARD = "indexer-1"
#: How long all the services may take to start, together (2 cores, 8 Python processes).
START_TIMEOUT = 240.0
#: How soon after a shard dies /health must say so.
HEALTH_TIMEOUT = 10.0
#: Where the image keeps the index (Dockerfile: VOLUME /app/workspace).
CONTAINER_WORKSPACE = "/app/workspace"
LOOPBACK = "127.0.0.1"
#: The query clip; the other indexed clips are picked so that both shards store some.
QUERY_CLIP = ROOT / "toy-data" / "piano_phrase_10s.wav"
#: ``docker build --build-arg EXECUTOR=X --build-arg PY_MODULE=m.py -t image:tag .``
_BUILD_LINE = re.compile(
    r"docker build --build-arg EXECUTOR=(?P<executor>\S+) "
    r"--build-arg PY_MODULE=(?P<py_module>\S+) -t (?P<image>\S+) \."
)


# --- the export, read -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImageBuild:
    """What the Dockerfile bakes into an executor's image: its config.yml's class and module."""

    executor: str
    py_module: str


@dataclass(frozen=True)
class Export:
    """``app.py export docker-compose``'s output: the compose file and the images it needs."""

    compose: dict[str, Any]
    builds: dict[str, ImageBuild]  # image (name:tag) -> its build arguments

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.compose["services"]


def export_docker_compose(out: Path, shards: int) -> Export:
    """Run ``app.py export docker-compose OUT --shards N``; its compose file and build lines."""
    done = subprocess.run(
        [sys.executable, "app.py", "export", "docker-compose", str(out), "--shards", str(shards)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    builds = {
        m["image"]: ImageBuild(m["executor"], m["py_module"])
        for m in _BUILD_LINE.finditer(done.stdout)
    }
    return Export(yaml.safe_load((out / "docker-compose.yml").read_text()), builds)


def flow_yml_classes() -> set[str]:
    """Every class flow.yml runs: the gateway's, each executor's and its ``uses_after``."""
    flow = yaml.safe_load((ROOT / "flow.yml").read_text())
    classes = {flow["gateway"]["uses"]}
    for executor in flow["executors"]:
        classes.add(executor["uses"])
        if "uses_after" in executor:
            classes.add(executor["uses_after"])
    return classes


def container_argv(service: Mapping[str, Any]) -> list[str]:
    """What the service's container runs: its entrypoint followed by its command."""
    return [*_words(service.get("entrypoint", [])), *_words(service.get("command", []))]


def _words(value: str | Sequence[Any]) -> list[str]:
    """A compose entrypoint or command as a list: a string is split the way a shell would."""
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def option(argv: Sequence[str], flag: str) -> str | None:
    """The value that follows ``flag`` in ``argv``, or None when ``flag`` is absent."""
    argv = list(argv)
    return argv[argv.index(flag) + 1] if flag in argv else None


def with_option(argv: Sequence[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced by ``value``, or ``flag value`` appended."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    return argv


# --- the export, made local -----------------------------------------------------------------


def rewrite_addresses(text: str, ports: Mapping[str, int]) -> str:
    """``text`` with every ``<service>:<port>`` address pointing at that service's local port.

    Works inside JSON values too (``--connection-list``, ``--deployments-addresses``). A name
    not followed by a port (``--graph-description`` names deployments, not hosts) is left alone.
    """
    names = "|".join(re.escape(n) for n in sorted(ports, key=len, reverse=True))
    return re.sub(rf"(?<![\w.-])({names}):\d+\b", lambda m: f"{LOOPBACK}:{ports[m[1]]}", text)


def local_argv(
    name: str, argv: Sequence[str], export: Export, ports: Mapping[str, int], workspace: Path
) -> list[str]:
    """The command that runs service ``name`` here as its container would run it there.

    ``ports`` maps every service to its local port; ``workspace`` replaces the named volume
    the export mounts on every indexer container's /app/workspace.
    """
    image = export.services[name]["image"]
    jina = Path(sys.executable).with_name("jina")
    argv = [str(jina), *argv[1:]] if argv[0] == "jina" else list(argv)
    if option(argv, "--uses") == "config.yml":  # written into the image by the Dockerfile
        build = export.builds.get(image)
        assert build, f"{name}: nothing in the export's build lines makes {image}'s config.yml"
        argv = with_option(argv, "--uses", build.executor)
        argv = with_option(argv, "--py-modules", build.py_module)
    if option(argv, "--workspace") == CONTAINER_WORKSPACE:
        argv = with_option(argv, "--workspace", str(workspace))
    argv = with_option(argv, "--host", LOOPBACK)  # the gateway's default is 0.0.0.0
    argv = with_option(argv, "--port", str(ports[name]))
    if "--port-monitoring" in argv:  # containers share one; unused unless monitoring is on
        argv = with_option(argv, "--port-monitoring", str(free_port()))
    argv = [rewrite_addresses(arg, ports) for arg in argv]
    hostnames = "|".join(re.escape(n) for n in ports)
    left = [a for a in argv if "/app/" in a or re.search(rf"(?<![\w.-])({hostnames}):\d", a)]
    assert not left, f"{name}: container paths or hostnames left in {left}"
    return argv


# --- the services, running ------------------------------------------------------------------


@dataclass
class Service:
    """One compose service running as a local process."""

    name: str
    argv: list[str]
    port: int
    log: Path
    process: subprocess.Popen

    def tail(self, lines: int = 30) -> str:
        """The end of its log, for failure messages."""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (exit {self.process.poll()}): {self.log}\n" + "\n".join(text)


def start_service(
    name: str, argv: list[str], port: int, environment: Sequence[str], log: Path
) -> Service:
    """Start ``argv`` in the project root, in a session of its own, logging to ``log``.

    ``environment`` is the service's compose ``environment`` list (``KEY=value``).
    """
    env = {**os.environ, "COLUMNS": "400", **dict(e.split("=", 1) for e in environment)}
    # The image pip-installs the project (-e) in /app; here the project root plays that part.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_stop_with_parent,
        )  # fmt: skip
    return Service(name, argv, port, log, process)


def stop_all(services: Sequence[Service], grace: float = 20.0) -> None:
    """Interrupt every service's process group, then kill what is still running after ``grace``."""
    running = [s for s in services if s.process.poll() is None]
    for service in running:
        _signal_group(service, signal.SIGINT)
    deadline = time.monotonic() + grace
    for service in running:
        try:
            service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(service, signal.SIGKILL)
            service.process.wait()


def _signal_group(service: Service, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # start_new_session: group id = process id
        os.killpg(service.process.pid, sig)


def wait_until_ready(services: Mapping[str, Service], gateway: str, timeout: float) -> None:
    """Wait until every executor answers Jina's readiness check (the compose healthcheck,
    ``jina ping executor``) and then the gateway answers ``GET /`` with 200."""
    from jina.serve.runtimes.servers import BaseServer

    deadline = time.monotonic() + timeout
    waiting = [s for name, s in services.items() if name != gateway]
    while waiting and time.monotonic() < deadline:
        _assert_all_alive(services)
        waiting = [s for s in waiting if not BaseServer.is_ready(f"{LOOPBACK}:{s.port}")]
        time.sleep(0.5)
    assert not waiting, f"not ready within {timeout} s: {[s.name for s in waiting]}\n" + "\n".join(
        s.tail() for s in waiting
    )
    url = f"http://{LOOPBACK}:{services[gateway].port}/"
    while time.monotonic() < deadline:
        _assert_all_alive(services)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the gateway did not answer GET / within {timeout} s\n{services[gateway].tail()}")


def _assert_all_alive(services: Mapping[str, Service]) -> None:
    dead = [s for s in services.values() if s.process.poll() is not None]
    assert not dead, "exited while starting:\n" + "\n".join(s.tail() for s in dead)


@pytest.fixture
def exported_flow(tmp_path: Path) -> Iterator[tuple[str, dict[str, Service]]]:
    """The exported deployment, every service a local process; (gateway URL, services by name).

    Every process is stopped when the test ends, whatever happened; each also gets SIGINT
    should the test run itself die (PR_SET_PDEATHSIG).
    """
    export = export_docker_compose(tmp_path / "export", SHARDS)
    assert {b.executor for b in export.builds.values()} == flow_yml_classes()
    ports = {name: free_port() for name in export.services}
    logs = tmp_path / "logs"
    logs.mkdir()
    services: dict[str, Service] = {}
    try:
        for name, spec in export.services.items():  # compose starts them all at once too
            argv = local_argv(name, container_argv(spec), export, ports, tmp_path / "workspace")
            services[name] = start_service(
                name, argv, ports[name], spec.get("environment", []), logs / f"{name}.log"
            )
        gateway = next(n for n, s in services.items() if s.argv[1] == "gateway")
        wait_until_ready(services, gateway, START_TIMEOUT)
        yield f"http://{LOOPBACK}:{ports[gateway]}", services
    finally:
        stop_all(list(services.values()))


# --- the test -------------------------------------------------------------------------------


def clips_on_every_shard(per_shard: int) -> list[Path]:
    """QUERY_CLIP and other toy clips, ``per_shard`` of them for each indexer shard.

    A file's shard is a hash of its absolute path, so which toy clips land where depends on
    where the project is checked out; picking by that hash keeps both shards busy anywhere.
    """
    from audiosearch.index import uri_shard

    picked: dict[int, list[Path]] = {shard: [] for shard in range(SHARDS)}
    for clip in [QUERY_CLIP, *toy_clips()]:
        shard = uri_shard(str(clip), SHARDS)
        if len(picked[shard]) < per_shard and clip not in picked[shard]:
            picked[shard].append(clip)
    clips = [clip for shard in picked.values() for clip in shard]
    assert len(clips) == per_shard * SHARDS and QUERY_CLIP in clips
    return clips


def post(url: str, endpoint: str, docs: list[dict], **parameters: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/{endpoint}", json={"data": docs, "parameters": parameters}, timeout=120
    )


def test_exported_services_index_search_and_report_a_dead_shard(exported_flow):
    url, services = exported_flow

    clips = clips_on_every_shard(per_shard=2)
    response = post(url, "index", [{"uri": str(clip)} for clip in clips])
    assert response.status_code == 200, response.text
    added = response.json()["data"]
    assert [d["status"] for d in added] == ["added"] * len(clips), added
    assert {d["clip_id"] % SHARDS for d in added} == set(range(SHARDS))  # ids: shard + N * n

    response = post(url, "search", [{"uri": str(QUERY_CLIP)}], limit=3)
    assert response.status_code == 200, response.text
    [found] = response.json()["data"]
    assert found["status"] == "searched", found
    best = found["matches"][0]
    assert best["uri"] == str(QUERY_CLIP) and best["score"] > 0.99, found["matches"]

    # "More like this" needs the clip's stored vectors, whichever shard asks for them.
    [query] = [d for d in added if d["uri"] == str(QUERY_CLIP)]
    response = post(url, "search", [{"clip_id": query["clip_id"]}], limit=3)
    assert response.status_code == 200, response.text
    [like] = response.json()["data"]
    assert like["status"] == "searched", like
    assert like["matches"] and query["clip_id"] not in [m["clip_id"] for m in like["matches"]]

    # One shard dies: the service must say so, and which part, rather than fail obscurely.
    shard = services[KILLED_SHARD]
    os.killpg(shard.process.pid, signal.SIGKILL)
    shard.process.wait()
    deadline, health = time.monotonic() + HEALTH_TIMEOUT, None
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=HEALTH_TIMEOUT)
        if health.status_code == 503:
            break
        time.sleep(0.5)
    assert health is not None and health.status_code == 503, (
        f"GET /health {HEALTH_TIMEOUT} s after {KILLED_SHARD} was killed: "
        f"{health.status_code} {health.text}"
    )
    assert "indexer" in health.json()["detail"], health.text

    response = post(url, "search", [{"uri": str(QUERY_CLIP)}], limit=3)
    assert response.status_code == 503, response.text
    assert response.json()["detail"], response.text
    assert httpx.get(f"{url}/", timeout=HEALTH_TIMEOUT).status_code == 503
