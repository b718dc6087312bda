"""Property and fuzz tests on the boundaries where client input meets the code: the decoder
(arbitrary bytes, damaged real files, every WAV shape), the windowing, the segmenter executor
that turns any URI into either windows or that item's own error, and the gateway's guard."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from docarray import DocList
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audiosearch.audio.decode import (
    BLOCK_FRAMES,
    MIN_SECONDS,
    SAMPLE_RATE,
    _MonoCollector,
    load_audio,
)
from audiosearch.audio.segment import ALIGN_SAMPLES, segment
from audiosearch.errors import AudioDecodeError
from executors.docs import AudioDoc
from executors.http_guard import Rejected, check_flow_request
from executors.segmenter import AudioSegmenter
from tests.conftest import TOY_DATA, write_tone

#: AUDIOSEARCH_FUZZ_EXAMPLES=1000 fuzzes harder; the default keeps the file to about 30 s.
FUZZ = settings(
    max_examples=int(os.environ.get("AUDIOSEARCH_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: Small real files in each container libsndfile or FFmpeg reads.
SEEDS = {
    name: (TOY_DATA / name).read_bytes()
    for name in ("snare_hit_1p5s.wav", "speech_es.flac", "tom_fill.ogg", "brass_fanfare.mp3",
                 "violin_melody.m4a", "harp_arpeggio.opus")
}  # fmt: skip
MAGIC = [b"", b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"ID3", b"\xff\xfb"]


def assert_decoded_or_refused(data: bytes) -> None:
    """The decoder's contract: a usable waveform, or AudioDecodeError naming the input."""
    try:
        audio = load_audio(data, label="fuzz.bin")
    except AudioDecodeError as exc:
        assert str(exc).startswith("fuzz.bin: ")
        return
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size >= MIN_SECONDS * SAMPLE_RATE
    assert np.isfinite(audio).all()


@FUZZ
@given(magic=st.sampled_from(MAGIC), tail=st.binary(max_size=4096))
@example(magic=b"", tail=b"")
def test_arbitrary_bytes_decode_or_are_refused_with_the_decoders_error(magic, tail):
    assert_decoded_or_refused(magic + tail)


@FUZZ
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=12),
)
# A WAV whose format tag is garbage: FFmpeg opens it with no codec at all (found by this test).
@example(seed="snare_hit_1p5s.wav", cut=1.0, flips=[((20.5 + i) / 132_344, 255) for i in range(4)])
def test_damaged_real_files_decode_or_are_refused_with_the_decoders_error(seed, cut, flips):
    data = bytearray(SEEDS[seed][: max(1, round(cut * len(SEEDS[seed])))])
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    assert_decoded_or_refused(bytes(data))


