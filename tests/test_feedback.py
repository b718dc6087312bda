"""Refine by example, end to end: a region of the query, and judged results (like/unlike)."""

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from audiosearch.audio import SAMPLE_RATE, load_audio
from tests.conftest import ROOT, TOY_DATA, Server

pytestmark = pytest.mark.slow

PIANO = TOY_DATA / "piano_phrase_10s.wav"  # 10 s
DRUMS = TOY_DATA / "rock_drum_beat.wav"  # 6.44 s


@pytest.fixture(scope="module")
def medley(tmp_path_factory, sfx_server: Server) -> Iterator[Path]:
    """The piano phrase, then the drum beat: 0-10 s piano, 10-16.44 s drums. Tests here
    index it; it leaves the shared index with them (it holds copies of two toy clips)."""
    path = tmp_path_factory.mktemp("medley") / "piano_then_drums.wav"
    sf.write(path, np.concatenate([load_audio(PIANO), load_audio(DRUMS)]), SAMPLE_RATE)
    yield path
    sfx_server.post("delete", [{"uri": str(path)}])


def first_uris(doc: dict, n: int = 1) -> list[str]:
    assert doc["status"] == "searched", doc
    return [Path(m["uri"]).name for m in doc["matches"][:n]]


def test_a_region_of_the_query_is_what_is_searched(sfx_server: Server, toy_index, medley):
    data = base64.b64encode(medley.read_bytes()).decode()
    whole, piano, drums, short = sfx_server.post(
        "search",
        [{"uri": str(medley)}, {"uri": str(medley), "end": 10.0},
         {"audio_base64": data, "start": 10.0}, {"audio_base64": data, "start": 11, "end": 12.5}],
        limit=3, query_expansion=False,
    )  # fmt: skip
    assert first_uris(piano) == [PIANO.name] and first_uris(drums) == [DRUMS.name]
    assert first_uris(short) == [DRUMS.name]  # 1.5 s, looped to a window, as short clips are
    assert piano["duration"] == pytest.approx(10.0)
    assert drums["duration"] == pytest.approx(6.44, abs=0.01)
    # Match times stay in the query file's time, inside the region searched.
    for doc, lo, hi in ((piano, 0, 10), (drums, 10, 16.44), (short, 11, 12.5)):
        for m in doc["matches"]:
            assert lo - 1e-6 <= m["query_start"] < m["query_end"] <= hi + 1e-6, (lo, hi, m)
    # The region's chunks are exactly those of the cut-out part, shifted by its start.
    cut = medley.parent / "drums_part.wav"
    sf.write(cut, load_audio(medley)[10 * SAMPLE_RATE :], SAMPLE_RATE)
    [alone] = sfx_server.post("search", [{"uri": str(cut)}], limit=3, query_expansion=False)
    assert [m["score"] for m in drums["matches"]] == pytest.approx(
        [m["score"] for m in alone["matches"]], abs=1e-5
    )
    assert [m["query_start"] - 10 for m in drums["matches"]] == pytest.approx(
        [m["query_start"] for m in alone["matches"]]
    )
    assert whole["duration"] == pytest.approx(16.44, abs=0.01)


def test_a_region_of_an_indexed_clip_searches_with_its_stored_windows(
    sfx_server: Server, toy_index, medley
):
    [clip] = sfx_server.post("index", [{"uri": str(medley)}])
    [drums] = sfx_server.post("search", [{"clip_id": clip["clip_id"], "start": 10}], limit=2)
    assert first_uris(drums) == [DRUMS.name]
    [piano] = sfx_server.post("search", [{"clip_id": clip["clip_id"], "end": 9}], limit=2)
    assert first_uris(piano) == [PIANO.name]
    assert all(m["query_end"] <= 10 for m in piano["matches"])


