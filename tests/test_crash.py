"""Crash safety: processes killed with SIGKILL mid-write lose nothing acknowledged, and leave no
half-stored clip behind."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from audiosearch.index import ChunkIndex, read_stored_clip
from tests.conftest import ROOT, start_server, toy_clips
from tests.crash_writer import DIM, ENCODER, expected_vectors


def version_number(version: str) -> tuple[int, int]:
    """``v3.17`` as (3, 17): later writes have larger numbers."""
    seed, n = version[1:].split(".")
    return int(seed), int(n)


def run_and_kill(workspace: Path, seed: int, seconds: float) -> list[list[str]]:
    """Run the writer for ``seconds``, SIGKILL it, and return the lines it acknowledged."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_writer", str(workspace), str(seed)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[list[str]] = []
    reader = threading.Thread(target=lambda: lines.extend(ln.split() for ln in process.stdout))
    reader.start()
    time.sleep(seconds)
    process.send_signal(signal.SIGKILL)
    process.wait()
    reader.join()
    return lines


def test_killed_writers_leave_every_acknowledged_change_and_no_partial_clip(tmp_path):
    workspace = tmp_path / "index"
    rng = np.random.default_rng(0)
    acknowledged: dict[str, str | None] = {}  # uri -> newest acknowledged version, None: deleted
    for seed in range(1, 7):
        deleting: list[str] = []
        for word, *items in run_and_kill(workspace, seed, float(rng.uniform(2.0, 5.0))):
            if word == "added":
                acknowledged.update(item.split("=") for item in items)
            elif word == "deleting":
                deleting = items
            else:
                acknowledged.update(dict.fromkeys(deleting))
                deleting = []
        assert acknowledged, "the writer acknowledged nothing before it was killed"

        with ChunkIndex(workspace) as index:  # opens as it is: no repair step
            stored = {clip.uri: clip for clip in index.clips()}
            for uri in deleting:  # killed mid-delete: either way, and known from now on
                acknowledged[uri] = stored[uri].fingerprint if uri in stored else None
            for uri, version in acknowledged.items():
                if version is None:
                    assert uri not in stored
                else:
                    assert version_number(stored[uri].fingerprint) >= version_number(version)
            for clip in stored.values():  # each clip is one whole version, none half written
                vectors = expected_vectors(clip.uri, clip.fingerprint)
                read = read_stored_clip(workspace, clip.clip_id)
                assert read.vectors.shape == vectors.shape == (clip.chunk_count, DIM)
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                np.testing.assert_allclose(read.vectors, vectors / norms, atol=1e-6)
                [hits] = index.search(vectors[-1:], limit=1, encoder=ENCODER)
                assert hits[0].clip_id == clip.clip_id and hits[0].score == pytest.approx(1.0)
            assert index.chunk_count == sum(c.chunk_count for c in stored.values())
        check = sqlite3.connect(workspace / "index.sqlite")
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()


@pytest.mark.slow
def test_a_flow_killed_while_indexing_restarts_with_every_acknowledged_clip(tmp_path):
    sources = toy_clips()[:12]
    library = tmp_path / "library"
    library.mkdir()
    copies = []
    for n in range(60):  # copies of the toy clips under new names: 5 requests of 12
        source = sources[n % len(sources)]
        copies.append(shutil.copy(source, library / f"{n:02d}_{source.name}"))
    server = start_server(tmp_path / "workspace", "--encoder", "sfx", timeout=300)
    answers: list[dict] = []
    try:
        first = server.post("index", [{"uri": str(p)} for p in copies[:12]])
        assert [d["status"] for d in first] == ["added"] * 12
        answers += first
        chunks_of = {
            Path(d["uri"]).name[3:]: c["chunk_count"]
            for d in first
            for c in server.post("clips", [{"clip_id": d["clip_id"]}])
        }

        def keep_indexing() -> None:
            for lo in range(12, len(copies), 12):
                docs = [{"uri": str(p)} for p in copies[lo : lo + 12]]
                try:
                    response = httpx.post(f"{server.url}/index", json={"data": docs}, timeout=300)
                except httpx.HTTPError:
                    return  # killed: this request was never acknowledged
                answers.extend(response.json()["data"])

        indexing = threading.Thread(target=keep_indexing)
        indexing.start()
        while len(answers) < 24 and indexing.is_alive():  # one more request acknowledged
            time.sleep(0.05)
        time.sleep(float(np.random.default_rng().uniform(0.5, 2.0)))  # into the next one
        os.killpg(server.process.pid, signal.SIGKILL)  # the flow and all its executors
        server.process.wait()
        indexing.join()
        assert 24 <= len(answers) < len(copies), "the flow was not killed while indexing"
    finally:
        server.stop()

    restarted = start_server(tmp_path / "workspace", "--encoder", "sfx", timeout=300)
    try:
        stored = {d["uri"]: d for d in restarted.post("list", [], limit=1000)}
        assert {d["uri"] for d in answers} <= set(stored)
        for uri, clip in stored.items():  # complete, whether or not its answer came back
            assert clip["chunk_count"] == chunks_of[Path(uri).name[3:]]
        for uri in list(stored)[-3:]:
            [found] = restarted.post("search", [{"uri": uri}], limit=len(stored))
            top = [m for m in found["matches"] if m["score"] > 0.999]
            assert uri in {m["uri"] for m in top}
        assert restarted.post("stats", [])[0]["stats"]["clips"] == len(stored)
    finally:
        restarted.stop()
