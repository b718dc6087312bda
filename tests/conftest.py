"""Shared fixtures: toy audio, generated clips, and a real flow served on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
TOY_DATA = ROOT / "toy-data"
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus"}


def toy_clips() -> list[Path]:
    """Every audio clip in toy-data/, sorted."""
    return sorted(p for p in TOY_DATA.iterdir() if p.suffix in AUDIO_SUFFIXES)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tone(path: Path, seconds: float, *, rate: int = 16_000, freq: float = 440.0) -> Path:
    """A sine tone with a slow tremolo (so no two windows are identical), as a WAV file."""
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    sf.write(path, tone.astype(np.float32), rate)
    return path


@dataclass
class Server:
    """A running ``app.py serve`` process."""

    url: str
    port: int
    workspace: Path
    process: subprocess.Popen
    log: Path

    def post(self, endpoint: str, docs: list[dict], **parameters) -> list[dict]:
        """POST documents, assert HTTP 200, return the documents of the response."""
        response = httpx.post(
            f"{self.url}/{endpoint}", json={"data": docs, "parameters": parameters}, timeout=300
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def stop(self) -> None:
        """Stop the flow and every process it started."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_server(workspace: Path, *extra: str, timeout: float = 120) -> Server:
    """Start ``app.py serve`` on a free port and wait until it answers HTTP."""
    port = free_port()
    log = workspace.parent / f"serve-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(port),
             "--workspace", str(workspace), *extra],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", port, workspace, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the flow exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"the flow did not answer within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def sfx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A flow with the sfx encoder and an empty index, shared by the end-to-end tests."""
    server = start_server(tmp_path_factory.mktemp("flow") / "workspace", "--encoder", "sfx")
    yield server
    server.stop()