@FUZZ
@given(
    channels=st.integers(1, 8),
    rate=st.sampled_from([8_000, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000]),
    subtype=st.sampled_from(["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]),
    frames=st.one_of(
        st.integers(0, 3 * BLOCK_FRAMES),
        st.sampled_from([BLOCK_FRAMES - 1, BLOCK_FRAMES, BLOCK_FRAMES + 1, 2 * BLOCK_FRAMES]),
    ),
    cap=st.one_of(st.none(), st.floats(0.05, 4.0)),
)
def test_every_wav_shape_decodes_to_the_right_length_across_block_boundaries(
    channels, rate, subtype, frames, cap
):
    t = np.arange(frames) / rate
    tone = 0.4 * np.sin(2 * np.pi * 330 * t)
    buffer = io.BytesIO()
    sf.write(
        buffer, np.repeat(tone[:, None], channels, axis=1), rate, subtype=subtype, format="WAV"
    )
    kept = frames if cap is None else min(frames, round(cap * rate))
    try:
        audio = load_audio(buffer.getvalue(), max_seconds=cap)
    except AudioDecodeError as exc:
        assert kept * SAMPLE_RATE / rate < MIN_SECONDS * SAMPLE_RATE + 1, exc
        return
    # soxr streams the blocks: the length is the one-shot resampler's, whatever the blocks.
    assert abs(audio.size - kept * SAMPLE_RATE / rate) <= 1
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 0.5


@FUZZ
@given(
    rate=st.sampled_from([16_000, 22_050, 48_000]),
    frames=st.integers(1, 3 * BLOCK_FRAMES),
    declared=st.sampled_from([None, 0.0, 0.01, 0.5, 1.0, 1.01, 10.0]),
)
def test_a_header_that_misstates_the_length_changes_the_buffer_only(rate, frames, declared):
    """The declared length sizes the buffer: too short, it grows; too long, the tail is dropped;
    either way the waveform is the one a true header gives, and holds no more than its size."""
    audio = np.random.default_rng(frames).uniform(-0.5, 0.5, (frames, 1)).astype(np.float32)

    def collect(declared_frames: int | None) -> np.ndarray:
        collector = _MonoCollector(rate, SAMPLE_RATE, None, "x", declared_frames)
        for lo in range(0, frames, BLOCK_FRAMES):
            collector.add(audio[lo : lo + BLOCK_FRAMES])
        return collector.waveform()

    truth = collect(frames)
    out = collect(None if declared is None else round(declared * frames))
    np.testing.assert_array_equal(out, truth)
    held = out if out.base is None else out.base
    assert held.size <= out.size + out.size // 8 + SAMPLE_RATE


@FUZZ
@given(
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    where=st.floats(0.0, 1.0),
    frames=st.integers(2_000, 2 * BLOCK_FRAMES + 10),
)
def test_a_single_nan_or_inf_sample_anywhere_is_refused(bad, where, frames):
    data = np.full(frames, 0.1, dtype=np.float32)
    data[min(frames - 1, int(where * frames))] = bad
    buffer = io.BytesIO()
    sf.write(buffer, data, 16_000, subtype="FLOAT", format="WAV")
    with pytest.raises(AudioDecodeError, match="NaN or infinite samples"):
        load_audio(buffer.getvalue())


@FUZZ
@given(
    n=st.integers(1, 12 * SAMPLE_RATE),
    stride=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
)
def test_segments_cover_the_clip_and_never_reach_past_it(n, stride):
    waveform = np.linspace(-0.5, 0.5, n, dtype=np.float32)
    segments = segment(waveform, stride_seconds=stride)
    assert segments.duration == n / SAMPLE_RATE
    assert segments.waveform.size >= segments.window_samples
    assert np.all(segments.starts + segments.window_samples <= segments.waveform.size)
    assert np.all(segments.starts % ALIGN_SAMPLES == 0)
    assert segments.start_seconds[0] == 0
    ends = segments.end_seconds
    assert np.all(segments.start_seconds < ends) and np.all(ends <= segments.duration)
    assert ends[-1] >= segments.duration - ALIGN_SAMPLES / SAMPLE_RATE  # the tail is covered


@pytest.fixture(scope="module")
def segmenter_and_root(tmp_path_factory) -> tuple[AudioSegmenter, Path]:
    """A segmenter that reads only one temporary folder, which holds one good clip."""
    root = tmp_path_factory.mktemp("root")
    write_tone(root / "good.wav", 3.0)
    return AudioSegmenter(read_policy={"allowed_roots": [str(root)], "max_seconds": 5.0}), root


@FUZZ
@given(
    uris=st.lists(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(["good.wav", "../good.wav", "file:///etc/passwd", "http://x/y.wav",
                             "/dev/zero", "~", ".", "", "a\x00b", "good.wav/", "./good.wav",
                             "http://[", "~nosuchuser/a.wav"]),
        ),
        min_size=1,
        max_size=6,
    ),
)  # fmt: skip
def test_segmenter_turns_any_uri_into_windows_or_that_items_own_error(segmenter_and_root, uris):
    segmenter, root = segmenter_and_root
    good = str(root / "good.wav")
    docs = DocList[AudioDoc]([AudioDoc(uri=u) for u in uris] + [AudioDoc(uri=good)])
    segmenter.segment_files(docs, parameters={})
    *fuzzed, last = docs
    assert last.status is None and len(last.chunks) == 1 and last.uri == good
    for doc in fuzzed:
        if doc.status == "error":
            assert doc.error and "unexpected" not in doc.error, doc.error
            assert not doc.chunks and doc.tensor is None
        else:  # only the one good file under the root can be read
            assert doc.uri == good and len(doc.chunks) == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
REQUEST = st.fixed_dictionaries(
    {"data": st.lists(st.dictionaries(st.sampled_from(["uri", "urii", "tensor", "id"]), JSON))},
    optional={"parameters": st.dictionaries(st.sampled_from(["limit", "x"]), JSON), "header": JSON},
)


@FUZZ
@given(
    body=st.binary(max_size=200)
    | JSON.map(json.dumps).map(str.encode)
    | REQUEST.map(json.dumps).map(str.encode)
)
def test_the_gateway_guard_accepts_or_rejects_any_body_with_a_4xx(body):
    try:
        check_flow_request(body, "/search", max_docs=3)
    except Rejected as exc:
        assert exc.status in (400, 422) and exc.detail
