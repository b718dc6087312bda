"""Decode any common audio file to a mono float32 waveform at the service's sample rate.

Files are decoded block by block: each block is averaged to mono and resampled as it arrives
into one buffer sized from the length the file declares, so memory holds the decoded 16 kHz
audio once (never the file's own rate or channel count, never a second copy), and decoding
stops once ``max_seconds`` are in.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
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
#: The service decodes at most this much of a file (flow.yml: segmenter ``max_seconds``).
MAX_SECONDS = 600.0
#: Frames read per block, at the file's own rate: 1.4 s at 48 kHz.
BLOCK_FRAMES = 65_536
#: Audio that stops short of the length its header declares by more than this share (and by
#: more than TRUNCATED_MIN_SECONDS) is a truncated file: a broken download or copy.
TRUNCATED_SHARE = 0.1
TRUNCATED_MIN_SECONDS = 0.5
#: Seconds of room made at first for a file whose header declares no length, and at most for
#: one that declares a length (a damaged header may claim days); past it the buffer grows.
UNDECLARED_SECONDS = 60
MAX_DECLARED_SECONDS = 4 * 3600


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
    with soxr's high-quality resampler. Only the first ``max_seconds`` are decoded when given;
    the rest of the file is never read.

    Error messages start with ``label``, by default the path (or "uploaded audio" for bytes).

    Raises:
        AudioDecodeError: the file is empty, not decodable audio, truncated, holds fewer than
            ``min_seconds`` of audio, is silent, or contains NaN/Inf samples.
    """
    label = label or ("uploaded audio" if isinstance(source, bytes) else str(source))
    try:
        size = len(source) if isinstance(source, bytes) else os.stat(source).st_size
    except OSError as exc:
        raise AudioDecodeError(f"{label}: cannot be read ({exc.strerror}); check the path") from exc
    if size == 0:
        raise AudioDecodeError(f"{label}: is an empty file (0 bytes); send a file with audio in it")

    def opened() -> str | Path | BinaryIO:
        return io.BytesIO(source) if isinstance(source, bytes) else source

    def collector(native_rate: int, declared_frames: int | None) -> _MonoCollector:
        return _MonoCollector(native_rate, sample_rate, max_seconds, label, declared_frames)

    try:
        mono = _read_soundfile(opened(), collector, label)
    except sf.LibsndfileError:
        mono = _read_ffmpeg(opened(), collector, label)
    duration = mono.size / sample_rate
    if duration < min_seconds:
        raise AudioDecodeError(
            f"{label}: holds {duration:.3f} s of audio; at least {min_seconds} s is needed, "
            "send a longer clip"
        )
    if max(float(mono.max()), -float(mono.min())) < SILENCE_PEAK:  # np.abs would copy it whole
        raise AudioDecodeError(
            f"{label}: is silent (peak below -100 dBFS); there is nothing to index or search for"
        )
    return mono


