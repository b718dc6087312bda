"""Decoding: every common format to mono float32 at 16 kHz, and clear errors for bad files."""

import io
import re
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from audiosearch.audio import SAMPLE_RATE, decode_audio, load_audio
from audiosearch.audio import decode as audio_module
from audiosearch.errors import AudioDecodeError
from tests.conftest import TOY_DATA, toy_clips, write_tone


@pytest.mark.parametrize("path", toy_clips(), ids=lambda p: p.name)
def test_every_toy_clip_decodes_to_mono_16k(path):
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    info_seconds = audio.size / SAMPLE_RATE
    assert 1.4 < info_seconds < 12.5
    assert 0.01 < np.abs(audio).max() <= 1.0 + 1e-3


def test_all_formats_are_covered_by_toy_data():
    assert {p.suffix for p in toy_clips()} >= {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus"}


def test_stereo_48k_is_downmixed_and_resampled_keeping_the_pitch(tmp_path):
    rate = 48_000
    t = np.arange(2 * rate) / rate
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, left], axis=1), rate, subtype="PCM_24")
    audio = load_audio(tmp_path / "s.wav")
    assert audio.size == 2 * SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / audio.size
    assert peak_hz == pytest.approx(1000, abs=1)
    assert np.abs(audio[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)


def test_opposite_channels_cancel_to_silence_and_are_refused(tmp_path):
    tone = 0.5 * np.sin(np.linspace(0, 2000, 32_000))
    sf.write(tmp_path / "phase.wav", np.stack([tone, -tone], axis=1), 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"phase\.wav: is silent"):
        load_audio(tmp_path / "phase.wav")


def test_text_renamed_wav_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioDecodeError, match=r"notes\.wav: not a readable audio file"):
        load_audio(path)


