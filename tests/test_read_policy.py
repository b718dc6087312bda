"""Every read of a path applies the read policy and the fingerprint, each time it reads.

An indexed path is read again later (a player streams it, a long file is decoded a second time,
``duplicates`` compares it): a symbolic link swapped in since, or a file rewritten since, must
not be served as the indexed clip. Requests are checked at the edge: clip ids in range, known
parameters only, fields only the service fills refused, bounded nesting and Range values.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from docarray import DocList

from audiosearch.paths import ReadPolicy, fingerprint, readable_file
from executors.docs import AudioDoc
from executors.ranker import Ranker
from executors.segmenter import AudioSegmenter
from tests.conftest import ROOT, TOY_DATA, Server, write_tone

pytestmark = pytest.mark.slow


def index_one(server: Server, path: Path) -> dict:
    [doc] = server.post("index", [{"uri": str(path)}])
    assert doc["status"] in ("added", "replaced"), doc
    return doc


def rewrite_keeping_size_and_mtime(path: Path, freq: float) -> None:
    """Other audio in ``path``, with the same size and modification time as before."""
    before = path.stat()
    write_tone(path, 3.0, freq=freq)
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_audio_refuses_an_indexed_path_swapped_for_a_link_outside_the_roots(sfx_server, tmp_path):
    clip = index_one(sfx_server, write_tone(tmp_path / "g.wav", 3.0, freq=610.0))
    audio = f"{sfx_server.url}/audio/{clip['clip_id']}"
    assert httpx.get(audio).status_code == 200
    (tmp_path / "g.wav").rename(tmp_path / "g.orig")
    (tmp_path / "g.wav").symlink_to("/etc/passwd")
    served = httpx.get(audio)
    assert served.status_code == 403, served.text[:200]
    assert "root:" not in served.text
    assert "symbolic link that leads outside the allowed folders" in served.json()["detail"]
    ranged = httpx.get(audio, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 403 and "root:" not in ranged.text


def test_a_file_rewritten_with_the_same_size_and_mtime_is_neither_served_nor_kept(
    sfx_server, tmp_path
):
    path = write_tone(tmp_path / "same.wav", 3.0, freq=700.0)
    clip = index_one(sfx_server, path)
    rewrite_keeping_size_and_mtime(path, freq=2_900.0)
    served = httpx.get(f"{sfx_server.url}/audio/{clip['clip_id']}")
    assert served.status_code == 403
    assert "changed since it was indexed; index it again" in served.json()["detail"]
    again = index_one(sfx_server, path)
    assert again["status"] == "replaced" and again["clip_id"] == clip["clip_id"]
    assert httpx.get(f"{sfx_server.url}/audio/{clip['clip_id']}").status_code == 200


def test_an_empty_upload_is_refused_and_never_reads_the_path_it_is_named_after(sfx_server):
    named = "toy-data/piano_phrase_10s.wav"
    upload = httpx.post(f"{sfx_server.url}/upload/search", files={"file": (named, b"")}, timeout=60)
    assert upload.status_code == 422, upload.text
    assert f"the uploaded file {named!r} is empty (0 bytes)" in upload.json()["detail"]
    [doc] = sfx_server.post("search", [{"audio_base64": "", "uri": named}])
    assert doc["status"] == "error" and doc["matches"] == []
    assert f"uploaded audio {named!r}: is an empty file (0 bytes)" in doc["error"]


@pytest.mark.parametrize("endpoint", ["search", "clips", "delete"])
def test_clip_ids_out_of_range_get_422_and_the_connection_keeps_working(
    sfx_server, toy_index, endpoint
):
    good = toy_index[0]["clip_id"]
    with httpx.Client(base_url=sfx_server.url, timeout=60) as client:
        for bad in (2**31, -1, 2**63, 1.5):
            body = {"data": [{"clip_id": good}, {"clip_id": bad}]}
            response = client.post(f"/{endpoint}", json=body)
            assert response.status_code == 422, response.text
            assert (
                f"data[1].clip_id={bad!r}: expected a whole number from 0 to 2,147,483,647"
                in (response.json()["detail"])
            )
        assert client.get(f"/audio/{2**31}").status_code == 422
        # Nothing of the refused requests was done, and the same connection still answers.
        [doc] = client.post("/clips", json={"data": [{"clip_id": good}]}).json()["data"]
        assert doc["status"] == "indexed"


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"data": [{"uri": "toy-data/tom_fill.ogg"}], "parameters": {"limt": 1}},
         "parameters.limt: not a parameter of /search; did you mean limit? it takes limit, "
         "min_score"),
        ({"data": [{"uri": "toy-data/tom_fill.ogg"}], "parameters": {"min_score": 3}},
         "parameters.min_score=3: expected a number from -1 to 1; try min_score=0.5"),
        ({"data": [{"uri": "toy-data/tom_fill.ogg"}], "parameters": {"strategy": "best"}},
         "parameters.strategy='best': expected one of best_chunk"),
        ({"data": [{"uri": "toy-data/tom_fill.ogg", "error": "hi"}]},
         "data[0].error: is filled by the service; leave it out"),
        ({"data": [{"uri": "toy-data/tom_fill.ogg"}], "parameters": {"x": nested(50)}},
         "request body nests arrays and objects more than 16 deep"),
        ({"data": [{"uri": "toy-data/tom_fill.ogg"}], "parameters": {"x": nested(900)}},
         "request body nests arrays and objects more than 16 deep"),
    ],
    ids=["misspelt parameter", "bad min_score", "bad strategy", "client error field",
         "nested 50 deep", "nested 900 deep"],
)  # fmt: skip
def test_bad_search_requests_get_422_naming_what_to_fix(sfx_server, body, detail):
    response = httpx.post(f"{sfx_server.url}/search", json=body, timeout=60)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


def test_index_refuses_a_client_set_status_and_takes_no_parameters(sfx_server):
    uri = str(TOY_DATA / "tom_fill.ogg")
    response = httpx.post(f"{sfx_server.url}/index", json={"data": [{"uri": uri, "status": "x"}]})
    assert response.status_code == 422
    assert "data[0].status: is filled by the service" in response.json()["detail"]
    response = httpx.post(
        f"{sfx_server.url}/index", json={"data": [{"uri": uri}], "parameters": {"limit": 2}}
    )
    assert response.status_code == 422
    assert "parameters.limit: /index takes no parameters" in response.json()["detail"]


def test_a_range_header_with_a_huge_number_is_416_not_500(sfx_server, toy_index):
    audio = f"{sfx_server.url}/audio/{toy_index[0]['clip_id']}"
    for header in ("bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 5000, "bytes=0-" + "9" * 5000):
        response = httpx.get(audio, headers={"Range": header})
        assert response.status_code in (206, 416), (header[:20], response.status_code)
    assert httpx.get(audio, headers={"Range": "bytes=" + "9" * 5000 + "-"}).status_code == 416
    whole = httpx.get(audio, headers={"Range": "bytes=0-" + "9" * 5000})
    assert (
        whole.status_code == 206 and len(whole.content) == Path(toy_index[0]["uri"]).stat().st_size
    )


# --- the executors' reads, without a flow -----------------------------------------------------


def test_a_file_past_max_seconds_is_used_up_to_there_and_its_item_says_so(tmp_path):
    long = tmp_path / "long.wav"
    write_tone(long, 12.0)
    segmenter = AudioSegmenter(read_policy={"allowed_roots": [str(tmp_path)], "max_seconds": 5})
    [doc] = segmenter.segment_files(DocList[AudioDoc]([AudioDoc(uri=str(long))]))
    assert doc.status is None and doc.duration == pytest.approx(5.0)
    assert doc.note.startswith("only the first 5 s of 12 s were used")
    assert "read_policy.max_seconds" in doc.note
    [short] = segmenter.segment_files(
        DocList[AudioDoc]([AudioDoc(uri=str(write_tone(tmp_path / "short.wav", 4.0)))])
    )
    assert short.note is None


def test_duplicates_read_candidates_under_the_policy_and_only_up_to_max_seconds(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir(), outside.mkdir()
    write_tone(outside / "secret.wav", 3.0)
    (inside / "link.wav").symlink_to(outside / "secret.wav")
    write_tone(inside / "long.wav", 30.0)
    ranker = Ranker(read_policy={"allowed_roots": [str(inside)], "max_seconds": 5})
    assert ranker._load_indexed(str(inside / "link.wav")) is None
    assert ranker._load_indexed(str(inside / "long.wav")).size == 5 * 16_000


def test_the_fingerprint_changes_with_the_content_alone(tmp_path):
    path = write_tone(tmp_path / "a.wav", 3.0, freq=500.0)
    before = fingerprint(path)
    rewrite_keeping_size_and_mtime(path, freq=900.0)
    assert fingerprint(path) != before
    policy = ReadPolicy(roots=[tmp_path])
    with pytest.raises(ValueError, match="changed since it was indexed"):
        readable_file(str(path), policy, indexed_fingerprint=before)
    legacy = ":".join(fingerprint(path).split(":")[:2])  # what older indexes stored
    assert readable_file(str(path), policy, indexed_fingerprint=legacy).path == path


DISK_FULL = """
import resource, signal, sys
import numpy as np
from audiosearch.index import ChunkIndex, ClipToAdd, IndexWriteError

def clip(name, n):
    return ClipToAdd(uri=name, duration=2.0 * n, starts=np.arange(n) * 2.0,
                     ends=np.arange(n) * 2.0 + 4, vectors=np.random.rand(n, 512), fingerprint=name)

index = ChunkIndex(sys.argv[1])
index.add([clip("/a.wav", 3)], encoder="sfx/1")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
try:
    index.add([clip("/b.wav", 40), clip("/c.wav", 2)], encoder="sfx/1")
except IndexWriteError as exc:
    print(exc)
"""


def test_a_full_disk_names_the_workspace_and_stores_nothing_of_the_request(tmp_path):
    workspace = tmp_path / "ws"
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(workspace)], capture_output=True, text=True,
        cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    message = result.stdout.strip()
    assert message.startswith(f"the index in {workspace} could not be written (File too large)")
    assert "nothing of this request was stored or changed; free disk space" in message
    from audiosearch.index import ChunkIndex

    index = ChunkIndex(workspace)
    assert [c.uri for c in index.clips(offset=0, limit=10)] == ["/a.wav"]
    assert index.stats()["chunks"] == 3
    index.close()
