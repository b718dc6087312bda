"""Decode any common audio file to a mono float32 waveform at the service's sample rate.

Files are decoded block by block: each block is averaged to mono and resampled as it arrives
into one buffer sized from the length the file declares, so memory holds the decoded 16 kHz
audio once (never the file's own rate or channel count, never a second copy), and decoding
stops once ``max_seconds`` are in.

Before decoding, the container is checked from its headers and tail alone: a WAV (or AIFF, W64,
CAF, AU) whose header declares more audio than the file holds, or an Ogg stream without its
end-of-stream page, is a truncated copy, and a header claiming an impossible sample rate or
channel count is damaged; both are refused instead of being indexed as something they are not.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import soundfile as sf
import soxr

from audiosearch.errors import AudioDecodeError

__all__ = [
    "BLOCK_FRAMES",
    "MIN_SECONDS",
    "SAMPLE_RATE",
    "SILENCE_PEAK",
    "DecodedAudio",
    "decode_audio",
    "load_audio",
]

#: Every waveform inside the service is mono at this rate (VGGish's rate).
SAMPLE_RATE = 16_000
#: Shorter clips carry too little sound to describe; they are refused rather than looped 40 times.
MIN_SECONDS = 0.1
#: Peak amplitude under which a clip counts as silent (about -100 dBFS).
SILENCE_PEAK = 1e-5
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
#: Headers claiming a rate or channel count outside these are damaged (a WAV claiming 1 Hz
#: would otherwise be resampled into hours of garbage).
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
#: A WAV/AIFF/CAF/AU header may declare this much more audio than the file holds (or one block,
#: if more) before the file counts as truncated: a writer's miscount of a few bytes is no broken
#: copy, while a real one misses far more.
TRUNCATED_SLACK_SECONDS = 0.01
#: ``data`` sizes that streaming writers leave in a WAV header when they cannot seek back
#: (0: libsndfile and unfinished files; 0x7FFFF000: SoX; 0x7FFFFFFF: arecord; 0xFFFFFFFF:
#: FFmpeg): the length is unknown, not overstated, and libsndfile reads to the file's end.
WAV_UNKNOWN_SIZES = frozenset({0, 0x7FFF_F000, 0x7FFF_FFFF, 0xFFFF_FFFF})
#: Bytes read from an Ogg file's end to find its last complete page: two of the longest pages
#: (27 + 255 + 255 * 255 bytes), so the last complete one fits beside a page cut short.
OGG_TAIL_BYTES = 2 * 65_307
#: Candidate pages whose checksum is tried before the tail counts as not Ogg (bounds the work
#: a crafted tail full of "OggS" can cause).
OGG_MAX_CANDIDATES = 64
#: Chunks walked in a WAV/AIFF/CAF header before giving up on finding its audio (a crafted
#: file of millions of empty chunks must not cost a walk through all of them).
MAX_CHUNKS = 1_000


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded file: its waveform and how much of the file it covers."""

    #: Mono float32 at the requested rate.
    waveform: np.ndarray
    #: Decoding stopped at ``max_seconds`` while the file holds more audio.
    capped: bool
    #: The length the file's header or container declares, in seconds, when it declares one.
    declared_seconds: float | None


def load_audio(
    source: str | Path | bytes,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    min_seconds: float = MIN_SECONDS,
    label: str | None = None,
) -> np.ndarray:
    """Decode ``source`` (a file path, or a whole file's bytes) to mono float32 at ``sample_rate``.

    The waveform of :func:`decode_audio`, which documents the arguments and the errors; use that
    to learn whether ``max_seconds`` cut the file short.
    """
    return decode_audio(
        source, sample_rate=sample_rate, max_seconds=max_seconds, min_seconds=min_seconds,
        label=label,
    ).waveform  # fmt: skip


