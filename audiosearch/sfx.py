"""The pretrained sound-effects encoder shipped by the ``aisfx`` package (ISMIR 2022).

Model: the ``EmbeddingNet`` CNN of "Representation Learning for the Automatic Indexing of Sound
Effects Libraries" (Ma et al., 2022), trained across nine sound-effect libraries. Code MIT,
weights CC BY 4.0, both by the aisfx authors. The network max-pools over time, so a whole 4 s
window goes through it at once and gives one 512-d vector.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path

import librosa
import numpy as np
import soxr
import torch

from audiosearch.audio import SAMPLE_RATE
from audiosearch.errors import ModelFileError
from audiosearch.segment import WINDOW_SECONDS

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
    """Encoder protocol implementation around the aisfx pretrained CNN."""

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
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
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
        self.net = net.eval()
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
        window = round(WINDOW_SECONDS * SAMPLE_RATE)
        # Resample each window on its own so a window's vector never depends on its neighbours.
        upsampled = np.stack(
            [soxr.resample(waveform[s : s + window], SAMPLE_RATE, MODEL_RATE) for s in starts]
        )
        out = np.empty((len(starts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(starts), self.batch_size):
                batch = self.log_mel(upsampled[lo : lo + self.batch_size])
                out[lo : lo + len(batch)] = self.net(torch.from_numpy(batch)).numpy()
        return out
