"""End to end: managing the library (list, describe, delete, re-index) and search variants."""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Server, start_server

pytestmark = pytest.mark.slow

NAMES = ["bell_strikes.wav", "piano_phrase_10s.wav", "tom_fill.ogg", "speech_es.flac",
         "snare_hit_1p5s.wav", "harp_arpeggio.opus"]  # fmt: skip


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real clips the tests may change."""
    folder = tmp_path_factory.mktemp("library") / "sounds"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(ROOT / "toy-data" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def server(library: Path) -> Iterator[Server]:
    """A flow of its own (this module deletes clips), reading files under ``library``."""
    server = start_server(library.parent / "workspace", "--encoder", "sfx", timeout=300)
    yield server
    server.stop()


def paths(library: Path, *names: str) -> list[str]:
    return [str(library / name) for name in names]


def by_uri(docs: list[dict]) -> dict[str, dict]:
    return {d["uri"]: d for d in docs}


def without_ids(docs: list[dict]) -> list[dict]:
    """The documents without their ``id`` (a fresh random one in every response)."""
    return [{k: v for k, v in d.items() if k != "id"} for d in docs]


def cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args, "--url", server.url],
        capture_output=True, text=True, timeout=300,
        env=os.environ | {"COLUMNS": "300"},  # tables wide enough to keep each path on a line
    )  # fmt: skip


def test_add_list_describe_delete_and_reindex_a_changed_file(server, library):
    started = time.time()
    added = server.post("index", [{"uri": u} for u in paths(library, *NAMES)])
    assert [d["status"] for d in added] == ["added"] * len(NAMES)
    ids = [d["clip_id"] for d in added]

    listed = server.post("list", [])
    assert [d["clip_id"] for d in listed] == sorted(ids)
    assert all(d["status"] == "indexed" for d in listed)
    piano = by_uri(listed)[str(library / "piano_phrase_10s.wav")]
    assert piano["duration"] == pytest.approx(10.0, abs=0.05)
    assert piano["chunk_count"] == 4  # 4 s windows every 2 s: 0-4, 2-6, 4-8, 6-10
    assert started - 1 <= piano["indexed_at"] <= time.time() + 1
    page = server.post("list", [], offset=2, limit=3)
    assert [d["clip_id"] for d in page] == sorted(ids)[2:5]
    [stats] = server.post("stats", [])
    assert (stats["stats"]["clips"], stats["stats"]["dim"]) == (6, 512)
    assert stats["stats"]["chunks"] == sum(d["chunk_count"] for d in listed)
    assert stats["stats"]["encoder"].startswith("sfx/")

    tom, missing = server.post("clips", [{"uri": str(library / "tom_fill.ogg")}, {"clip_id": 999}])
    assert (tom["status"], tom["clip_id"]) == ("indexed", ids[2])
    assert missing["status"] == "error"
    assert missing["error"] == "clip_id=999: not in the index; list the library with /list"

    deleted = server.post(
        "delete", [{"clip_id": ids[2]}, {"uri": str(library / "speech_es.flac")}, {"clip_id": 999}]
    )
    assert [d["status"] for d in deleted] == ["deleted", "deleted", "error"]
    assert deleted[1]["clip_id"] == ids[3]
    assert {d["clip_id"] for d in server.post("list", [])} == set(ids) - {ids[2], ids[3]}
    [stats] = server.post("stats", [])
    assert stats["stats"]["clips"] == 4
    [found] = server.post("search", [{"uri": str(library / "tom_fill.ogg")}], limit=10)
    assert str(library / "tom_fill.ogg") not in {m["uri"] for m in found["matches"]}
    assert len(found["matches"]) == 4

    # The bell file changes on disk (now other audio, 6 s): its old chunks go, its id stays.
    bell = library / "bell_strikes.wav"
    shutil.copy(ROOT / "toy-data" / "rock_drum_beat.wav", bell)
    again = server.post("index", [{"uri": u} for u in paths(library, "bell_strikes.wav",
                                                            "piano_phrase_10s.wav")])  # fmt: skip
    assert [(d["status"], d["clip_id"]) for d in again] == [("replaced", ids[0]),
                                                            ("unchanged", ids[1])]  # fmt: skip
    [bell_now] = server.post("clips", [{"clip_id": ids[0]}])
    assert bell_now["duration"] == pytest.approx(6.4, abs=0.05) and bell_now["chunk_count"] == 3
    [drums] = server.post("search", [{"uri": str(ROOT / "toy-data" / "rock_drum_beat.wav")}],
                          limit=1)  # fmt: skip
    assert (drums["matches"][0]["clip_id"], drums["matches"][0]["score"]) == (
        ids[0],
        pytest.approx(1.0, abs=1e-3),
    )
    [bells] = server.post("search", [{"uri": str(ROOT / "toy-data" / "bell_strikes.wav")}])
    assert max(m["score"] for m in bells["matches"]) < 0.99  # nothing of the old bell is left
    assert server.post("stats", [])[0]["stats"]["clips"] == 4


def test_more_like_an_indexed_clip_leaves_it_out_and_ranks_like_its_file(server, library):
    server.post("index", [{"uri": u} for u in paths(library, *NAMES)])
    [harp] = server.post("clips", [{"uri": str(library / "harp_arpeggio.opus")}])
    [by_file] = server.post("search", [{"uri": harp["uri"]}], limit=6)
    [like] = server.post("search", [{"clip_id": harp["clip_id"]}], limit=5)
    assert like["status"] == "searched" and like["uri"] == harp["uri"]
    assert by_file["matches"][0]["clip_id"] == harp["clip_id"]
    assert [(m["clip_id"], m["score"]) for m in like["matches"]] == [
        (m["clip_id"], pytest.approx(m["score"], abs=1e-5)) for m in by_file["matches"][1:]
    ]
    [unknown] = server.post("search", [{"clip_id": 4242}])
    assert unknown["status"] == "error" and unknown["error"].startswith("clip_id=4242: not in")


def test_filters_limit_and_min_score_shape_the_matches(server, library):
    server.post("index", [{"uri": u} for u in paths(library, *NAMES)])
    query = [{"uri": str(ROOT / "toy-data" / "flute_melody.ogg")}]
    [everything] = server.post("search", query, limit=100)
    assert len(everything["matches"]) == 6
    durations = {d["uri"]: d["duration"] for d in server.post("list", [])}

    [short] = server.post("search", query, max_duration=5.0)
    assert {m["uri"] for m in short["matches"]} == {u for u, d in durations.items() if d <= 5}
    [long] = server.post("search", query, min_duration=5.0, max_duration=9.0)
    assert {m["uri"] for m in long["matches"]} == {u for u, d in durations.items() if 5 <= d <= 9}
    [wavs] = server.post("search", query, path_glob="*/sounds/*.wav")
    assert {Path(m["uri"]).suffix for m in wavs["matches"]} == {".wav"}
    assert len(wavs["matches"]) == 3
    scores = sorted((m["score"] for m in everything["matches"]), reverse=True)
    threshold = (scores[1] + scores[2]) / 2
    [best_two] = server.post("search", query, min_score=threshold)
    assert [m["uri"] for m in best_two["matches"]] == [m["uri"] for m in everything["matches"][:2]]
    [two] = server.post("search", query, limit=2)
    assert len(two["matches"]) == 2

    bad = httpx.post(
        f"{server.url}/search", json={"data": query, "parameters": {"min_duration": -3}}
    )
    assert bad.status_code == 422 and "min_duration=-3" in bad.json()["detail"]
    bad_page = httpx.post(f"{server.url}/list", json={"data": [], "parameters": {"offset": -1}})
    assert bad_page.status_code == 422
    assert bad_page.json()["detail"] == (
        "parameters.offset=-1: expected a whole number >= 0; try offset=0"
    )


def test_command_line_lists_deletes_shows_stats_and_skips_unchanged_files(
    server, library, tmp_path
):
    server.post("index", [{"uri": u} for u in paths(library, *NAMES)])
    # marimba.wav becomes a link to an identical copy (same size, time and bytes) outside the
    # allowed folders: only a client that compares fingerprints before sending calls it
    # unchanged; the service, sent it, would refuse to read it.
    marimba, elsewhere = library / "marimba.wav", tmp_path / "marimba.wav"
    shutil.copy2(ROOT / "toy-data" / "marimba_pattern.wav", elsewhere)
    shutil.copy2(elsewhere, marimba)
    indexed = cli(server, "index", str(marimba), "--json")
    assert json.loads(indexed.stdout)[0]["status"] == "added", indexed.stderr
    marimba.unlink()
    marimba.symlink_to(elsewhere)
    again = cli(server, "index", str(library), "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert {d["status"] for d in json.loads(again.stdout)} == {"unchanged"}

    listed = cli(server, "list", "--json", "--limit", "1000")
    clips = json.loads(listed.stdout)
    assert str(marimba) in {c["uri"] for c in clips}
    table = cli(server, "list")
    assert "marimba.wav" in table.stdout and "piano_phrase_10s.wav" in table.stdout
    stats = json.loads(cli(server, "stats", "--json").stdout)
    assert stats["clips"] == len(clips)

    gone = cli(server, "delete", str(marimba), "999999")
    assert gone.returncode == 1
    assert "marimba.wav" in gone.stdout and "clip_id=999999: not in the index" in gone.stdout
    assert json.loads(cli(server, "stats", "--json").stdout)["clips"] == len(clips) - 1


def test_a_restart_keeps_the_library_and_its_answers(server, library):
    server.post("index", [{"uri": u} for u in paths(library, *NAMES)])
    before = server.post("list", [], limit=1000)
    query = [{"uri": str(ROOT / "toy-data" / "violin_melody.m4a")}]
    [answer] = server.post("search", query, limit=10)
    server.stop()
    restarted = start_server(server.workspace, "--encoder", "sfx", timeout=300)
    try:
        assert without_ids(restarted.post("list", [], limit=1000)) == without_ids(before)
        [again] = restarted.post("search", query, limit=10)
        assert without_ids(again["matches"]) == without_ids(answer["matches"])
        assert [d["status"] for d in restarted.post("index", [{"uri": u} for u in
                                                              paths(library, *NAMES)])] == (
            ["unchanged"] * len(NAMES)
        )  # fmt: skip
    finally:
        restarted.stop()