def decode_audio(
    source: str | Path | bytes,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    min_seconds: float = MIN_SECONDS,
    label: str | None = None,
) -> DecodedAudio:
    """Decode ``source`` (a file path, or a whole file's bytes) to mono float32 at ``sample_rate``.

    WAV, FLAC, OGG/Vorbis and MP3 are read by libsndfile; anything else it cannot open (M4A/AAC,
    Opus, WMA, ...) goes through FFmpeg (PyAV). Channels are averaged, and the rate is converted
    with soxr's high-quality resampler. Only the first ``max_seconds`` are decoded when given;
    the rest of the file is never read (bar one frame, to tell whether there is more: ``capped``).

    Error messages start with ``label``, by default the path (or "uploaded audio" for bytes).

    Raises:
        AudioDecodeError: the file is empty, not decodable audio, truncated (its header or
            container declares more than it holds), has a header claiming an impossible sample
            rate or channel count, holds fewer than ``min_seconds`` of audio, is silent, or
            contains NaN/Inf samples.
    """
    label = label or ("uploaded audio" if isinstance(source, bytes) else str(source))
    try:
        size = len(source) if isinstance(source, bytes) else os.stat(source).st_size
        if size:
            _refuse_truncated_container(source, size, label)
    except OSError as exc:
        raise AudioDecodeError(f"{label}: cannot be read ({exc.strerror}); check the path") from exc
    if size == 0:
        raise AudioDecodeError(f"{label}: is an empty file (0 bytes); send a file with audio in it")

    def opened() -> str | Path | BinaryIO:
        return io.BytesIO(source) if isinstance(source, bytes) else source

    def collector(native_rate: int, channels: int, declared_frames: int | None) -> _MonoCollector:
        _refuse_implausible_header(native_rate, channels, label)
        return _MonoCollector(native_rate, sample_rate, max_seconds, label, declared_frames)

    try:
        mono, declared = _read_soundfile(opened(), collector)
    except sf.LibsndfileError:
        mono, declared = _read_ffmpeg(opened(), collector, label)
    if not mono.capped and declared:
        _refuse_short_audio(declared, mono.seconds, label)
    waveform = mono.waveform()
    _refuse_too_little_sound(waveform, sample_rate, min_seconds, label)
    return DecodedAudio(waveform, mono.capped, declared)


def _refuse_short_audio(declared: float, decoded: float, label: str) -> None:
    """Refuse audio that stops well before the length (s) its header or container declares.

    libsndfile's frame count is the header's (MP3: its Xing/Info header or an estimate);
    FFmpeg's is the stream's or container's duration.
    """
    if declared - decoded > max(TRUNCATED_SHARE * declared, TRUNCATED_MIN_SECONDS):
        raise AudioDecodeError(
            f"{label}: is truncated: its header declares {declared:.1f} s but the audio "
            f"stops after {decoded:.1f} s; copy or download the file again"
        )


def _refuse_too_little_sound(
    waveform: np.ndarray, sample_rate: int, min_seconds: float, label: str
) -> None:
    """Refuse a waveform shorter than ``min_seconds``, or silent."""
    duration = waveform.size / sample_rate
    if duration < min_seconds:
        raise AudioDecodeError(
            f"{label}: holds {duration:.3f} s of audio; at least {min_seconds} s is needed, "
            "send a longer clip"
        )
    # np.abs would copy it whole
    if max(float(waveform.max()), -float(waveform.min())) < SILENCE_PEAK:
        raise AudioDecodeError(
            f"{label}: is silent (peak below -100 dBFS); there is nothing to index or search for"
        )


def _refuse_implausible_header(native_rate: int, channels: int, label: str) -> None:
    """Refuse a sample rate or channel count no audio file has: the header is damaged."""
    if not MIN_SAMPLE_RATE <= native_rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            f"{label}: its header claims a sample rate of {native_rate:,} Hz; audio files have "
            f"{MIN_SAMPLE_RATE:,}-{MAX_SAMPLE_RATE:,} Hz: the header is damaged, re-export the file"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioDecodeError(
            f"{label}: its header claims {channels:,} channels; audio files have 1-{MAX_CHANNELS}:"
            " the header is damaged, re-export the file"
        )


