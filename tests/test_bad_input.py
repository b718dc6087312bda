"""The bad-input matrix, end to end against a real flow.

Every bad item goes to /index and /search in ONE request together with good clips: the bad
item gets its own specific error, every other item is indexed (or searched) normally, and the
clips indexed before are still found afterwards. Bad requests as a whole (malformed JSON,
unknown fields, a 100 MB body, a bad ``limit``) get a clear 4xx and leave the service working.
The server runs with an API key, which this file also checks.
"""

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from audiosearch.audio import SAMPLE_RATE
from audiosearch.paths import MAX_SECONDS
from executors.http_guard import MAX_DOCS
from tests.conftest import ROOT, TOY_DATA, Server, start_server, write_tone

pytestmark = pytest.mark.slow

API_KEY = "test-key-6f1c"
#: The server decodes at most this much of a file (--max-seconds), so the long files stay cheap.
CAP_SECONDS = 20.0
#: The clips indexed before the matrix; they must survive it.
BEFORE = [TOY_DATA / name for name in ("piano_phrase_10s.wav", "tom_fill.ogg", "speech_es.flac")]


def tone(seconds: float, rate: int, freq: float, channels: int = 1) -> np.ndarray:
    """A ``(frames, channels)`` float32 sine at 0.3 amplitude."""
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def write(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> str:
    sf.write(path, samples, rate, subtype=subtype)
    return str(path)


def write_two_hours(path: Path) -> str:
    """A quiet 2-hour 8 kHz FLAC, written a second at a time (a few seconds of work)."""
    second = tone(1.0, 8_000, 250.0) / 30  # 250 Hz: whole periods per second, so blocks join
    with sf.SoundFile(path, "w", 8_000, 1, subtype="PCM_16") as out:
        for _ in range(2 * 3600):
            out.write(second)
    return str(path)


def write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def with_bytes_set(path: Path, source: Path, offset: int, value: bytes) -> str:
    data = bytearray(source.read_bytes())
    data[offset : offset + len(value)] = value
    return write_bytes(path, bytes(data))


def first_half(path: Path, source: Path) -> str:
    data = source.read_bytes()
    return write_bytes(path, data[: len(data) // 2])


def first_bytes(path: Path, source: Path, size: int) -> str:
    return write_bytes(path, source.read_bytes()[:size])


def nan_or_inf(path: Path, bad: float) -> str:
    samples = tone(2.0, 16_000, 500.0)
    samples[12_345] = bad
    return write(path, samples, 16_000, "FLOAT")


def symlink(path: Path, target: Path) -> str:
    path.symlink_to(target)
    return str(path)


@dataclass(frozen=True)
class Case:
    """One row: how to make the item in the allowed folder, and what the service must say."""

    name: str
    make: Callable[[Path, Path], str]  # (allowed folder, a folder outside it) -> the uri to send
    error: str | None = None  # the item's error (a substring); None: accepted
    duration: float | None = None  # an accepted item's decoded length, s
    note: str | None = None  # what an accepted item says was left out (a substring)


CASES = [
    Case("corrupt header", lambda d, o: with_bytes_set(
        d / "corrupt.wav", Path(write_tone(o / "c.wav", 2.0)), 20, b"\xff" * 4),
        "corrupt.wav: its audio codec is unknown or damaged; re-export it"),
    Case("truncated mp3", lambda d, o: first_half(d / "cut.mp3", TOY_DATA / "brass_fanfare.mp3"),
         "cut.mp3: is truncated: its header declares 4.6 s but the audio stops after 2.3 s"),
    Case("truncated flac", lambda d, o: first_half(d / "cut.flac", TOY_DATA / "speech_es.flac"),
         "cut.flac: is damaged or truncated: decoding stopped after 1.9 s"),
    Case("truncated wav", lambda d, o: first_bytes(
        d / "cut.wav", TOY_DATA / "piano_phrase_10s.wav", 100_000),
         "cut.wav: is truncated: its header declares 10.00 s of audio but the file holds 2.27 s"),
    Case("truncated ogg", lambda d, o: first_bytes(
        d / "cut.ogg", TOY_DATA / "tom_fill.ogg", 15_000),
         "cut.ogg: is truncated: its Ogg stream stops without its end-of-stream page"),
    Case("truncated opus", lambda d, o: first_bytes(
        d / "cut.opus", TOY_DATA / "harp_arpeggio.opus", 40_000),
         "cut.opus: is truncated: its Ogg stream stops without its end-of-stream page"),
    Case("header claims 1 Hz", lambda d, o: with_bytes_set(
        d / "one_hz.wav", Path(write_tone(o / "one_hz.wav", 1.0)), 24, struct.pack("<I", 1)),
         "one_hz.wav: its header claims a sample rate of 1 Hz; audio files have 1,000-768,000 Hz"),
    Case("header claims 100 channels", lambda d, o: with_bytes_set(
        d / "hundred.wav", Path(write_tone(o / "hundred.wav", 1.0)), 22, struct.pack("<H", 100)),
         "hundred.wav: its header claims 100 channels; audio files have 1-64"),
    Case("text renamed .wav", lambda d, o: write_bytes(d / "notes.wav", b"just text\n" * 200),
         "notes.wav: not a readable audio file"),
    Case("zero bytes", lambda d, o: write_bytes(d / "empty.wav", b""),
         "empty.wav: is an empty file (0 bytes)"),
    Case("0.05 s", lambda d, o: write(d / "blip.wav", tone(0.05, 16_000, 700.0), 16_000),
         "blip.wav: holds 0.050 s of audio; at least 0.1 s is needed"),
    Case("pure silence", lambda d, o: write(d / "silence.wav", np.zeros((48_000, 1)), 16_000),
         "silence.wav: is silent"),
    Case("NaN samples", lambda d, o: nan_or_inf(d / "nan.wav", np.nan),
         "nan.wav: contains NaN or infinite samples"),
    Case("Inf samples", lambda d, o: nan_or_inf(d / "inf.wav", np.inf),
         "inf.wav: contains NaN or infinite samples"),
    Case("8 channels 96 kHz", lambda d, o: write(
        d / "eight.wav", tone(30.0, 96_000, 310.0, channels=8), 96_000), duration=CAP_SECONDS,
         note="only the first 20 s of 30 s were used"),
    Case("192 kHz", lambda d, o: write(d / "hi.wav", tone(3.0, 192_000, 620.0), 192_000),
         duration=3.0),
    Case("24-bit", lambda d, o: write(d / "pcm24.wav", tone(3.0, 44_100, 880.0), 44_100, "PCM_24"),
         duration=3.0),
    Case("32-bit float", lambda d, o: write(
        d / "float.wav", tone(3.0, 48_000, 1250.0), 48_000, "FLOAT"), duration=3.0),
    Case("2 hours", lambda d, o: write_two_hours(d / "two hours.flac"), duration=CAP_SECONDS,
         note="only the first 20 s of 7,200 s were used"),
    Case("spaces and unicode", lambda d, o: str(write_tone(d / "café 音 take 1.wav", 3.0,
         freq=1_900.0)), duration=3.0),
    Case("symlink inside the roots", lambda d, o: symlink(d / "bell.wav",
         TOY_DATA / "bell_strikes.wav"), duration=4.39),
    Case("missing file", lambda d, o: str(d / "missing.wav"), "missing.wav: no such file"),
    Case("directory", lambda d, o: str(d), "is a folder, not a file"),
    Case("named pipe", lambda d, o: (os.mkfifo(d / "pipe.wav"), str(d / "pipe.wav"))[1],
         "pipe.wav: not a regular file (a device, pipe or socket)"),
    Case("../ traversal", lambda d, o: f"{d}/../{o.name}/real.wav",
         "'..' steps are not accepted"),
    Case("symlink escaping the root", lambda d, o: symlink(d / "escape.wav", o / "real.wav"),
         "escape.wav: is a symbolic link that leads outside the allowed folders"),
    Case("file:///etc/passwd", lambda d, o: "file:///etc/passwd",
         "/etc/passwd: outside the allowed folders"),
    Case("http://127.0.0.1:1/x.wav", lambda d, o: "http://127.0.0.1:1/x.wav",
         "http://127.0.0.1:1/x.wav: http(s) downloads are off"),
]  # fmt: skip


def post(server: Server, endpoint: str, body: dict | bytes, key: str | None = API_KEY):
    """POST a JSON body (or raw bytes) with the API key; the raw response."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"} | ({"X-API-Key": key} if key else {})
    return httpx.post(f"{server.url}/{endpoint}", content=content, headers=headers, timeout=300)


def post_docs(server: Server, endpoint: str, docs: list[dict], **parameters) -> list[dict]:
    response = post(server, endpoint, {"data": docs, "parameters": parameters})
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """The allowed folder (the server's workspace parent) and a folder outside the roots."""
    outside = tmp_path_factory.mktemp("outside")
    write_tone(outside / "real.wav", 3.0, freq=2_300.0)
    return tmp_path_factory.mktemp("allowed"), outside


@pytest.fixture(scope="module")
def uris(folders) -> dict[str, str]:
    """Each case's uri, and a distinct good 1 s clip to send after it."""
    allowed, outside = folders
    made = {case.name: case.make(allowed, outside) for case in CASES}
    for i, case in enumerate(CASES):
        made[f"good after {case.name}"] = str(
            write_tone(allowed / f"good{i:02d}.wav", 1.0, freq=300.0 + 60 * i)
        )
    return made


@pytest.fixture(scope="module")
def server(folders) -> Iterator[Server]:
    allowed, _ = folders
    server = start_server(
        allowed / "workspace", "--encoder", "sfx", "--max-seconds", str(CAP_SECONDS),
        env={"AUDIOSEARCH_API_KEY": API_KEY},
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def before(server) -> list[dict]:
    docs = post_docs(server, "index", [{"uri": str(p)} for p in BEFORE])
    assert [d["status"] for d in docs] == ["added"] * len(BEFORE)
    return docs


def matrix(server: Server, uris: dict[str, str], endpoint: str) -> dict[str, dict]:
    """Every case followed by its good clip, in one request; the response docs by name."""
    names = [n for case in CASES for n in (case.name, f"good after {case.name}")]
    parameters = {"limit": 5} if endpoint == "search" else {}  # /index takes none
    docs = post_docs(server, endpoint, [{"uri": uris[n]} for n in names], **parameters)
    return dict(zip(names, docs, strict=True))


@pytest.fixture(scope="module")
def indexed(server, uris, before) -> dict[str, dict]:
    return matrix(server, uris, "index")


@pytest.fixture(scope="module")
def searched(server, uris, indexed) -> dict[str, dict]:
    return matrix(server, uris, "search")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_index_reports_each_bad_item_alone_and_indexes_the_rest(indexed, uris, case):
    doc, good = indexed[case.name], indexed[f"good after {case.name}"]
    if case.error:
        assert doc["status"] == "error" and case.error in doc["error"], doc
    else:
        assert doc["status"] == "added" and doc["error"] is None, doc
        assert doc["duration"] == pytest.approx(case.duration, abs=0.01)
        assert (case.note in doc["note"]) if case.note else doc["note"] is None, doc
    assert good["status"] == "added", good
    assert good["uri"] == uris[f"good after {case.name}"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_search_reports_each_bad_item_alone_and_answers_the_rest(searched, uris, case):
    doc, good = searched[case.name], searched[f"good after {case.name}"]
    if case.error:
        assert doc["status"] == "error" and case.error in doc["error"], doc
        assert doc["matches"] == []
    else:  # an accepted item was indexed above, so it finds itself first
        assert doc["status"] == "searched", doc
        assert (case.note in doc["note"]) if case.note else doc["note"] is None, doc
        assert doc["matches"][0]["uri"] == doc["uri"] and doc["matches"][0]["score"] > 0.99
    assert good["status"] == "searched"
    assert good["matches"][0]["uri"] == uris[f"good after {case.name}"]


def test_clips_indexed_before_the_matrix_are_all_still_found(server, before, searched):
    results = post_docs(server, "search", [{"uri": str(p)} for p in BEFORE], limit=1)
    assert [d["matches"][0]["uri"] for d in results] == [str(p) for p in BEFORE]


def test_a_request_of_more_than_100_documents_gets_an_answer_for_every_one(server, before):
    # Jina's HTTP route sent a request on in batches of 100 and answered with the first batch
    # back, silently dropping the rest; the gateway now sends each request on whole.
    ids = [d["clip_id"] for d in before]
    wanted = [ids[i % len(ids)] for i in range(MAX_DOCS)]
    described = post_docs(server, "clips", [{"clip_id": i} for i in wanted])
    assert [d["clip_id"] for d in described] == wanted
    searched = post_docs(server, "search", [{"clip_id": i} for i in wanted[:101]], limit=1)
    assert [d["status"] for d in searched] == ["searched"] * 101
    assert [d["clip_id"] for d in searched] == wanted[:101]


def hundred_mb_body() -> bytes:
    item = b'{"uri": "toy-data/bell_strikes.wav"},'
    return b'{"data": [' + item * (100 * 2**20 // len(item)) + b'{"uri": "x.wav"}]}'


def with_limit(limit: int) -> dict:
    return {"data": [{"uri": "toy-data/bell_strikes.wav"}], "parameters": {"limit": limit}}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b'{"data": [{"uri": "toy-data/bell_strikes.wav"}', 400,
         "request body is not valid JSON (Expecting ',' delimiter: line 1 column 47"),
        ({"data": [{"uri": "toy-data/bell_strikes.wav"}, {"urii": "x.wav"}]}, 422,
         "data[1].urii: unknown field; did you mean 'uri'?"),
        ({"data": [], "paramaters": {"limit": 3}}, 422,
         "request.paramaters: unknown field; did you mean 'parameters'?"),
        (hundred_mb_body, 413, "the limit is 32 MiB (max_body_mb in flow.yml)"),
        ({"data": [{"uri": "toy-data/bell_strikes.wav"}] * 257}, 422,
         "data holds 257 documents; at most 256 are taken per request (max_docs in flow.yml)"),
        ({"data": [{"uri": "toy-data/bell_strikes.wav", "tensor": [0.1] * 64000}]}, 422,
         "data[0].tensor: is filled by the service; leave it out"),
        ({"data": [{"uri": "x.wav"}], "header": {"target_executor": "indexer"}}, 422,
         "target_executor='indexer': not accepted; requests go through the whole flow"),
        (with_limit(-1), 422,
         "parameters.limit=-1: expected a whole number from 1 to 1000; try limit=10"),
        (with_limit(10**9), 422,
         "parameters.limit=1000000000: expected a whole number from 1 to 1000; try limit=10"),
    ],
    ids=["malformed JSON", "unknown field", "unknown top-level field", "100 MB body",
         "257 documents", "a waveform sent in", "a target executor", "limit -1", "limit 10^9"],
)  # fmt: skip
def test_bad_requests_get_a_clear_4xx_and_the_service_keeps_working(
    server, before, body, status, detail
):
    if callable(body):
        body = body()
    response = post(server, "search", body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    [doc] = post_docs(server, "search", [{"uri": str(BEFORE[0])}], limit=1)
    assert doc["matches"][0]["uri"] == str(BEFORE[0])


def test_every_route_but_health_and_docs_needs_the_api_key(server, before):
    for path in ("search", "index"):
        missing = post(server, path, {"data": []}, key=None)
        assert missing.status_code == 401
        assert "needs an API key: send it in the X-API-Key header" in missing.json()["detail"]
        wrong = post(server, path, {"data": []}, key="guess")
        assert wrong.status_code == 401 and "does not hold" in wrong.json()["detail"]
    assert httpx.get(f"{server.url}/status").status_code == 401
    for open_path in ("/", "/docs", "/openapi.json", "/static-docs/swagger-ui.css"):
        assert httpx.get(server.url + open_path).status_code == 200, open_path
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKey"]["name"] == "X-API-Key"


def test_the_web_page_loads_without_the_key_and_its_audio_accepts_it_as_a_cookie(server, before):
    assert httpx.get(f"{server.url}/ui/").status_code == 200
    [clip] = post_docs(server, "index", [{"uri": str(BEFORE[0])}])
    audio = f"{server.url}/audio/{clip['clip_id']}"
    assert httpx.get(audio).status_code == 401
    assert httpx.get(audio, cookies={"audiosearch_api_key": "guess"}).status_code == 401
    played = httpx.get(
        audio, cookies={"audiosearch_api_key": API_KEY}, headers={"Range": "bytes=0-99"}
    )
    assert played.status_code == 206 and len(played.content) == 100


def test_the_cli_sends_the_api_key_from_its_environment(server, before):
    def search(env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "app.py"), "search", str(BEFORE[1]), "--url", server.url,
             "--json", "--limit", "2"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip

    without = {k: v for k, v in os.environ.items() if k != "AUDIOSEARCH_API_KEY"}
    refused = search(without)
    assert refused.returncode != 0 and "needs an API key" in refused.stderr
    answered = search(without | {"AUDIOSEARCH_API_KEY": API_KEY})
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["matches"][0]["uri"] == str(BEFORE[1])


PEAK_ALLOCATED = """
import sys, tracemalloc
from audiosearch.audio import load_audio
load_audio(sys.argv[3])  # warm up: libraries loaded, first buffers allocated
cap = None if sys.argv[2] == "none" else float(sys.argv[2])
tracemalloc.start()  # numpy reports its arrays' memory to tracemalloc
audio = load_audio(sys.argv[1], max_seconds=cap)
print(audio.size, tracemalloc.get_traced_memory()[1])
"""


def peak_allocated(path: str, cap: float | None) -> tuple[int, int]:
    """Decode ``path`` in a fresh process: (samples out, peak bytes allocated meanwhile)."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_ALLOCATED, path, str(cap).lower(), str(BEFORE[0])],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    samples, peak = result.stdout.split()
    return int(samples), int(peak)


@pytest.mark.parametrize("cap", [MAX_SECONDS, None])
def test_decoding_holds_the_16k_mono_output_once_and_little_else(uris, cap):
    # The 2-hour 8 kHz file, at the default cap and whole (as the encoder decodes a file longer
    # than max_carried_seconds): the 16 kHz audio is held once; gathering blocks and joining
    # them, as before, held it twice.
    samples, peak = peak_allocated(uris["2 hours"], cap)
    assert samples == (cap or 2 * 3600) * SAMPLE_RATE
    assert peak < 1.05 * samples * 4 + 2**20, f"{peak / 2**20:.0f} MiB for {samples / 2**18:.0f}"


def test_decoding_never_holds_a_file_at_its_own_rate_and_channels(uris):
    # 30 s of 8 channels at 96 kHz: 88 MiB as float32 at its own rate, 1.8 MiB out.
    samples, peak = peak_allocated(uris["8 channels 96 kHz"], None)
    assert samples == 30 * SAMPLE_RATE
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB"
