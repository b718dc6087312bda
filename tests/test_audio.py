"""Decoding: every common format to mono float32 at 16 kHz, and clear errors for bad files."""

import numpy as np
import pytest
import soundfile as sf

from audiosearch.audio import SAMPLE_RATE, load_audio
from audiosearch.errors import AudioDecodeError
from tests.conftest import toy_clips


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