class _MonoCollector:
    """Turns blocks of ``(frames, channels)`` samples at a file's rate into one mono waveform.

    Each block is averaged to mono, checked for NaN/Inf and resampled as a stream (soxr's
    streaming output equals its one-shot output), so only 16 kHz mono audio accumulates. It
    accumulates in one buffer sized from ``declared_frames`` (the header's length, at the file's
    rate), grown by half when a header understates it, so the waveform is never copied whole.
    """

    def __init__(
        self, native_rate: int, sample_rate: int, max_seconds: float | None, label: str,
        declared_frames: int | None,
    ) -> None:  # fmt: skip
        self.label = label
        self.max_frames = None if max_seconds is None else round(max_seconds * native_rate)
        self.frames = 0
        self.native_rate = native_rate
        expected = min(
            declared_frames or UNDECLARED_SECONDS * native_rate, MAX_DECLARED_SECONDS * native_rate
        )
        if self.max_frames is not None:
            expected = min(expected, self.max_frames)
        # 1 s spare: the resampler's rounding never makes a correct header cost a regrowth.
        self.spare = sample_rate
        self.buffer = np.empty(round(expected * sample_rate / native_rate) + self.spare, np.float32)
        self.size = 0
        self.stream = (
            None
            if native_rate == sample_rate
            else soxr.ResampleStream(native_rate, sample_rate, 1, dtype="float32", quality="HQ")
        )

    @property
    def full(self) -> bool:
        """Whether ``max_seconds`` of audio are in."""
        return self.max_frames is not None and self.frames >= self.max_frames

    @property
    def seconds(self) -> float:
        """Audio taken so far, in seconds."""
        return self.frames / self.native_rate

    def add(self, block: np.ndarray) -> None:
        """Take a ``(frames, channels)`` float32 block, or the part of it under the cap."""
        if self.max_frames is not None:
            block = block[: self.max_frames - self.frames]
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        if not np.isfinite(mono).all():
            raise AudioDecodeError(
                f"{self.label}: contains NaN or infinite samples; "
                "re-export it as ordinary PCM audio"
            )
        self.frames += mono.shape[0]
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        self._append(self.stream.resample_chunk(mono) if self.stream else mono)

    def _append(self, samples: np.ndarray) -> None:
        end = self.size + samples.size
        if end > self.buffer.size:
            grown = np.empty(max(end, self.buffer.size * 3 // 2), np.float32)
            grown[: self.size] = self.buffer[: self.size]
            self.buffer = grown
        self.buffer[self.size : end] = samples
        self.size = end

    def waveform(self) -> np.ndarray:
        """Everything taken, as one contiguous float32 array at the service's rate."""
        if self.stream:
            self._append(self.stream.resample_chunk(np.zeros(0, np.float32), last=True))
        kept = self.buffer[: self.size]
        # A view, unless a header overstated the length by much: then the unused tail goes.
        return kept.copy() if self.buffer.size > self.size + self.size // 8 + self.spare else kept


def _read_soundfile(
    source: str | Path | BinaryIO, collector: Callable[[int], _MonoCollector], label: str
) -> np.ndarray:
    with sf.SoundFile(source) as audio:
        mono = collector(audio.samplerate, audio.frames or None)
        while not mono.full:
            block = audio.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            if not block.shape[0]:
                break
            mono.add(block)
        declared = audio.frames / audio.samplerate
    # libsndfile's frame count is the header's (MP3: its Xing/Info header or an estimate).
    missing = declared - mono.seconds
    if not mono.full and missing > max(TRUNCATED_SHARE * declared, TRUNCATED_MIN_SECONDS):
        raise AudioDecodeError(
            f"{label}: is truncated: its header declares {declared:.1f} s but the audio stops "
            f"after {mono.seconds:.1f} s; copy or download the file again"
        )
    return mono.waveform()


def _read_ffmpeg(
    source: str | Path | BinaryIO, collector: Callable[[int], _MonoCollector], label: str
) -> np.ndarray:
    import av  # imported lazily: only formats libsndfile cannot read need it

    mono = None
    try:
        with av.open(source if not isinstance(source, Path) else str(source)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{label}: has no audio stream; send an audio file")
            stream = container.streams.audio[0]
            codec = stream.codec_context
            if codec is None or not codec.sample_rate:
                raise AudioDecodeError(
                    f"{label}: its audio codec is unknown or damaged; re-export it as wav or flac"
                )
            channels = codec.layout.nb_channels
            # Packed float frames come out as (1, samples * channels); reshape per frame.
            resampler = av.AudioResampler(
                format="flt", layout=codec.layout.name, rate=codec.sample_rate
            )
            # The container's duration (microseconds) when it knows one.
            declared = container.duration and container.duration * codec.sample_rate // 10**6
            mono = collector(codec.sample_rate, declared or None)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    mono.add(out.to_ndarray().reshape(-1, channels))
                if mono.full:
                    break
    except AudioDecodeError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        reason = f"{exc.__class__.__name__}: {exc}"
        if mono is not None and mono.frames:
            raise AudioDecodeError(
                f"{label}: is damaged or truncated: decoding stopped after {mono.seconds:.1f} s "
                f"({reason}); copy or re-export the file"
            ) from None
        raise AudioDecodeError(
            f"{label}: not a readable audio file ({reason}); "
            "supported: wav, flac, ogg, mp3, m4a/aac, opus and other FFmpeg formats"
        ) from None
    if mono is None or not mono.frames:
        raise AudioDecodeError(f"{label}: holds no audio samples; send a file with audio in it")
    return mono.waveform()
