"""Near-duplicate search: sox/ffmpeg copies of toy clips are found, look-alikes are not."""

import base64
import subprocess
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from audiosearch.audio import SAMPLE_RATE, load_audio
from audiosearch.duplicates import MIN_CORRELATION, align, spectral_frames
from tests.conftest import TOY_DATA, Server, start_server

FFMPEG = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
VARIANTS = ("mp3", "opus", "trim", "gain", "mixed")
#: Indexed; copies of them are the queries.
ORIGINALS = ("flute_melody.ogg", "speech_en_us_male.wav", "choir_aahs_chords.mp3",
             "snare_hit_1p5s.wav", "piano_phrase_10s.wav")  # fmt: skip
#: Not indexed; each sounds like an indexed clip (same chords, same voice kind) without being it.
LOOK_ALIKES = ("church_organ_chords.wav", "speech_de_male.mp3", "speech_en_gb_female.wav",
               "tom_fill.ogg")  # fmt: skip


def make_variant(source: Path, kind: str, out_dir: Path) -> Path:
    """A copy of ``source`` in ``out_dir``: re-encoded, trimmed and/or quieter, by ``kind``.

    ``mp3`` 64 kbit/s; ``opus`` 24 kbit/s; ``trim`` 0.5 s off the start and 0.3 s off the end (a
    tenth of the clip at most, each); ``gain`` 9 dB quieter; ``mixed`` half that trim, 4 dB
    quieter, resampled to 22.05 kHz and saved as Vorbis q2.
    """
    wav = out_dir / f"{source.stem}.source.wav"
    subprocess.run([*FFMPEG, "-i", str(source), "-ac", "1", str(wav)], check=True)
    head, tail = trim_seconds(sf.info(wav).duration)
    suffix = {"mp3": ".mp3", "opus": ".opus", "trim": ".wav", "gain": ".wav", "mixed": ".ogg"}
    out = out_dir / f"{source.stem}.{kind}{suffix[kind]}"
    mixed = out_dir / f"{source.stem}.mixed.wav"
    commands = {
        "mp3": [[*FFMPEG, "-i", wav, "-b:a", "64k", out]],
        "opus": [[*FFMPEG, "-i", wav, "-c:a", "libopus", "-b:a", "24k", out]],
        "trim": [["sox", wav, out, "trim", str(head), f"-{tail}"]],
        "gain": [["sox", wav, out, "gain", "-9"]],
        "mixed": [
            ["sox", wav, "-r", "22050", mixed, "trim", str(head / 2), "gain", "-4"],
            [*FFMPEG, "-i", mixed, "-c:a", "libvorbis", "-q:a", "2", out],
        ],
    }[kind]
    for command in commands:
        subprocess.run([str(c) for c in command], check=True)
    mixed.unlink(missing_ok=True)
    wav.unlink()
    return out


def trim_seconds(duration: float) -> tuple[float, float]:
    """What a ``trim`` copy loses at the start and at the end, seconds."""
    return min(0.5, duration / 10), min(0.3, duration / 10)


# ------------------------------------------------------------------- the check itself
def test_alignment_finds_where_a_trimmed_quieter_copy_lies_in_the_original():
    original = load_audio(TOY_DATA / "flute_melody.ogg")
    copy = 0.2 * original[SAMPLE_RATE // 2 : -SAMPLE_RATE // 4]  # 0.5 s and 0.25 s trimmed
    found = align(spectral_frames(copy), spectral_frames(original))
    assert found.correlation > 0.99
    assert found.start - found.query_start == pytest.approx(0.5, abs=0.016)
    assert found.query_start == 0 and found.query_end == pytest.approx(
        len(copy) / SAMPLE_RATE, abs=0.05
    )


def test_an_excerpt_is_not_a_copy_of_the_whole():
    original = load_audio(TOY_DATA / "piano_phrase_10s.wav")
    excerpt = original[: 4 * SAMPLE_RATE]  # 4 s of 10 s: less than most of the longer clip
    assert align(spectral_frames(excerpt), spectral_frames(original)).correlation == 0


def test_other_recordings_of_the_same_chords_do_not_correlate_like_copies():
    organ = spectral_frames(load_audio(TOY_DATA / "church_organ_chords.wav"))
    choir = spectral_frames(load_audio(TOY_DATA / "choir_aahs_chords.mp3"))
    assert align(organ, choir).correlation < MIN_CORRELATION - 0.05


# ------------------------------------------------------------ end to end, over HTTP
@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Server, Path]:
    """A flow whose index holds ORIGINALS and one trimmed copy of the piano phrase."""
    root = tmp_path_factory.mktemp("duplicates")
    (root / "library").mkdir()
    piano_copy = make_variant(TOY_DATA / "piano_phrase_10s.wav", "trim", root / "library")
    # The server reads the copies every test writes under the session's temporary folder.
    server = start_server(root / "workspace", "--encoder", "sfx", "--allowed-root",
                          str(tmp_path_factory.getbasetemp()), timeout=300)  # fmt: skip
    indexed = server.post("index", [{"uri": str(TOY_DATA / n)} for n in ORIGINALS]
                          + [{"uri": str(piano_copy)}])  # fmt: skip
    assert [d["status"] for d in indexed] == ["added"] * (len(ORIGINALS) + 1), [
        d["error"] for d in indexed
    ]
    yield server, piano_copy
    server.stop()


