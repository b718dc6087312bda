"""A dead executor is reported, not hidden: health answers 503 naming it, requests get 503 with
a message, `app.py serve` exits non-zero for its supervisor, and Ctrl-C still stops it soon."""

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOY_DATA, Server, start_server

pytestmark = pytest.mark.slow

#: How soon after an executor dies GET / must say so (the issue's bound).
REPORTED_WITHIN = 10.0
#: How soon after that `app.py serve` must have exited, non-zero.
EXITS_WITHIN = 30.0
#: How soon Ctrl-C must stop the whole flow, a dead executor or not.
STOPS_WITHIN = 10.0


def executor_pid(server: Server, name: str) -> int:
    """The process id of the executor ``name``, as the flow's log names it (name/rep-0@PID)."""
    found = re.search(rf"\b{name}/rep-0@(\d+)", server.log.read_text())
    assert found, f"no {name} process in {server.log}"
    return int(found.group(1))


def kill_indexer(server: Server) -> float:
    """SIGKILL the indexer; when it was killed (monotonic seconds)."""
    os.kill(executor_pid(server, "indexer"), signal.SIGKILL)
    return time.monotonic()


def wait_for_503(url: str, since: float) -> httpx.Response:
    """Poll ``url`` until it answers 503; fail if that takes longer than REPORTED_WITHIN."""
    while True:
        response = httpx.get(url, timeout=REPORTED_WITHIN)
        if response.status_code == 503:
            return response
        assert time.monotonic() - since < REPORTED_WITHIN, f"{url}: {response.status_code}"
        time.sleep(0.25)


def exited_within(server: Server, seconds: float) -> int | None:
    """The server process's exit code if it exits within ``seconds``, else None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return server.process.returncode
        time.sleep(0.2)
    return None


@pytest.fixture
def server(tmp_path: Path):
    server = start_server(tmp_path / "workspace", "--encoder", "sfx")
    yield server
    server.stop()


def test_a_dead_indexer_is_named_by_health_and_requests_get_503_then_serve_exits(server):
    healthy = httpx.get(f"{server.url}/health", timeout=10).json()
    assert healthy == {
        "status": "ok",
        "executors": {n: "up" for n in ("segmenter", "encoder", "indexer", "ranker")},
    }
    killed = kill_indexer(server)

    root = wait_for_503(f"{server.url}/", killed)
    assert "executor indexer" in root.json()["detail"], root.text
    health = httpx.get(f"{server.url}/health", timeout=10).json()
    assert health["status"] == "unavailable"
    assert health["executors"]["indexer"].startswith("down: no answer at 127.0.0.1:")
    assert health["executors"]["segmenter"] == "up"
    for endpoint, data in (("search", [{"uri": str(TOY_DATA / "tom_fill.ogg")}]),
                           ("index", [{"uri": str(TOY_DATA / "tom_fill.ogg")}]),
                           ("list", [])):  # fmt: skip
        response = httpx.post(f"{server.url}/{endpoint}", json={"data": data}, timeout=30)
        assert response.status_code == 503, (endpoint, response.text)
        assert "executor indexer" in response.json()["detail"]
    upload = httpx.post(
        f"{server.url}/upload/search",
        files={"file": ("q.ogg", (TOY_DATA / "tom_fill.ogg").read_bytes())}, timeout=30,
    )  # fmt: skip
    assert upload.status_code == 503, upload.text

    code = exited_within(server, EXITS_WITHIN - (time.monotonic() - killed))
    assert code not in (None, 0), f"app.py serve still running or exited 0: {code}"
    assert "stopped: the service cannot answer: executor indexer" in server.log.read_text()


def test_ctrl_c_stops_the_flow_soon_even_with_a_dead_executor(server):
    flow_pids = [int(pid) for pid in re.findall(r"\b\w+/rep-0@(\d+)", server.log.read_text())]
    killed = kill_indexer(server)
    wait_for_503(f"{server.url}/", killed)
    os.kill(server.process.pid, signal.SIGINT)  # app.py alone, as a terminal's Ctrl-C would
    assert exited_within(server, STOPS_WITHIN) is not None, "still running"
    assert not [pid for pid in set(flow_pids) if running(pid)], "the flow's processes live on"


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
