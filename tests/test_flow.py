"""End to end: the real flow in its own processes, over real sockets."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, start_server, toy_clips, write_tone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(toy_index: list[dict]) -> list[dict]:
    """toy-data/ indexed through POST /index (first, for the whole session)."""
    return toy_index


def test_indexing_toy_data_reports_every_clip_added(indexed):
    assert len(indexed) >= 20
    # "unchanged" where another module indexed the same clip into the shared server first.
    assert {d["status"] for d in indexed} <= {"added", "unchanged"}, indexed
    assert len({d["clip_id"] for d in indexed}) == len(indexed)
    assert all(d["duration"] > 1.4 for d in indexed)
    assert all(d.get("tensor") is None and not d.get("chunks") for d in indexed)


def test_every_toy_clip_finds_itself_first_with_segment_times(sfx_server, indexed):
    clips = toy_clips()
    results = sfx_server.post("search", [{"uri": str(p)} for p in clips], limit=5)
    for path, doc in zip(clips, results, strict=True):
        assert doc["status"] == "searched", doc
        assert len(doc["matches"]) == 5
        top = doc["matches"][0]
        assert top["uri"] == str(path)
        assert top["score"] >= 0.99
        scores = [m["score"] for m in doc["matches"]]
        assert scores == sorted(scores, reverse=True)
        assert len({m["uri"] for m in doc["matches"]}) == 5  # one row per clip
        for m in doc["matches"]:
            assert 0 <= m["start"] < m["end"] <= m["start"] + 4.0 + 1e-6
            assert 0 <= m["query_start"] < m["query_end"] <= doc["duration"] + 1e-3
        # Searching with the clip itself, the best pair is a chunk against the same chunk.
        assert (top["start"], top["end"]) == (top["query_start"], top["query_end"])


def test_limit_parameter_bounds_the_matches(sfx_server, indexed):
    [doc] = sfx_server.post("search", [{"uri": str(toy_clips()[0])}], limit=3)
    assert len(doc["matches"]) == 3


def test_bad_items_fail_alone_and_the_rest_is_indexed(sfx_server, indexed, tmp_path):
    good = write_tone(tmp_path / "good tone é.wav", 5.0)
    text = tmp_path / "readme.wav"
    text.write_text("not audio at all\n" * 100)
    docs = sfx_server.post(
        "index",
        [{"uri": str(good)}, {"uri": str(tmp_path / "missing.wav")}, {"uri": str(text)},
         {"uri": str(tmp_path)}, {"uri": ""}],
    )  # fmt: skip
    assert [d["status"] for d in docs] == ["added", "error", "error", "error", "error"]
    assert "missing.wav: no such file" in docs[1]["error"]
    assert "readme.wav: not a readable audio file" in docs[2]["error"]
    assert "is a folder, not a file" in docs[3]["error"]
    assert "uri is empty" in docs[4]["error"]
    [found] = sfx_server.post("search", [{"uri": str(good)}], limit=1)
    assert found["matches"][0]["uri"] == str(good)


def test_jina_client_post_searches(sfx_server, indexed):
    from docarray import DocList
    from jina import Client

    from executors.docs import AudioDoc

    client = Client(host="127.0.0.1", port=sfx_server.port, protocol="http")
    query = toy_clips()[3]
    [doc] = client.post(
        "/search",
        inputs=DocList[AudioDoc]([AudioDoc(uri=str(query))]),
        parameters={"limit": 4},
        return_type=DocList[AudioDoc],
    )
    assert len(doc.matches) == 4
    assert doc.matches[0].uri == str(query) and doc.matches[0].score >= 0.99


def test_swagger_ui_is_served_without_a_cdn(sfx_server):
    page = httpx.get(f"{sfx_server.url}/docs").text
    assert "/static-docs/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "https://" not in page
    bundle = httpx.get(f"{sfx_server.url}/static-docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000
    paths = httpx.get(f"{sfx_server.url}/openapi.json").json()["paths"]
    assert {"/index", "/search"} <= set(paths)


def test_gateway_listens_on_loopback_only(sfx_server):
    listening = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == sfx_server.port:
            listening.add(address)
    assert listening == {"0100007F"}  # 127.0.0.1, not 0.0.0.0


def test_restart_keeps_the_index_and_reindexing_adds_nothing(tmp_path):
    workspace = tmp_path / "workspace"
    clips = toy_clips()[:4]
    first = start_server(workspace, "--encoder", "sfx")
    try:
        added = first.post("index", [{"uri": str(p)} for p in clips])
        assert [d["status"] for d in added] == ["added"] * 4
    finally:
        first.stop()
    second = start_server(workspace, "--encoder", "sfx")
    try:
        again = second.post("index", [{"uri": str(p)} for p in clips])
        assert [d["status"] for d in again] == ["unchanged"] * 4
        assert [d["clip_id"] for d in again] == [d["clip_id"] for d in added]
        [doc] = second.post("search", [{"uri": str(clips[2])}], limit=10)
        assert doc["matches"][0]["uri"] == str(clips[2])
        assert len(doc["matches"]) == 4  # four clips, none stored twice
    finally:
        second.stop()


def test_vggish_without_weights_fails_at_start_naming_the_download_command(tmp_path):
    empty = tmp_path / "models"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "serve", "--encoder", "vggish",
         "--models-dir", str(empty), "--workspace", str(tmp_path / "ws"), "--port", "0"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "app.py models download" in output


def test_search_with_base64_audio_ranks_like_search_by_path(sfx_server, indexed):
    import base64

    query = toy_clips()[5]
    [by_path] = sfx_server.post("search", [{"uri": str(query)}], limit=5)
    encoded = base64.b64encode(query.read_bytes()).decode()
    [by_bytes, broken] = sfx_server.post(
        "search", [{"audio_base64": encoded, "uri": query.name}, {"audio_base64": "%%%"}], limit=5
    )
    assert [m["uri"] for m in by_bytes["matches"]] == [m["uri"] for m in by_path["matches"]]
    assert by_bytes["matches"][0]["score"] >= 0.99
    assert by_bytes.get("audio_base64") is None  # the upload is not echoed back
    assert broken["status"] == "error" and "not valid base64" in broken["error"]
    [refused] = sfx_server.post("index", [{"audio_base64": encoded}])
    assert refused["status"] == "error" and "send uri, not audio_base64" in refused["error"]


def test_auto_encoder_serves_vggish_from_a_checkpoint_named_by_its_checksum(
    generated_vggish, tmp_path
):
    clips = toy_clips()[:3]
    server = start_server(
        tmp_path / "workspace", "--encoder", "auto", "--models-dir", str(generated_vggish.dir)
    )
    try:
        added = server.post("index", [{"uri": str(p)} for p in clips])
        assert [d["status"] for d in added] == ["added"] * 3
        [doc] = server.post("search", [{"uri": str(clips[1])}], limit=3)
    finally:
        server.stop()
    assert doc["matches"][0]["uri"] == str(clips[1]) and doc["matches"][0]["score"] >= 0.99
    log = " ".join(server.log.read_text().split())
    assert f"VGGish weights {generated_vggish.weights_file} found" in log
