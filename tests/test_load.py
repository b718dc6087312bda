"""Load: 8 concurrent searchers and 1 indexer against the running flow, over loopback.

For AUDIOSEARCH_LOAD_SECONDS (default 60) every searcher sends a query it knows the answer to
and the indexer keeps adding new clips. No request may fail, every answer must be right, and
every clip the indexer was told was added must be searchable afterwards. Prints the figures.
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from audiosearch.audio import load_audio
from tests.conftest import Server, toy_clips, write_tone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

SEARCHERS = 8
SECONDS = float(os.environ.get("AUDIOSEARCH_LOAD_SECONDS", "60"))
#: No single request may take longer than this (a hung request fails the test).
REQUEST_TIMEOUT = 120.0


@dataclass
class Tally:
    """What one kind of request did: latencies of the good ones, and every failure."""

    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, started: float, failure: str | None) -> None:
        with self.lock:
            if failure:
                self.failures.append(failure)
            else:
                self.seconds.append(time.monotonic() - started)

    def row(self, name: str, wall: float) -> str:
        ms = np.percentile(self.seconds, [50, 99]) * 1000 if self.seconds else [np.nan] * 2
        n = len(self.seconds) + len(self.failures)
        return (
            f"{name:<8} {n:>8} {len(self.failures):>7} {n / wall:>8.2f} {ms[0]:>8.0f} {ms[1]:>8.0f}"
        )


@pytest.fixture(scope="module")
def corpus(sfx_server: Server, tmp_path_factory) -> list[Path]:
    """Eight toy clips played backwards (real sounds no other test indexes), indexed."""
    folder = tmp_path_factory.mktemp("load")
    clips = []
    for path in toy_clips()[:SEARCHERS]:
        clips.append(folder / f"reversed {path.stem}.wav")
        sf.write(clips[-1], load_audio(path)[::-1], 16_000)
    docs = sfx_server.post("index", [{"uri": str(p)} for p in clips])
    assert all(d["status"] in ("added", "unchanged") for d in docs), docs
    return clips


def keep_sending(
    deadline: float, tally: Tally, send: Callable[[httpx.Client, int], str | None]
) -> None:
    """Call ``send`` until the deadline; it returns a failure or None."""
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        turn = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                failure = send(client, turn)
            except httpx.HTTPError as exc:
                failure = repr(exc)
            tally.record(started, failure)
            turn += 1


def test_eight_searchers_and_an_indexer_for_a_minute_with_no_failure(
    sfx_server, corpus, tmp_path, capsys
):
    searches, indexes = Tally(), Tally()
    added: list[str] = []

    def search(client: httpx.Client, turn: int, *, me: int) -> str | None:
        query = str(corpus[(me + turn) % len(corpus)])
        body = {"data": [{"uri": query}], "parameters": {"limit": 5}}
        response = client.post(f"{sfx_server.url}/search", json=body)
        if response.status_code != 200:
            return f"search HTTP {response.status_code}: {response.text[:200]}"
        [doc] = response.json()["data"]
        top = doc["matches"][0] if doc["matches"] else {}
        if doc["status"] != "searched" or top.get("uri") != query or top["score"] < 0.99:
            return f"search {query}: wrong answer {doc.get('error')} {top}"
        return None

    def index(client: httpx.Client, turn: int) -> str | None:
        new = [
            str(write_tone(tmp_path / f"tone{turn}-{i}.wav", 3.0, freq=200.0 + 37 * turn + 11 * i))
            for i in range(2)
        ]
        response = client.post(f"{sfx_server.url}/index", json={"data": [{"uri": u} for u in new]})
        if response.status_code != 200:
            return f"index HTTP {response.status_code}: {response.text[:200]}"
        docs = response.json()["data"]
        if [d["status"] for d in docs] != ["added", "added"]:
            return f"index: {[(d['status'], d['error']) for d in docs]}"
        added.extend(new)
        return None

    deadline = time.monotonic() + SECONDS
    threads = [
        threading.Thread(
            target=keep_sending, args=(deadline, searches, partial(search, me=me)), daemon=True
        )
        for me in range(SEARCHERS)
    ] + [threading.Thread(target=keep_sending, args=(deadline, indexes, index), daemon=True)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 2 * REQUEST_TIMEOUT)
    wall = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a client hung"

    with capsys.disabled():
        print(f"\n{SEARCHERS} searchers + 1 indexer for {wall:.0f} s on {sfx_server.url}")
        print("endpoint requests  failed    req/s   p50 ms   p99 ms")
        print(searches.row("/search", wall))
        print(indexes.row("/index", wall))
    assert searches.failures == [] and indexes.failures == []
    assert len(searches.seconds) >= SEARCHERS and len(added) >= 2

    # Everything acknowledged while under load is there.
    found = sfx_server.post("search", [{"uri": u} for u in added], limit=1)
    assert [d["matches"][0]["uri"] for d in found] == added