class _MonoCollector:
    """Turns blocks of ``(frames, channels)`` samples at a file's rate into one mono waveform.

    Each block is averaged to mono, checked for NaN/Inf and resampled as a stream (soxr's
    streaming output equals its one-shot output), so only 16 kHz mono audio accumulates. It
    accumulates in one buffer sized from ``declared_frames`` (the header's length, at the file's
    rate), grown by half when a header understates it, so the waveform is never copied whole.
    Past ``max_seconds`` it takes nothing, but notes that there was more (``capped``).
    """

    def __init__(
        self, native_rate: int, sample_rate: int, max_seconds: float | None, label: str,
        declared_frames: int | None,
    ) -> None:  # fmt: skip
        self.label = label
        self.max_frames = None if max_seconds is None else round(max_seconds * native_rate)
        self.frames = 0
        self.capped = False
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
    def wanted(self) -> int:
        """Frames to read next: a block, or up to one past the cap (so ``capped`` can be told)."""
        if self.max_frames is None:
            return BLOCK_FRAMES
        return min(BLOCK_FRAMES, self.max_frames - self.frames + 1)

    @property
    def seconds(self) -> float:
        """Audio taken so far, in seconds."""
        return self.frames / self.native_rate

    def add(self, block: np.ndarray) -> None:
        """Take a ``(frames, channels)`` float32 block, or the part of it under the cap."""
        if self.max_frames is not None and block.shape[0] > self.max_frames - self.frames:
            self.capped = True
            block = block[: self.max_frames - self.frames]
            if not block.shape[0]:
                return
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
    source: str | Path | BinaryIO, collector: Callable[[int, int, int | None], _MonoCollector]
) -> tuple[_MonoCollector, float | None]:
    """Decode with libsndfile: the collected audio, and the length the header declares (s)."""
    with sf.SoundFile(source) as audio:
        mono = collector(audio.samplerate, audio.channels, audio.frames or None)
        while not mono.capped:
            block = audio.read(mono.wanted, dtype="float32", always_2d=True)
            if not block.shape[0]:
                break
            mono.add(block)
        return mono, (audio.frames / audio.samplerate) or None


def _read_ffmpeg(
    source: str | Path | BinaryIO,
    collector: Callable[[int, int, int | None], _MonoCollector],
    label: str,
) -> tuple[_MonoCollector, float | None]:
    """Decode with FFmpeg: the collected audio, and the length the stream or container declares."""
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
            # The audio stream's own duration, else the container's (which a longer video
            # stream may set), when either is known.
            if stream.duration and stream.time_base:
                declared = float(stream.duration * stream.time_base)
            else:
                declared = container.duration and container.duration / 10**6
            rate = codec.sample_rate
            mono = collector(rate, channels, round(declared * rate) if declared else None)
            # Packed float frames come out as (1, samples * channels); reshape per frame.
            resampler = av.AudioResampler(
                format="flt", layout=codec.layout.name, rate=codec.sample_rate
            )
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    mono.add(out.to_ndarray().reshape(-1, channels))
                if mono.capped:
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
    return mono, declared or None


class _Extent(NamedTuple):
    """What a PCM-style container's header says of its audio data, beside what the file holds."""

    declared: int  # audio bytes the header declares
    present: int  # audio bytes in the file after the data chunk's start
    block: int  # bytes per frame (all channels), or per packet; 0 when unknown
    bytes_per_second: float  # 0 when unknown


