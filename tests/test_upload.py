"""Search by uploaded audio (multipart and base64), audio streaming with ranges, API examples."""

import base64

import httpx
import pytest
import soundfile as sf

from executors.http_gateway import RangeNotSatisfiable, byte_range
from tests.conftest import Server, toy_clips

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(toy_index: list[dict]) -> dict[str, dict]:
    """toy-data/ indexed (once per session, shared): file name -> its doc."""
    assert all(d["status"] != "error" for d in toy_index), toy_index
    return {d["uri"].rsplit("/", 1)[-1]: d for d in toy_index}


def upload(server: Server, name: str, content: bytes, **form: object) -> httpx.Response:
    """POST ``content`` as the multipart file ``name`` to /upload/search."""
    return httpx.post(
        f"{server.url}/upload/search",
        files={"file": (name, content)},
        data={k: str(v) for k, v in form.items()},
        timeout=300,
    )


@pytest.mark.parametrize("name", ["piano_phrase_10s.wav", "violin_melody.m4a", "tom_fill.ogg"])
def test_multipart_and_base64_uploads_rank_like_search_by_path(sfx_server, indexed, name):
    query = next(p for p in toy_clips() if p.name == name)
    [by_path] = sfx_server.post("search", [{"uri": str(query)}], limit=8)
    [by_base64] = sfx_server.post(
        "search", [{"audio_base64": base64.b64encode(query.read_bytes()).decode()}], limit=8
    )
    response = upload(sfx_server, name, query.read_bytes(), limit=8)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"data", "parameters", "header"}  # /search's response shape
    [by_upload] = response.json()["data"]

    ranking = [(m["uri"], m["start"], m["end"]) for m in by_path["matches"]]
    assert len(ranking) == 8 and by_path["matches"][0]["uri"] == str(query)
    for doc in (by_base64, by_upload):
        assert doc["status"] == "searched", doc
        assert [(m["uri"], m["start"], m["end"]) for m in doc["matches"]] == ranking
        for got, want in zip(doc["matches"], by_path["matches"], strict=True):
            assert got["score"] == pytest.approx(want["score"], abs=1e-5)
        assert doc["duration"] == pytest.approx(by_path["duration"])
        assert doc.get("audio_base64") is None  # the upload is never echoed back
    assert by_upload["uri"] == name  # the upload's file name names the query


def test_upload_limit_is_checked_as_search_checks_it(sfx_server, indexed):
    clip = next(p for p in toy_clips() if p.name == "bell_strikes.wav").read_bytes()
    [three] = upload(sfx_server, "bell.wav", clip, limit=3).json()["data"]
    assert len(three["matches"]) == 3
    refused = upload(sfx_server, "bell.wav", clip, limit=-1)
    assert refused.status_code == 422
    assert "limit=-1: expected a whole number from 1 to 1000" in refused.json()["detail"]