@pytest.mark.slow
def test_copies_are_reported_as_duplicates_of_their_original(library, tmp_path):
    server, _ = library
    names = ("flute_melody.ogg", "speech_en_us_male.wav", "choir_aahs_chords.mp3",
             "snare_hit_1p5s.wav")  # fmt: skip
    queries = [(n, kind, make_variant(TOY_DATA / n, kind, tmp_path)) for n in names
               for kind in VARIANTS]  # fmt: skip
    results = server.post("search", [{"uri": str(q)} for _, _, q in queries], duplicates=True)
    for (name, kind, _), doc in zip(queries, results, strict=True):
        assert doc["status"] == "searched", doc
        assert [Path(m["uri"]).name for m in doc["matches"]] == [name], (kind, doc["matches"])
        [match] = doc["matches"]
        assert MIN_CORRELATION <= match["score"] <= 1
        # Where the copy lies in the original: shifted by what the trim took off its start.
        head, _ = trim_seconds(len(load_audio(TOY_DATA / name)) / SAMPLE_RATE)
        shift = {"trim": head, "mixed": head / 2}.get(kind, 0.0)
        assert match["start"] - match["query_start"] == pytest.approx(shift, abs=0.05), kind
        assert match["query_end"] - match["query_start"] > 0.5 * doc["duration"]


@pytest.mark.slow
def test_look_alikes_are_similar_but_not_duplicates(library):
    server, _ = library
    docs = [{"uri": str(TOY_DATA / n)} for n in LOOK_ALIKES]
    similar = server.post("search", docs, limit=3)
    assert all(d["matches"] and d["matches"][0]["score"] > 0.8 for d in similar), similar
    assert [d["matches"] for d in server.post("search", docs, duplicates=True)] == [[]] * len(docs)
    plain = server.post("search", docs, duplicates=False, limit=3)
    ranked = [[(m["uri"], m["score"]) for m in d["matches"]] for d in similar]
    assert [[(m["uri"], m["score"]) for m in d["matches"]] for d in plain] == ranked


@pytest.mark.slow
def test_an_original_finds_the_copy_already_in_the_library(library):
    server, piano_copy = library
    original = TOY_DATA / "piano_phrase_10s.wav"
    [doc] = server.post("search", [{"uri": str(original)}], duplicates=True)
    found = {m["uri"]: m for m in doc["matches"]}
    assert str(piano_copy) in found
    assert set(found) <= {str(piano_copy), str(original)}  # nothing else is a copy
    copy = found[str(piano_copy)]
    # The copy starts 0.5 s into the original: query time = copy time + 0.5 s.
    assert copy["query_start"] - copy["start"] == pytest.approx(0.5, abs=0.05)


@pytest.mark.slow
def test_uploaded_audio_is_checked_too_and_the_flag_must_be_a_boolean(library, tmp_path):
    server, _ = library
    copy = make_variant(TOY_DATA / "flute_melody.ogg", "opus", tmp_path)
    encoded = base64.b64encode(copy.read_bytes()).decode()
    bad = httpx.post(
        f"{server.url}/search",
        json={"data": [{"audio_base64": encoded}, {"uri": str(copy)}],
              "parameters": {"duplicates": "yes"}},
    )  # fmt: skip
    assert bad.status_code == 422  # refused as a whole, at the edge, like any bad parameter
    assert "parameters.duplicates='yes': expected true or false" in bad.json()["detail"]
    [uploaded] = server.post("search", [{"audio_base64": encoded}], duplicates=True)
    assert [Path(m["uri"]).name for m in uploaded["matches"]] == ["flute_melody.ogg"]
    assert uploaded.get("tensor") is None  # the waveform kept for the check is not sent back