def _refuse_truncated_container(source: str | Path | bytes, size: int, label: str) -> None:
    """Refuse a file whose container shows it was cut short, reading only its headers or tail.

    WAV (RIFF, RIFX, RF64, BW64), Wave64, AIFF, CAF and AU declare their audio's size: holding
    less is truncation (libsndfile would silently take the length from the file's size). An Ogg
    stream (Vorbis, Opus, FLAC) ends with a page flagged end-of-stream: a file whose last
    complete page lacks it stops early. Anything else, or a header too damaged to read, is left
    to the decoders and to the declared-length check after decoding.
    """
    if isinstance(source, bytes):
        file: BinaryIO = io.BytesIO(source)
    elif os.path.isfile(source):  # not a pipe or device: reading it could block or never end
        file = open(source, "rb")  # noqa: SIM115 (closed below)
    else:
        return
    with file:
        head = file.read(40)
        if head[:4] == b"OggS":
            if _ogg_ends_its_stream(file, size) is False:
                raise AudioDecodeError(
                    f"{label}: is truncated: its Ogg stream stops without its end-of-stream page; "
                    "copy or download the file again"
                )
            return
        extent = _declared_extent(file, size, head)
    if extent is None:
        return
    rate = extent.bytes_per_second
    if extent.declared - extent.present <= max(extent.block, TRUNCATED_SLACK_SECONDS * rate, 1):
        return
    present = max(extent.present, 0)
    if rate:
        claim = f"{extent.declared / rate:.2f} s of audio but the file holds {present / rate:.2f} s"
    else:
        claim = f"{extent.declared:,} bytes of audio but the file holds {present:,}"
    raise AudioDecodeError(
        f"{label}: is truncated: its header declares {claim}; copy or download the file again"
    )


_RIFF = struct.Struct("<4sI")
_RIFX = struct.Struct(">4sI")
_W64 = struct.Struct("<16sQ")
_CAF = struct.Struct(">4sq")
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
#: AU encodings (1: mu-law, 2-5: 8-32-bit PCM, 6: float, 7: double, 27: A-law): bytes a sample.
_AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}


def _declared_extent(file: BinaryIO, size: int, head: bytes) -> _Extent | None:
    """The audio data's declared and present size, for the containers that declare one."""
    magic, form = head[:4], head[8:12]
    if magic in (b"RIFF", b"RF64", b"BW64") and form == b"WAVE":
        return _wave_extent(_chunks(file, size, 12, _RIFF, align=2), file, size, "<")
    if magic == b"RIFX" and form == b"WAVE":
        return _wave_extent(_chunks(file, size, 12, _RIFX, align=2), file, size, ">")
    if head[:16] == _W64_RIFF:  # Sony Wave64: GUID chunk ids, sizes counting the 24-byte header
        return _wave_extent(_chunks(file, size, 40, _W64, align=8, counted=24), file, size, "<")
    if magic == b"FORM" and form in (b"AIFF", b"AIFC"):
        return _aiff_extent(file, size)
    if magic == b"caff":
        return _caf_extent(file, size)
    if magic == b".snd" and len(head) >= 24:
        offset, length, encoding, rate, channels = struct.unpack(">5I", head[4:24])
        if length == 0xFFFF_FFFF:  # unknown: written to a pipe
            return None
        block = _AU_SAMPLE_BYTES.get(encoding, 0) * channels
        return _Extent(length, size - offset, block, block * rate)
    return None


def _chunks(
    file: BinaryIO, size: int, offset: int, header: struct.Struct, *, align: int, counted: int = 0
) -> Iterator[tuple[bytes, int, int]]:
    """(id, body offset, declared body size) of each chunk from ``offset`` on, seeking past
    bodies; ``counted`` header bytes are included in each size. Stops at the file's end, at a
    size that cannot be walked past, or after MAX_CHUNKS (real files hold a handful)."""
    for _ in range(MAX_CHUNKS):
        if offset + header.size > size:
            return
        file.seek(offset)
        chunk_id, length = header.unpack(file.read(header.size))
        body, length = offset + header.size, length - counted
        if length < 0:
            return
        yield chunk_id, body, length
        offset = body + length + (-length % align)


def _wave_extent(
    chunks: Iterator[tuple[bytes, int, int]], file: BinaryIO, size: int, endian: str
) -> _Extent | None:
    """WAV and Wave64: the ``data`` chunk against the file; rates from ``fmt ``; RF64's
    ``ds64`` holds the real size of a ``data`` chunk whose 32-bit size reads 0xFFFFFFFF."""
    block = byte_rate = 0
    long_size = None
    for chunk_id, body, length in chunks:
        kind = chunk_id[:4]
        file.seek(body)
        if kind == b"fmt ":
            raw = file.read(14)
            if len(raw) == 14:
                byte_rate, block = struct.unpack(endian + "8xIH", raw)
        elif kind == b"ds64":
            raw = file.read(16)
            if len(raw) == 16:
                long_size = struct.unpack("<8xQ", raw)[0]
        elif kind == b"data":
            if length == 0xFFFF_FFFF and long_size is not None:
                length = long_size
            elif length in WAV_UNKNOWN_SIZES:
                return None
            return _Extent(length, size - body, block, byte_rate)
    return None