def test_upload_takes_the_ranking_options_of_search(sfx_server, indexed, tmp_path):
    # A trimmed copy of an indexed clip: a query of its own (expansion changes its answers)
    # that the duplicate check finds to be a copy of the original.
    original = next(p for p in toy_clips() if p.name == "piano_phrase_10s.wav")
    audio, rate = sf.read(original)
    query = tmp_path / "piano_trimmed.wav"
    sf.write(query, audio[int(1.234 * rate) : -rate // 2], rate)  # no window aligns with one of it
    options = [
        {"strategy": "votes"},
        {"query_expansion": False},
        {"strategy": "mean_chunk", "query_expansion": False},
        {"duplicates": True},
    ]
    answers = []
    for form in options:
        [by_path] = sfx_server.post("search", [{"uri": str(query)}], limit=6, **form)
        response = upload(sfx_server, query.name, query.read_bytes(), limit=6,
                          **{k: str(v).lower() for k, v in form.items()})  # fmt: skip
        [by_upload] = response.json()["data"]
        assert by_upload["status"] == "searched", by_upload
        assert [m["uri"] for m in by_upload["matches"]] == [m["uri"] for m in by_path["matches"]]
        assert [m["score"] for m in by_upload["matches"]] == pytest.approx(
            [m["score"] for m in by_path["matches"]], abs=1e-5
        )
        answers.append([(m["uri"], m["score"]) for m in by_path["matches"]])
    [(copy_of, correlation)] = answers[-1]  # duplicates: only the original is a copy
    assert copy_of == str(original) and correlation > 0.95
    [plain] = sfx_server.post("search", [{"uri": str(query)}], limit=6)
    answers.append([(m["uri"], m["score"]) for m in plain["matches"]])
    for i, a in enumerate(answers):  # each option changed the answer
        assert all(a != b for b in answers[i + 1 :]), options[i]
    refused = upload(sfx_server, query.name, query.read_bytes(), strategy="best")
    assert refused.status_code == 422  # as /search refuses it: the same parameter checks
    assert "strategy='best': expected one of" in refused.json()["detail"]


def test_upload_of_something_that_is_not_audio_says_so(sfx_server, indexed):
    response = upload(sfx_server, "notes.txt", b"shopping list\n" * 50)
    assert response.status_code == 200, response.text
    [doc] = response.json()["data"]
    assert doc["status"] == "error"
    assert "uploaded audio 'notes.txt'" in doc["error"]
    assert "not a readable audio file" in doc["error"]


def test_upload_without_a_file_is_refused_naming_the_field(sfx_server):
    response = httpx.post(f"{sfx_server.url}/upload/search", data={"limit": "5"}, timeout=60)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


def test_audio_endpoint_streams_indexed_files_with_ranges(sfx_server, indexed):
    clip = next(p for p in toy_clips() if p.name == "violin_melody.m4a")
    content = clip.read_bytes()
    url = f"{sfx_server.url}/audio/{indexed[clip.name]['clip_id']}"

    whole = httpx.get(url, timeout=60)
    assert whole.status_code == 200, whole.text
    assert whole.content == content
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/mp4"

    part = httpx.get(url, headers={"Range": "bytes=100-1123"}, timeout=60)
    assert part.status_code == 206
    assert part.content == content[100:1124]
    assert part.headers["content-range"] == f"bytes 100-1123/{len(content)}"
    assert part.headers["content-length"] == "1024"

    tail = httpx.get(url, headers={"Range": "bytes=-10"}, timeout=60)
    assert (tail.status_code, tail.content) == (206, content[-10:])
    open_ended = httpx.get(url, headers={"Range": f"bytes={len(content) - 5}-"}, timeout=60)
    assert (open_ended.status_code, open_ended.content) == (206, content[-5:])

    past_end = httpx.get(url, headers={"Range": f"bytes={len(content)}-"}, timeout=60)
    assert past_end.status_code == 416
    assert past_end.headers["content-range"] == f"bytes */{len(content)}"


def test_audio_endpoint_serves_only_indexed_clips(sfx_server, indexed):
    missing = httpx.get(f"{sfx_server.url}/audio/987654", timeout=60)
    assert missing.status_code == 404
    assert "clip_id=987654" in missing.json()["detail"]
    for path in ("/audio/..%2F..%2Fetc%2Fpasswd", "/audio/etc/passwd", "/audio/-1.5"):
        assert httpx.get(f"{sfx_server.url}{path}", timeout=60).status_code in (404, 422)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-0", 100, (0, 0)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=10-1000", 100, (10, 99)),  # clipped to the file
        ("bytes=-30", 100, (70, 99)),
        ("bytes=-300", 100, (0, 99)),
        ("bytes=5-3", 100, None),  # invalid: ignored, the whole file is sent
        ("bytes=0-1,5-9", 100, None),  # several ranges: the whole file
        ("items=0-5", 100, None),
    ],
)
def test_byte_range(header, size, expected):
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100)])
def test_byte_range_past_the_end_is_not_satisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, size)


def test_openapi_request_examples_work_as_they_are(sfx_server, indexed):
    paths = httpx.get(f"{sfx_server.url}/openapi.json", timeout=60).json()["paths"]
    for path in ("/index", "/search"):
        examples = paths[path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        assert examples, path
        for name, example in examples.items():
            response = httpx.post(f"{sfx_server.url}{path}", json=example["value"], timeout=300)
            assert response.status_code == 200, (path, name, response.text)
            docs = response.json()["data"]
            assert docs and all(d["status"] != "error" for d in docs), (path, name, docs)
            if path == "/search":
                assert docs[0]["matches"], (name, docs)