def test_bad_regions_get_their_own_errors_and_the_rest_is_answered(
    sfx_server: Server, toy_index, medley
):
    [clip] = sfx_server.post("index", [{"uri": str(medley)}])
    good = {"uri": str(TOY_DATA / "bell_strikes.wav")}
    docs = sfx_server.post(
        "search",
        [{"uri": str(medley), "start": 5, "end": 2}, good,
         {"uri": str(medley), "start": 20}, {"uri": str(medley), "start": 3, "end": 30},
         {"uri": str(medley), "start": -1}, {"clip_id": clip["clip_id"], "start": 17}],
        limit=2,
    )  # fmt: skip
    errors = [d.get("error") or "" for d in docs]
    assert "start=5, end=2: the region ends before it starts; swap them" in errors[0]
    assert first_uris(docs[1]) == ["bell_strikes.wav"]
    assert "start=20 s is past the end of the clip (16.44 s)" in errors[2]
    assert "end=30 s is past the end of the clip as read (16.44 s)" in errors[3]
    assert "start=-1.0: expected seconds from the start of the clip" in errors[4]
    assert "is not inside the clip (0-16.44 s)" in errors[5]
    [indexed] = sfx_server.post("index", [{"uri": str(medley), "start": 1}])
    assert "/index stores whole files" in indexed["error"]


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args], input=stdin, capture_output=True,
        text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},  # a table row a line
    )  # fmt: skip


def test_the_command_line_searches_a_region(sfx_server: Server, toy_index, medley):
    result = cli("search", str(medley), "--from", "10", "--to", "16", "--json", "--limit", "2",
                 "--url", sfx_server.url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)  # the medley itself, once indexed, holds the same drums
    assert DRUMS.name in first_uris(doc, 2) and PIANO.name not in first_uris(doc, 2)
    assert all(m["query_start"] >= 10 for m in doc["matches"])


# --- judgments ---------------------------------------------------------------------------------

DRUMS_FAMILY = ["rock_drum_beat.wav", "tom_fill.ogg", "jazz_brush_groove.wav",
                "snare_hit_1p5s.wav", "latin_percussion.mp3"]  # fmt: skip
SPEECH_FAMILY = ["speech_de_male.mp3", "speech_es.flac", "speech_fr_female.ogg",
                 "speech_it_counting.wav"]  # fmt: skip


def ranks(doc: dict) -> dict[str, int]:
    assert doc["status"] == "searched", doc
    return {Path(m["uri"]).name: r for r, m in enumerate(doc["matches"])}


def ids_of(toy_index: list[dict]) -> dict[str, int]:
    return {Path(d["uri"]).name: d["clip_id"] for d in toy_index}


def test_a_liked_clip_comes_first_and_its_neighbours_rise(sfx_server: Server, toy_index):
    ids, query = ids_of(toy_index), [{"uri": str(PIANO)}]
    [before] = sfx_server.post("search", query, limit=40)
    [after] = sfx_server.post("search", query, limit=40, like=[ids["tr808_beat.wav"]])
    assert after["matches"][0]["clip_id"] == ids["tr808_beat.wav"]
    assert after["matches"][0]["judged"] == "like"
    assert [m["judged"] for m in after["matches"][1:]] == [None] * (len(after["matches"]) - 1)
    old, new = ranks(before), ranks(after)
    assert all(new[name] < old[name] for name in DRUMS_FAMILY), (old, new)
    assert sum(new[name] <= 6 for name in DRUMS_FAMILY) >= 3, new


def test_a_disliked_clip_leaves_and_its_neighbours_fall(sfx_server: Server, toy_index):
    ids, query = ids_of(toy_index), [{"uri": str(TOY_DATA / "speech_en_us_male.wav")}]
    [before] = sfx_server.post("search", query, limit=40)
    [after] = sfx_server.post("search", query, limit=40, unlike=[ids["speech_en_gb_female.wav"]])
    old, new = ranks(before), ranks(after)
    assert "speech_en_gb_female.wav" in old and "speech_en_gb_female.wav" not in new
    assert all(new[name] > old[name] for name in SPEECH_FAMILY), (old, new)


def test_without_judgments_the_ranking_is_todays(sfx_server: Server, toy_index):
    query = [{"uri": str(PIANO)}]
    [plain] = sfx_server.post("search", query, limit=10)
    [empty] = sfx_server.post("search", query, limit=10, like=[], unlike=[])

    def without_ids(doc: dict) -> list[dict]:
        return [{k: v for k, v in m.items() if k != "id"} for m in doc["matches"]]

    assert without_ids(empty) == without_ids(plain)


