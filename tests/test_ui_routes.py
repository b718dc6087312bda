"""The gateway's routes for the web page: streamed uploads and their limit, /limits, /peaks, /map;
and the pure parts behind them (outlines, the library map's projection, the index's clip means).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI, File, UploadFile
from fastapi.testclient import TestClient

from audiosearch.errors import InvalidInputError
from audiosearch.index import ChunkIndex, ClipToAdd
from audiosearch.library_map import project
from audiosearch.peaks import peaks
from executors.http_guard import GuardSettings, HTTPGuard
from tests.conftest import Server


class NoHealthReport:
    """FlowHealth's stand-in: no report yet, so the guard lets flow routes through."""

    last = None


def guarded_upload_app(max_file_bytes: int) -> TestClient:
    """An /upload/search route that counts what it received, behind the guard."""
    app = FastAPI()

    @app.post("/upload/search")
    async def upload(file: Annotated[UploadFile, File()]) -> dict[str, int]:
        return {"bytes": len(await file.read())}

    settings = GuardSettings(max_body_bytes=1 << 10, max_file_bytes=max_file_bytes)
    app.add_middleware(
        HTTPGuard, settings=settings, flow_paths=frozenset(), health=NoHealthReport()
    )
    return TestClient(app)


def test_an_upload_is_limited_by_max_file_mb_not_by_the_json_body_limit():
    client = guarded_upload_app(max_file_bytes=1 << 20)
    under = client.post("/upload/search", files={"file": ("a.wav", b"x" * 500_000)})
    assert under.status_code == 200, under.text  # far over max_body_bytes (1 KiB)
    assert under.json() == {"bytes": 500_000}
    over = client.post("/upload/search", files={"file": ("a.wav", b"x" * 2_000_000)})
    assert over.status_code == 413
    detail = over.json()["detail"]
    assert detail.startswith("upload is 2,000,")
    assert "the limit for uploads is 1 MiB (max_file_mb in flow.yml)" in detail


def test_an_upload_of_unknown_length_is_cut_off_at_the_limit():
    client = guarded_upload_app(max_file_bytes=1 << 20)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    ).encode()

    def chunked() -> Iterator[bytes]:  # no Content-Length: the guard counts as it streams
        yield head
        for _ in range(40):
            yield b"x" * 65_536
        yield f"\r\n--{boundary}--\r\n".encode()

    over = client.post(
        "/upload/search", content=chunked(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert over.status_code == 413
    assert over.json()["detail"].startswith(f"upload is over {1 << 20:,} bytes; the limit")


def test_guard_settings_take_max_file_mb_from_flow_yml():
    assert GuardSettings.from_config({"max_file_mb": 2}).max_file_bytes == 2 << 20
    assert GuardSettings.from_config({}).max_file_bytes == GuardSettings().max_file_bytes


def test_peaks_are_the_loudest_sample_of_each_span():
    wave = np.array([0.1, -0.5, 0.2, 0.3, -0.9, 0.0, 2.0, 0.1])
    assert peaks(wave, 4).tolist() == pytest.approx([0.5, 0.3, 0.9, 1.0])  # clipped to 1
    assert peaks(wave, 100).shape == (8,)  # never more spans than samples
    assert peaks(np.zeros(0), 10).shape == (0,)
    with pytest.raises(InvalidInputError, match="points=0: expected a whole number from 1"):
        peaks(wave, 0)


def test_the_map_puts_alike_clips_together_in_the_unit_square():
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(3, 32))
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(50, 32)) for c in centres])
    points = project(vectors)
    assert points.shape == (150, 2)
    assert points.min() >= 0 and points.max() <= 1
    groups = [points[i * 50 : (i + 1) * 50] for i in range(3)]
    within = max(np.linalg.norm(g - g.mean(0), axis=1).max() for g in groups)
    between = min(
        np.linalg.norm(groups[i].mean(0) - groups[j].mean(0))
        for i in range(3)
        for j in range(i + 1, 3)
    )
    assert within < between / 2
    assert np.array_equal(project(vectors), points)  # the same library, the same map
    assert project(vectors[:1]).tolist() == [[0.5, 0.5]]
    assert project(np.ones((4, 8))).tolist() == [[0.5, 0.5]] * 4


