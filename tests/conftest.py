"""Shared fixtures: toy audio, generated clips, and a real flow served on a free port."""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosearch.client import AudioSearchClient, RequestFailed
from audiosearch.encoders.vggish import VGGishEncoder, VGGishNetwork

ROOT = Path(__file__).resolve().parent.parent
TOY_DATA = ROOT / "toy-data"
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus"}


def toy_clips() -> list[Path]:
    """Every audio clip in toy-data/, sorted."""
    return sorted(p for p in TOY_DATA.iterdir() if p.suffix in AUDIO_SUFFIXES)


def _stop_with_parent() -> None:
    """In the server's process: get SIGINT when the test run dies, so no flow outlives it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG


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
        try:
            return AudioSearchClient(self.url, timeout=300).post(endpoint, docs, parameters)
        except RequestFailed as exc:
            raise AssertionError(str(exc)) from None

    def stop(self) -> None:
        """Stop the flow and every process it started."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_server(
    workspace: Path, *extra: str, timeout: float = 300, env: dict[str, str] | None = None
) -> Server:
    """Start ``app.py serve`` on a free port and wait until it answers HTTP.

    Besides toy-data/, the server reads audio files under the workspace's parent folder (the
    test's tmp_path, typically), so tests can index the clips they write there. ``env`` adds
    to the server's environment (e.g. AUDIOSEARCH_API_KEY).
    """
    port = free_port()
    log = workspace.parent / f"serve-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(port),
             "--workspace", str(workspace), "--allowed-root", str(workspace.parent), *extra],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_stop_with_parent,
            env={**os.environ, "COLUMNS": "400", **(env or {})},  # one log line per record
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", port, workspace, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the flow exited with {process.returncode}:\n{log.read_text()}")
        try:
            if AudioSearchClient(server.url, timeout=2).health()["status"] == "ok":
                return server
        except RequestFailed:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"the flow did not answer within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def sfx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A flow with the sfx encoder and an empty index, shared by the end-to-end tests.

    It reads audio anywhere under the session's temporary folder, so every test's tmp_path.
    """
    server = start_server(
        tmp_path_factory.mktemp("flow") / "workspace", "--encoder", "sfx",
        "--allowed-root", str(tmp_path_factory.getbasetemp()),
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="session")
def toy_index(sfx_server: Server) -> list[dict]:
    """toy-data/ indexed into ``sfx_server`` once per session; the /index response documents."""
    return sfx_server.post("index", [{"uri": str(p)} for p in toy_clips()])


# --- a generated VGGish checkpoint (random weights: for tests only, never a model) -------------


def save_named(obj: object, directory: Path, stem: str, **save_kwargs: object) -> str:
    """Save ``obj`` as ``<stem>-<sha256 prefix>.pth`` (the torch.hub convention); its name."""
    tmp = directory / f"{stem}.tmp"
    torch.save(obj, tmp, **save_kwargs)
    with tmp.open("rb") as fh:
        prefix = hashlib.file_digest(fh, "sha256").hexdigest()[:8]
    name = f"{stem}-{prefix}.pth"
    tmp.rename(directory / name)
    return name


class GeneratedVGGish:
    """A generated (random) checkpoint pair in a temporary models directory."""

    def __init__(self, directory: Path) -> None:
        torch.manual_seed(1234)
        self.dir = directory
        self.network = VGGishNetwork(final_relu=False).eval()
        # He init and zero biases: PyTorch's default init shrinks the signal layer by layer until
        # the output hardly depends on the input, which would make equality tests weak.
        with torch.no_grad():
            for module in self.network.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    torch.nn.init.zeros_(module.bias)
        self.state = self.network.state_dict()  # shares storage; nothing trains the network
        self.weights_file = save_named(self.state, directory, "vggish")
        rng = np.random.default_rng(1234)
        q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
        self.eig, self.means = q * 2.0, rng.normal(0, 0.05, 128)
        # Like the release file: numpy float64 arrays in the legacy (non-zip) format.
        self.pca_file = save_named(
            {"pca_eigen_vectors": self.eig, "pca_means": self.means},
            directory,
            "vggish_pca_params",
            _use_new_zipfile_serialization=False,
        )

    def encoder(self, **kwargs: object) -> VGGishEncoder:
        return VGGishEncoder(
            self.dir, weights_file=self.weights_file, pca_file=self.pca_file, **kwargs
        )


@pytest.fixture(scope="session")
def generated_vggish(tmp_path_factory: pytest.TempPathFactory) -> GeneratedVGGish:
    """VGGish-shaped random weights and PCA params, named by their own checksums."""
    return GeneratedVGGish(tmp_path_factory.mktemp("vggish-models"))