def test_nan_samples_are_refused(tmp_path):
    data = np.full(16_000, 0.1, dtype=np.float32)
    data[100] = np.nan
    sf.write(tmp_path / "nan.wav", data, 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN or infinite"):
        load_audio(tmp_path / "nan.wav")


def test_too_short_is_refused_with_the_minimum(tmp_path):
    sf.write(tmp_path / "blip.wav", np.full(800, 0.3, dtype=np.float32), 16_000)
    with pytest.raises(AudioDecodeError, match=r"0\.050 s of audio; at least 0\.1 s"):
        load_audio(tmp_path / "blip.wav")


def test_max_seconds_decodes_only_the_start(tmp_path):
    sf.write(tmp_path / "long.flac", np.full(10 * 22_050, 0.2, dtype=np.float32), 22_050)
    assert load_audio(tmp_path / "long.flac", max_seconds=3).size == 3 * SAMPLE_RATE


def tone_bytes(seconds: float, *, rate: int = 16_000, fmt: str = "WAV") -> bytes:
    """A 0.3-amplitude 440 Hz sine as a 16-bit file of ``fmt``, in memory."""
    t = np.arange(round(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def source_and_label(tmp_path: Path, data: bytes, name: str, as_bytes: bool):
    """The file as bytes (labelled "uploaded audio") or as a path (labelled by the path)."""
    if as_bytes:
        return data, "uploaded audio"
    path = tmp_path / name
    path.write_bytes(data)
    return path, str(path)


AGAIN = "; copy or download the file again"
OGG_CUT = "is truncated: its Ogg stream stops without its end-of-stream page"


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        # libsndfile took the length from the file's size: 2.27 s indexed as if whole.
        ("piano_phrase_10s.wav", 100_000,
         "is truncated: its header declares 10.00 s of audio but the file holds 2.27 s"),
        ("tom_fill.ogg", 15_000, OGG_CUT),  # decoded 1.2 s of 3.9 s, silently
        ("harp_arpeggio.opus", 40_000, OGG_CUT),  # FFmpeg: 3.9 s of 7.1 s, silently
    ],
    ids=["wav", "ogg", "opus"],
)  # fmt: skip
def test_a_truncated_wav_ogg_or_opus_is_refused(tmp_path, name, size, message, as_bytes):
    data = (TOY_DATA / name).read_bytes()[:size]
    source, label = source_and_label(tmp_path, data, "cut" + Path(name).suffix, as_bytes)
    with pytest.raises(AudioDecodeError, match=f"^{re.escape(label + ': ' + message + AGAIN)}$"):
        load_audio(source)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
@pytest.mark.parametrize(
    ("name", "message"),
    [("brass_fanfare.mp3",
      "is truncated: its header declares 4.6 s but the audio stops after 2.3 s"),
     ("speech_es.flac", "is damaged or truncated: decoding stopped after 1.9 s")],
    ids=["mp3", "flac"],
)  # fmt: skip
def test_a_truncated_mp3_or_flac_is_still_refused_as_before(tmp_path, name, message, as_bytes):
    data = (TOY_DATA / name).read_bytes()
    half = data[: len(data) // 2]
    source, label = source_and_label(tmp_path, half, "cut" + Path(name).suffix, as_bytes)
    with pytest.raises(AudioDecodeError, match=re.escape(f"{label}: {message}")):
        load_audio(source)


def test_an_ogg_missing_only_its_last_page_is_truncated_but_bytes_after_it_are_not():
    data = (TOY_DATA / "tom_fill.ogg").read_bytes()
    last_page = data.rindex(b"OggS")
    with pytest.raises(AudioDecodeError, match=f"^uploaded audio: {OGG_CUT}"):
        load_audio(data[:last_page])  # every page whole, but the stream never ends
    # A tag appended after the last page (some taggers do) does not make the file truncated.
    whole = load_audio(data)
    np.testing.assert_array_equal(load_audio(data + b"TAG" + b"\0" * 125), whole)


@pytest.mark.parametrize("fmt", ["WAV", "RF64", "W64", "AIFF", "CAF", "AU"])
def test_every_container_that_declares_its_data_size_is_checked_against_it(fmt):
    data = tone_bytes(4.0, fmt=fmt)
    assert load_audio(data).size == 4 * SAMPLE_RATE
    with pytest.raises(
        AudioDecodeError,
        match=r"^uploaded audio: is truncated: its header declares 4\.00 s of audio but the file "
        r"holds 1\.\d\d s; copy or download",
    ):
        load_audio(data[: len(data) * 4 // 10])


@pytest.mark.parametrize("placeholder", [0xFFFF_FFFF, 0x7FFF_F000], ids=["FFmpeg", "SoX"])
def test_a_streamed_wav_with_an_unknown_data_size_is_not_called_truncated(placeholder):
    # Writers that cannot seek back leave a placeholder size; all the audio is there.
    data = bytearray(tone_bytes(3.0))
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", placeholder)
    decoded = decode_audio(bytes(data))
    assert decoded.waveform.size == 3 * SAMPLE_RATE and not decoded.capped
    assert decoded.declared_seconds == pytest.approx(3.0)


def refuse_to_open(*args, **kwargs):
    """libsndfile's answer to a format it cannot read: the file goes to FFmpeg."""
    raise sf.LibsndfileError(1, "test: ")


@pytest.mark.parametrize("decoder", ["libsndfile", "ffmpeg"])
@pytest.mark.parametrize(
    ("offset", "value", "claim"),
    [
        (24, struct.pack("<I", 1), "a sample rate of 1 Hz; audio files have 1,000-768,000 Hz"),
        (24, struct.pack("<I", 1_000_000),
         "a sample rate of 1,000,000 Hz; audio files have 1,000-768,000 Hz"),
        (22, struct.pack("<H", 100), "100 channels; audio files have 1-64"),
    ],
    ids=["1 Hz", "1 MHz", "100 channels"],
)  # fmt: skip
def test_a_header_claiming_an_impossible_rate_or_channel_count_is_refused(
    tmp_path, monkeypatch, offset, value, claim, decoder
):
    data = bytearray(tone_bytes(1.0))
    data[offset : offset + len(value)] = value
    path = tmp_path / "damaged.wav"
    path.write_bytes(data)
    if decoder == "ffmpeg":
        monkeypatch.setattr(audio_module.sf, "SoundFile", refuse_to_open)
    # max_seconds: a 1 Hz header would otherwise be decoded into 16,000 s of garbage.
    with pytest.raises(
        AudioDecodeError,
        match=f"^{re.escape(f'{path}: its header claims {claim}')}: the header is damaged, "
        "re-export the file$",
    ):
        load_audio(path, max_seconds=20)


def test_a_one_hz_wav_written_as_such_is_refused(tmp_path):
    sf.write(tmp_path / "slow.wav", np.full(40, 0.3, np.float32), 1)
    with pytest.raises(AudioDecodeError, match="its header claims a sample rate of 1 Hz"):
        load_audio(tmp_path / "slow.wav")


def matroska_pcm(seconds: float) -> bytes:
    """A 16 kHz PCM tone in Matroska: a format only FFmpeg reads, whose header holds a duration
    and whose decoder stops quietly where a cut file ends."""
    buffer = io.BytesIO()
    t = np.arange(round(seconds * 16_000)) / 16_000
    samples = (0.3 * 32_767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=16_000, layout="mono")
        for lo in range(0, samples.size, 4_000):
            frame = av.AudioFrame.from_ndarray(samples[None, lo : lo + 4_000], "s16", "mono")
            frame.sample_rate = 16_000
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def test_an_ffmpeg_file_that_stops_short_of_its_declared_duration_is_refused():
    data = matroska_pcm(10.0)
    whole = decode_audio(data)
    assert whole.waveform.size == 10 * SAMPLE_RATE and whole.declared_seconds == 10.0
    assert not whole.capped and not decode_audio(data, max_seconds=10).capped
    cut = data[: len(data) // 2]
    with pytest.raises(
        AudioDecodeError,
        match=r"^uploaded audio: is truncated: its header declares 10\.0 s but the audio stops "
        r"after 4\.\d s; copy or download the file again$",
    ):
        load_audio(cut)
    # Decoding that stops at max_seconds never reaches the cut, so nothing is refused.
    capped = decode_audio(cut, max_seconds=3)
    assert capped.capped and capped.waveform.size == 3 * SAMPLE_RATE


@pytest.mark.parametrize(
    ("max_seconds", "capped", "seconds"),
    [(5, True, 5), (12, False, 12), (20, False, 12), (None, False, 12)],
)
def test_decode_audio_reports_whether_max_seconds_left_audio_out(
    tmp_path, max_seconds, capped, seconds
):
    path = write_tone(tmp_path / "twelve.wav", 12.0)
    decoded = decode_audio(path, max_seconds=max_seconds)
    assert decoded.capped is capped  # a file exactly max_seconds long is whole, not capped
    assert decoded.declared_seconds == 12.0
    assert decoded.waveform.size == seconds * SAMPLE_RATE
    np.testing.assert_array_equal(load_audio(path, max_seconds=max_seconds), decoded.waveform)


@pytest.mark.parametrize("path", toy_clips(), ids=lambda p: p.name)
def test_every_toy_clip_decodes_whole_and_the_same_from_its_path_and_its_bytes(path):
    from_path = decode_audio(path)
    seconds = from_path.waveform.size / SAMPLE_RATE
    assert not from_path.capped
    assert from_path.declared_seconds == pytest.approx(seconds, abs=0.05)
    from_bytes = decode_audio(path.read_bytes())
    np.testing.assert_array_equal(from_bytes.waveform, from_path.waveform)
    assert from_bytes.declared_seconds == from_path.declared_seconds