def test_clip_means_are_each_clips_mean_unit_chunk_vector(tmp_path):
    rng = np.random.default_rng(3)
    vectors = [rng.normal(size=(n, 16)).astype(np.float32) for n in (1, 3, 2, 5)]
    with ChunkIndex(tmp_path) as index:
        clips = [
            ClipToAdd(uri=f"/music/{i}.wav", duration=2.0 * len(v),
                      starts=np.arange(len(v)) * 2.0, ends=np.arange(len(v)) * 2.0 + 4,
                      vectors=v, fingerprint="1:1")
            for i, v in enumerate(vectors)
        ]  # fmt: skip
        index.add(clips, encoder="test/1")
        index.delete([2])  # leaves dead rows between the others
        ids, means = index.clip_means()
        uris = {c.clip_id: c.uri for c in index.clips()}
    assert sorted(ids.tolist()) == [1, 3, 4]
    for clip_id, mean in zip(ids, means, strict=True):
        v = vectors[int(Path(uris[int(clip_id)]).stem)]
        expected = (v / np.linalg.norm(v, axis=1, keepdims=True)).mean(axis=0)
        np.testing.assert_allclose(mean, expected, atol=1e-6)


@pytest.fixture(scope="module")
def indexed(toy_index: list[dict]) -> dict[str, dict]:
    """toy-data/ indexed (once per session, shared): file name -> its doc."""
    assert all(d["status"] != "error" for d in toy_index), toy_index
    return {d["uri"].rsplit("/", 1)[-1]: d for d in toy_index}


@pytest.mark.slow
def test_limits_peaks_and_map_routes(sfx_server: Server, indexed):
    limits = httpx.get(f"{sfx_server.url}/limits", timeout=60).json()
    assert limits == {"max_seconds": 600.0, "max_file_mb": 1024.0, "max_body_mb": 32.0}

    piano = indexed["piano_phrase_10s.wav"]
    outline = httpx.get(f"{sfx_server.url}/peaks/{piano['clip_id']}?points=50", timeout=60)
    assert outline.status_code == 200, outline.text
    body = outline.json()
    assert len(body["peaks"]) == 50 and 0 < max(body["peaks"]) <= 1
    assert body["seconds"] == pytest.approx(piano["duration"], abs=0.01)
    assert httpx.get(f"{sfx_server.url}/peaks/987654", timeout=60).status_code == 404
    assert httpx.get(f"{sfx_server.url}/peaks/1?points=0", timeout=60).status_code == 422

    library = httpx.get(f"{sfx_server.url}/map", timeout=60).json()
    assert set(library) == {"clip_ids", "uris", "x", "y"}
    listed = sfx_server.post("list", [], limit=1000)
    assert sorted(library["clip_ids"]) == sorted(d["clip_id"] for d in listed)
    by_id = dict(zip(library["clip_ids"], library["uris"], strict=True))
    assert all(by_id[d["clip_id"]] == d["uri"] for d in listed)
    assert all(0 <= v <= 1 for v in library["x"] + library["y"])


@pytest.mark.slow
def test_a_57_mb_wav_upload_is_streamed_past_the_json_limit_and_searched(
    sfx_server: Server, indexed, tmp_path
):
    # The file: 5 minutes of 48 kHz stereo, 57.6 MB, over max_body_mb (32 MiB).
    rate = 48_000
    t = np.arange(300 * rate) / rate
    chirp = (0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(0.5 * t)) * t)).astype(np.float32)
    path = tmp_path / "five_minutes.wav"
    sf.write(path, np.stack([chirp, chirp[::-1]], axis=1), rate, subtype="PCM_16")
    assert path.stat().st_size > 32 << 20
    with path.open("rb") as f:
        response = httpx.post(
            f"{sfx_server.url}/upload/search", files={"file": (path.name, f)},
            data={"limit": "5"}, timeout=600,
        )  # fmt: skip
    assert response.status_code == 200, response.text
    [doc] = response.json()["data"]
    assert doc["status"] == "searched", doc
    assert doc["duration"] == pytest.approx(300.0)
    assert len(doc["matches"]) == 5