def test_liked_clips_alone_are_more_like_these(sfx_server: Server, toy_index):
    ids = ids_of(toy_index)
    liked = [ids["tr808_beat.wav"], ids["rock_drum_beat.wav"]]
    toy = "*/toy-data/*"  # the medley of the tests above holds drums too
    [doc] = sfx_server.post("search", [], limit=3, like=liked, path_glob=toy)
    assert [m["clip_id"] for m in doc["matches"][:2]] == sorted(liked, key=liked.index) or set(
        m["clip_id"] for m in doc["matches"][:2]
    ) == set(liked)
    assert [m["judged"] for m in doc["matches"]] == ["like", "like", None, None, None]
    assert {Path(m["uri"]).name for m in doc["matches"][2:]} <= set(DRUMS_FAMILY)
    # Audio the user likes (not indexed) is a liked example too.
    data = base64.b64encode((TOY_DATA / "tr808_beat.wav").read_bytes()).decode()
    example, found = sfx_server.post(
        "search", [{"audio_base64": data, "liked": True}], limit=3, path_glob=toy
    )
    assert example["status"] == "example" and example["matches"] == []
    assert Path(found["matches"][0]["uri"]).name == "tr808_beat.wav"
    assert {Path(m["uri"]).name for m in found["matches"][1:]} <= set(DRUMS_FAMILY)


def test_bad_judgments_get_clear_errors(sfx_server: Server, toy_index):
    ids, query = ids_of(toy_index), [{"uri": str(PIANO)}]
    tr808 = ids["tr808_beat.wav"]
    for parameters, error in (
        ({"like": [999_999]}, "like: clip_id=999999 is not in the index"),
        ({"like": [tr808], "unlike": [tr808]}, f"clip_id={tr808}: both liked and disliked"),
        ({"unlike": list(range(1, 102))}, "101 judged clips: a search takes at most 100"),
    ):
        [doc, other] = sfx_server.post("search", [*query, {"uri": str(DRUMS)}], limit=3,
                                       **parameters)  # fmt: skip
        assert doc["status"] == other["status"] == "error"
        assert error in doc["error"], doc["error"]
    response = httpx.post(
        f"{sfx_server.url}/search", json={"data": query, "parameters": {"like": "7"}}
    )
    assert response.status_code == 422
    assert "parameters.like='7': expected a list of clip ids" in response.json()["detail"]
    [plain] = sfx_server.post("search", query, limit=2)  # and the service answers on
    assert PIANO.name in first_uris(plain, 2)


def test_the_command_line_judges_and_refines(sfx_server: Server, toy_index):
    ids = ids_of(toy_index)
    liked = cli("search", str(PIANO), "--like", str(ids["tr808_beat.wav"]), "--json",
                "--limit", "3", "--url", sfx_server.url)  # fmt: skip
    assert liked.returncode == 0, liked.stderr
    assert json.loads(liked.stdout)["matches"][0]["judged"] == "like"
    # --refine: a table, marks by rank, the table again with the judgment applied; Enter ends.
    refined = cli("search", str(PIANO), "--refine", "--limit", "5", "--url", sfx_server.url,
                  stdin="+9\n+4 -2\n\n")  # fmt: skip
    assert refined.returncode == 0, refined.stderr
    assert "the table shows ranks 1 to 5" in refined.stderr  # +9: asked again
    tables = refined.stdout.split("Most similar to")[1:]
    assert len(tables) == 2
    first_rows = [line for line in tables[0].splitlines() if line.startswith("│")]
    fourth_id = first_rows[3].split("│")[2].strip()  # rows of ranks 1..5: rank, id, ...
    second_rows = [line for line in tables[1].splitlines() if line.startswith("│")]
    assert second_rows[0].split("│")[1].strip() == "1 +"  # the liked clip, first and marked
    assert second_rows[0].split("│")[2].strip() == fourth_id


def test_an_upload_takes_a_region_and_judgments(sfx_server: Server, toy_index, medley):
    ids = ids_of(toy_index)
    response = httpx.post(
        f"{sfx_server.url}/upload/search", files={"file": ("medley.wav", medley.read_bytes())},
        data={"start": "10", "limit": "3", "like": str(ids["tr808_beat.wav"])}, timeout=120,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    [doc] = response.json()["data"]
    assert doc["matches"][0]["clip_id"] == ids["tr808_beat.wav"]
    assert doc["matches"][0]["judged"] == "like"
    assert all(m["query_start"] >= 10 for m in doc["matches"])
    refused = httpx.post(
        f"{sfx_server.url}/upload/search", files={"file": ("medley.wav", medley.read_bytes())},
        data={"like": "7;x"}, timeout=120,
    )  # fmt: skip
    assert refused.status_code == 422
    assert "like='7;x': expected clip ids separated by commas" in refused.json()["detail"]
