"""The pretrained sound-effects encoder shipped by the ``aisfx`` package (ISMIR 2022).

Model: the ``EmbeddingNet`` CNN of "Representation Learning for the Automatic Indexing of Sound
Effects Libraries" (Ma et al., 2022), trained across nine sound-effect libraries. Code MIT,
weights CC BY 4.0, both by the aisfx authors. The network max-pools over time, so a whole 4 s
window goes through it at once and gives one 512-d vector.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib.resources import files
from pathlib import Path

import librosa
import numpy as np
import soxr
import torch
from numpy.lib.stride_tricks import sliding_window_view

from audiosearch.audio import SAMPLE_RATE
from audiosearch.encoders.base import WINDOW_SAMPLES, Clip, Piece, embed_pieces, split_rows
from audiosearch.encoders.model_files import sha256_of_file
from audiosearch.errors import ModelFileError

__all__ = ["CHECKPOINT_SHA256", "MODEL_RATE", "SfxEncoder", "checkpoint_path"]

#: sha256 of ``aisfx/models/checkpoint.pth`` in aisfx 0.1.2.
CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"

# The model's own front-end (aisfx.inference / spectrogram_librosa): 44.1 kHz, 2048-sample
# frames at 1024 hop, 96 HTK mel bands 0-22050 Hz with L1-normalised filters, power spectrum,
# log10(1 + 10^4 x), min-max scaled by the training set's range [0, 9.4578].
MODEL_RATE = 44_100
N_FFT = 2048
HOP = 1024
N_MELS = 96
LOG_SCALE_MAX = 9.457798957824707
#: Peak normalisation floor: quieter windows are not blown up into noise.
MIN_PEAK = 1e-3


def checkpoint_path() -> Path:
    """Where the installed aisfx package keeps its pretrained weights."""
    return Path(str(files("aisfx") / "models" / "checkpoint.pth"))


class SfxEncoder:
    """The :class:`~audiosearch.encoders.base.Encoder` around the aisfx pretrained CNN."""

    name = "sfx"
    dim = 512

    def __init__(self, *, batch_size: int = 32) -> None:
        from aisfx.models.cnn2d import EmbeddingNet

        path = checkpoint_path()
        if not path.is_file():
            raise ModelFileError(
                f"{path}: missing; install the sound-effects model with "
                "'pip install --no-deps aisfx==0.1.2'"
            )
        digest = sha256_of_file(path)
        if digest != CHECKPOINT_SHA256:
            raise ModelFileError(
                f"{path}: sha256 {digest[:12]}... is not aisfx 0.1.2's checkpoint "
                f"({CHECKPOINT_SHA256[:12]}...); reinstall 'pip install --no-deps aisfx==0.1.2'"
            )
        # The checkpoint pickles numpy scalars under their pre-2.0 module name; allow exactly those.
        allowed = [
            (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
            np.dtype,
            type(np.dtype("int64")),
        ]
        with torch.serialization.safe_globals(allowed):
            weights, _datasets = torch.load(path, map_location="cpu", weights_only=True)
        prefix = "embedding_net."
        net = EmbeddingNet("max", 3, 1, 64)
        net.load_state_dict(
            {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
        )
        # oneDNN's convolutions run ~1.4x faster with channels-last weights on CPU (batches of
        # 32 windows, 2 cores); outputs move by float32 round-off only (1e-7 relative).
        self.net = net.eval().to(memory_format=torch.channels_last)
        self.batch_size = batch_size
        self.version = f"aisfx-0.1.2-{CHECKPOINT_SHA256[:8]}"
        self._mel_basis = librosa.filters.mel(
            sr=MODEL_RATE,
            n_fft=N_FFT,
            n_mels=N_MELS,
            fmin=0.0,
            fmax=MODEL_RATE / 2,
            htk=True,
            norm=1.0,
        ).astype(np.float32)

    def log_mel(self, windows: np.ndarray) -> np.ndarray:
        """Model input for a batch of 44.1 kHz windows: ``(n, frames, 96)`` float32."""
        peaks = np.maximum(np.abs(windows).max(axis=1, keepdims=True), MIN_PEAK)
        spec = np.abs(librosa.stft(windows / peaks, n_fft=N_FFT, hop_length=HOP)) ** 2
        mel = np.einsum("mf,nft->ntm", self._mel_basis, spec, optimize=True)
        return (np.log10(mel * 10_000.0 + 1.0) / LOG_SCALE_MAX).astype(np.float32)

    def embed_windows(self, waveform: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """One 512-d vector per 4 s window of a 16 kHz waveform (see :class:`Encoder`)."""
        return self.embed_batch([(waveform, starts)])[0]

    def embed_batch(self, clips: Sequence[Clip]) -> list[np.ndarray]:
        """:meth:`embed_windows` for several clips, ``batch_size`` windows per forward pass.

        Batches run across clips; windows are cut a batch at a time, so a long clip never has
        all its (overlapping) windows copied out at once.
        """
        counts = [len(starts) for _, starts in clips]
        vectors = embed_pieces(
            self._window_pieces(clips), self._embed_16k_windows,
            rows=sum(counts), dim=self.dim, batch_size=self.batch_size,
        )  # fmt: skip
        return split_rows(vectors, counts)

    def _window_pieces(self, clips: Sequence[Clip]) -> Iterator[Piece]:
        """Up to ``batch_size`` windows ``(k, 64000)`` of a clip at a time, with their rows."""
        offset = 0
        for waveform, starts in clips:
            windows = sliding_window_view(np.asarray(waveform, np.float32), WINDOW_SAMPLES)
            for lo in range(0, len(starts), self.batch_size):
                some = np.asarray(starts[lo : lo + self.batch_size], dtype=np.int64)
                yield windows[some], offset + lo + np.arange(len(some))
            offset += len(starts)

    def _embed_16k_windows(self, windows: np.ndarray) -> np.ndarray:
        """Vectors ``(n, 512)`` of ``n`` 16 kHz windows ``(n, 64000)``."""
        # soxr resamples every channel on its own: the windows, given as the channels of one
        # signal, come out exactly as if resampled one by one, so no window sees its neighbours.
        upsampled = np.ascontiguousarray(soxr.resample(windows.T, SAMPLE_RATE, MODEL_RATE).T)
        with torch.inference_mode():
            return self.net(torch.from_numpy(self.log_mel(upsampled))).numpy()
