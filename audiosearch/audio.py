"""Decode any common audio file to a mono float32 waveform at the service's sample rate."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from audiosearch.errors import AudioDecodeError

#: Every waveform inside the service is mono at this rate (VGGish's rate).
SAMPLE_RATE = 16_000
#: Shorter clips carry too little sound to describe; they are refused rather than looped 40 times.
MIN_SECONDS = 0.1
#: Peak amplitude under which a clip counts as silent (about -100 dBFS).
SILENCE_PEAK = 1e-5


def load_audio(
    source: str | Path | bytes,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    min_seconds: float = MIN_SECONDS,
    label: str | None = None,
) -> np.ndarray:
    """Decode ``source`` (a file path, or a whole file's bytes) to mono float32 at ``sample_rate``.

    WAV, FLAC, OGG/Vorbis and MP3 are read by libsndfile; anything else it cannot open (M4A/AAC,
    Opus, WMA, ...) goes through FFmpeg (PyAV). Channels are averaged, and the rate is converted
    with soxr's high-quality resampler. Only the first ``max_seconds`` are decoded when given.

    Error messages start with ``label``, by default the path (or "uploaded audio" for bytes).

    Raises:
        AudioDecodeError: the file is not decodable audio, holds fewer than ``min_seconds`` of
            it, is silent, or contains NaN/Inf samples.
    """
    path = label or ("uploaded audio" if isinstance(source, bytes) else str(source))

    def opened() -> str | Path | BinaryIO:
        return io.BytesIO(source) if isinstance(source, bytes) else source

    try:
        samples, native_rate = _read_soundfile(opened(), max_seconds)
    except sf.LibsndfileError:
        samples, native_rate = _read_ffmpeg(opened(), path, max_seconds)
    mono = samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples
    if not np.isfinite(mono).all():
        raise AudioDecodeError(
            f"{path}: contains NaN or infinite samples; re-export it as ordinary PCM audio"
        )
    if native_rate != sample_rate and mono.size:
        mono = soxr.resample(mono, native_rate, sample_rate, quality="HQ")
    duration = mono.size / sample_rate
    if duration < min_seconds:
        raise AudioDecodeError(
            f"{path}: holds {duration:.3f} s of audio; at least {min_seconds} s is needed"
        )
    if float(np.abs(mono).max()) < SILENCE_PEAK:
        raise AudioDecodeError(f"{path}: is silent; there is nothing to index or search for")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _read_soundfile(
    source: str | Path | BinaryIO, max_seconds: float | None
) -> tuple[np.ndarray, int]:
    with sf.SoundFile(source) as audio:
        frames = -1 if max_seconds is None else int(max_seconds * audio.samplerate)
        return audio.read(frames, dtype="float32", always_2d=True), audio.samplerate


def _read_ffmpeg(
    source: str | Path | BinaryIO, path: str, max_seconds: float | None
) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only formats libsndfile cannot read need it

    try:
        with av.open(source if not isinstance(source, Path) else str(source)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path}: has no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            # Packed float frames come out as (1, samples * channels); reshape per frame.
            resampler = av.AudioResampler(format="flt", layout=stream.layout.name, rate=rate)
            channels = stream.codec_context.channels
            limit = None if max_seconds is None else int(max_seconds * rate)
            blocks: list[np.ndarray] = []
            decoded = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    block = out.to_ndarray().reshape(-1, channels)
                    blocks.append(block)
                    decoded += block.shape[0]
                if limit is not None and decoded >= limit:
                    break
    except AudioDecodeError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioDecodeError(
            f"{path}: not a readable audio file ({exc.__class__.__name__}: {exc}); "
            "supported: wav, flac, ogg, mp3, m4a/aac, opus and other FFmpeg formats"
        ) from None
    if not blocks:
        raise AudioDecodeError(f"{path}: holds no audio samples")
    samples = np.concatenate(blocks)
    return (samples if limit is None else samples[:limit]), rate