def _aiff_extent(file: BinaryIO, size: int) -> _Extent | None:
    """AIFF/AIFC: the ``SSND`` chunk against the file; frames and rate from ``COMM``."""
    block, seconds = 0, 0.0
    for chunk_id, body, length in _chunks(file, size, 12, _RIFX, align=2):
        file.seek(body)
        if chunk_id == b"COMM":
            raw = file.read(18)
            if len(raw) == 18:
                channels, frames, bits, exponent, mantissa = struct.unpack(">hIhHQ", raw)
                block = max(channels, 0) * math.ceil(max(bits, 0) / 8)
                exponent &= 0x7FFF  # an 80-bit float: 15-bit exponent, 64-bit mantissa
                rate = math.ldexp(mantissa, exponent - 16_383 - 63) if exponent < 16_500 else 0
                seconds = frames / rate if rate else 0.0
        elif chunk_id == b"SSND":
            raw = file.read(4)
            if len(raw) < 4:
                return None
            skip = 8 + struct.unpack(">I", raw)[0]  # offset and block size, then the offset
            declared = length - skip
            byte_rate = declared / seconds if seconds else 0.0
            return _Extent(declared, size - body - skip, block, byte_rate)
    return None


def _caf_extent(file: BinaryIO, size: int) -> _Extent | None:
    """CAF: the ``data`` chunk (after its 4-byte edit count) against the file; rates from
    ``desc``. A ``data`` size of -1 means "to the end of the file"."""
    block, byte_rate = 0, 0.0
    for chunk_id, body, length in _chunks(file, size, 8, _CAF, align=1):
        file.seek(body)
        if chunk_id == b"desc":
            raw = file.read(24)
            if len(raw) == 24:
                rate, _, _, block, frames_per_packet = struct.unpack(">d4sIII", raw)
                if block and frames_per_packet and math.isfinite(rate) and rate > 0:
                    byte_rate = block * rate / frames_per_packet
        elif chunk_id == b"data":
            return _Extent(length - 4, size - body - 4, block, byte_rate)
    return None  # the walk stops at a size of -1 too: negative sizes end it


#: Bit order reversed within each byte: Ogg's CRC is zlib's CRC-32 run on mirrored bits.
_MIRRORED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, starting at 0)."""
    reflected = zlib.crc32(page.translate(_MIRRORED), 0xFFFF_FFFF) ^ 0xFFFF_FFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _ogg_ends_its_stream(file: BinaryIO, size: int) -> bool | None:
    """Whether the file's last complete Ogg page (checksum verified) is flagged end-of-stream;
    None when the tail holds no complete page (not Ogg, or too damaged to tell)."""
    start = max(0, size - OGG_TAIL_BYTES)
    file.seek(start)
    tail = file.read(size - start)
    end, tried = len(tail), 0
    while tried < OGG_MAX_CANDIDATES:
        at = tail.rfind(b"OggS", 0, end)
        if at < 0:
            return None
        end = at + 3  # the next candidate starts before this one
        if len(tail) - at < 27 or tail[at + 4] != 0:  # no whole header, or not version 0
            continue
        segments = tail[at + 26]
        lacing = tail[at + 27 : at + 27 + segments]
        page_end = at + 27 + segments + sum(lacing)
        if len(lacing) < segments or page_end > len(tail):  # cut short, or "OggS" in a packet
            continue
        tried += 1
        page = tail[at:page_end]
        checksum = int.from_bytes(page[22:26], "little")
        if _ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) == checksum:
            return bool(page[5] & 0x04)
    return None
