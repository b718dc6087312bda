"""VGGish, exactly as published: Google's log-mel front-end, the network and the AudioSet PCA.

Reference: tensorflow/models ``research/audioset/vggish`` (``mel_features.py``,
``vggish_input.py``, ``vggish_postprocess.py``) and its PyTorch port torchvggish 0.2, whose
released checkpoints this module loads unchanged (same state-dict keys and shapes).

Why this module follows torchvggish without importing it: each part of it differs where this
service needs something else. Its network always applies a ReLU after the last layer, which
Google's VGGish dropped (see :class:`VGGishNetwork`); its ``Postprocessor`` downloads the PCA file
from GitHub when it is built (no offline start, no checksum) and rounds where Google's code
truncates; its front-end takes the STFT of a whole input at once, where this one works in blocks
and slices one log-mel for all the overlapping windows of a file. And importing any part runs its
package ``__init__``, which loads resampy and numba (with its LLVM library, tens of MB resident)
into the encoder process. torchvggish stays a development requirement: the tests and
``bench/index_throughput.py`` compare this module with it.

Front-end: numpy float64, as the reference, equal to it up to the float32 rounding of the output
(2e-7). A torch float32 front-end runs about 3x faster but strays up to 4.3e-4 from the reference
on the 1 kHz smoke-test tone: quiet mel bands sit near the 0.01 log offset, where float32 FFT
round-off from the loud bin shows. The front-end takes about 1 % of the network's time, so
exactness wins. It works in blocks of frames so that an hour of audio never builds a
gigabyte-sized STFT.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from audiosearch.encoders.base import WINDOW_SAMPLES, Clip, Piece, embed_pieces, split_rows
from audiosearch.encoders.model_files import (
    VGGISH_PCA_PARAMS,
    VGGISH_WEIGHTS,
    ShapeSpec,
    load_checkpoint,
    verify_model_file,
)
from audiosearch.errors import InvalidInputError

__all__ = [
    "EMBEDDING_DIM",
    "PCA_STATE_SHAPES",
    "SMOKE_EXPECTED",
    "VGGISH_NUM_PARAMETERS",
    "VGGISH_STATE_SHAPES",
    "VGGishEncoder",
    "VGGishNetwork",
    "dequantize",
    "load_pca_params",
    "log_mel_spectrogram",
    "mel_matrix",
    "num_frames",
    "pca_project",
    "postprocess",
    "quantize",
    "smoke_test",
    "to_float_waveform",
    "waveform_to_examples",
    "window_examples",
]

# --- Reference constants (vggish_params.py) -----------------------------------------------
SAMPLE_RATE = 16000
STFT_WINDOW_SAMPLES = 400  # 25 ms
STFT_HOP_SAMPLES = 160  # 10 ms
FFT_LENGTH = 512  # next power of two above the window -> 257 bins
NUM_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s per example, hop 96 frames
EMBEDDING_SIZE = 128
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0

# --- This service's windows: WINDOW_SAMPLES (4 s) give 398 frames, exactly 4 examples ----------
EXAMPLES_PER_WINDOW = 4
WINDOW_FRAMES = EXAMPLES_PER_WINDOW * EXAMPLE_FRAMES
EMBEDDING_DIM = EXAMPLES_PER_WINDOW * EMBEDDING_SIZE  # 512

#: Floats beyond this are integer PCM that skipped the /32768 scaling (a real bug upstream).
_MAX_FLOAT_PEAK = 8.0
_BLOCK_FRAMES = 4096  # ~17 MB of complex128 STFT per block

#: State-dict keys and shapes of torchvggish's VGG (and of the v0.1 release checkpoint).
VGGISH_STATE_SHAPES: dict[str, ShapeSpec] = {
    "features.0.weight": (64, 1, 3, 3),
    "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3),
    "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3),
    "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3),
    "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3),
    "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3),
    "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 512 * 4 * 6),
    "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (EMBEDDING_SIZE, 4096),
    "embeddings.4.bias": (EMBEDDING_SIZE,),
}
VGGISH_NUM_PARAMETERS = 72_141_184

#: Keys of the PCA params file (vggish_params.PCA_EIGEN_VECTORS_NAME / PCA_MEANS_NAME). The
#: means are stored flat in the AudioSet npz; (128, 1) is accepted too.
PCA_STATE_SHAPES: dict[str, ShapeSpec] = {
    "pca_eigen_vectors": (EMBEDDING_SIZE, EMBEDDING_SIZE),
    "pca_means": [(EMBEDDING_SIZE,), (EMBEDDING_SIZE, 1), (1, EMBEDDING_SIZE)],
}

#: tensorflow/models vggish_smoke_test.py: 3 s of a 1 kHz sine at 16 kHz, checked within 10 %.
SMOKE_EXPECTED = {
    "embedding_mean": 0.000657,
    "embedding_std": 0.343,
    "postprocessed_mean": 126.0,
    "postprocessed_std": 89.3,
}
SMOKE_RTOL = 0.1


# === Front-end ==================================================================================


def to_float_waveform(waveform: np.ndarray) -> np.ndarray:
    """Return ``waveform`` as a 1-D float array in [-1, 1], the only place int16 is scaled.

    int16 PCM is divided by 32768 (exact in float32); float32/float64 input is taken as already
    in [-1, 1] and returned without a copy (never divided again). Raises InvalidInputError for
    other dtypes, more than one dimension, non-finite samples, or floats far above full scale
    (integer PCM stored as float: the double-scaling bug's mirror image).
    """
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise InvalidInputError(f"waveform must be 1-D mono, got shape {x.shape}")
    if x.dtype == np.int16:
        return x.astype(np.float32) / np.float32(32768.0)
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    elif x.dtype not in (np.float32, np.float64):
        raise InvalidInputError(f"waveform must be int16 or float32/float64, got {x.dtype}")
    if x.size:
        peak = max(float(x.max()), -float(x.min()))  # two passes, no |x| temporary
        if not np.isfinite(peak):
            raise InvalidInputError("waveform contains NaN or infinite samples")
        if peak > _MAX_FLOAT_PEAK:
            raise InvalidInputError(
                f"float waveform peaks at {peak:.1f}; expected [-1, 1] (integer PCM must be "
                "passed as int16 or divided by 32768 once)"
            )
    return x


def num_frames(num_samples: int) -> int:
    """STFT frames in ``num_samples``: 1 + floor((N - 400) / 160), no padding (0 if N < 400)."""
    if num_samples < STFT_WINDOW_SAMPLES:
        return 0
    return 1 + (num_samples - STFT_WINDOW_SAMPLES) // STFT_HOP_SAMPLES


@functools.cache
def _periodic_hann() -> np.ndarray:
    n = np.arange(STFT_WINDOW_SAMPLES)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi / STFT_WINDOW_SAMPLES * n)
    window.flags.writeable = False
    return window


def _hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


@functools.cache
def _mel_matrix() -> np.ndarray:
    num_bins = FFT_LENGTH // 2 + 1
    bins_mel = _hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2.0, num_bins))
    edges = np.linspace(_hertz_to_mel(MEL_MIN_HZ), _hertz_to_mel(MEL_MAX_HZ), NUM_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    # Triangles on the mel scale, no area normalisation (reference spectrogram_to_mel_matrix).
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    matrix = np.maximum(0.0, np.minimum(rising, falling))
    matrix[0, :] = 0.0  # the reference zeroes the DC row
    matrix.flags.writeable = False
    return matrix


def mel_matrix() -> np.ndarray:
    """The reference 257 x 64 float64 mel weight matrix (a copy; safe to modify)."""
    return _mel_matrix().copy()


def _log_mel(x: np.ndarray) -> np.ndarray:
    """Log-mel of an already validated float waveform, computed in blocks of frames."""
    total = num_frames(len(x))
    out = np.empty((total, NUM_BANDS), dtype=np.float32)
    window, matrix = _periodic_hann(), _mel_matrix()
    for first in range(0, total, _BLOCK_FRAMES):
        count = min(_BLOCK_FRAMES, total - first)
        start = first * STFT_HOP_SAMPLES
        stop = start + (count - 1) * STFT_HOP_SAMPLES + STFT_WINDOW_SAMPLES
        # float64 throughout, as the reference: float32 FFTs drift by up to 4e-4 (see top).
        segment = np.asarray(x[start:stop], dtype=np.float64)
        frames = sliding_window_view(segment, STFT_WINDOW_SAMPLES)[::STFT_HOP_SAMPLES]
        magnitude = np.abs(np.fft.rfft(frames * window, FFT_LENGTH))
        out[first : first + count] = np.log(magnitude @ matrix + LOG_OFFSET)
    return out


def log_mel_spectrogram(waveform: np.ndarray) -> np.ndarray:
    """Reference VGGish log-mel of a 16 kHz mono waveform: float32 ``(num_frames(N), 64)``.

    ``waveform`` is float in [-1, 1] or int16 (see :func:`to_float_waveform`).
    """
    return _log_mel(to_float_waveform(waveform))


def waveform_to_examples(waveform: np.ndarray) -> np.ndarray:
    """Reference ``vggish_input.waveform_to_examples`` at 16 kHz: float32 ``(n, 96, 64)``.

    Examples are 96 frames with hop 96; frames left over at the end are dropped.
    """
    log_mel = log_mel_spectrogram(waveform)
    count = len(log_mel) // EXAMPLE_FRAMES
    return log_mel[: count * EXAMPLE_FRAMES].reshape(count, EXAMPLE_FRAMES, NUM_BANDS)


def _check_starts(starts: Sequence[int] | np.ndarray, num_samples: int) -> np.ndarray:
    s = np.asarray(starts)
    if s.ndim != 1:
        raise InvalidInputError(f"starts must be 1-D, got shape {s.shape}")
    if s.size == 0:
        return s.astype(np.int64)
    integral = s.dtype.kind in "iu" or (s.dtype.kind == "f" and np.all(s == np.round(s)))
    if not integral:
        raise InvalidInputError("starts must be integer sample offsets")
    s = s.astype(np.int64)
    if s.min() < 0 or s.max() + WINDOW_SAMPLES > num_samples:
        raise InvalidInputError(
            f"every window [s, s + {WINDOW_SAMPLES}) must lie inside the {num_samples}-sample "
            f"waveform; got starts from {s.min()} to {s.max()}"
        )
    return s


def window_examples(waveform: np.ndarray, starts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Examples of the 4 s windows at ``starts``: float32 ``(len(starts), 4, 96, 64)``.

    Equal, value for value, to :func:`waveform_to_examples` of each 64,000-sample chunk. Meant
    for inspection and tests; :meth:`VGGishEncoder.embed_windows` does the same batch by batch.
    """
    x, s = _checked_clip(waveform, starts)
    out = np.empty((len(s), EXAMPLES_PER_WINDOW, EXAMPLE_FRAMES, NUM_BANDS), dtype=np.float32)
    for indices, log_mel, first_frames in _frame_groups(x, s):
        out[indices] = _examples_at(log_mel, first_frames)
    return out


def _checked_clip(waveform: np.ndarray, starts: Sequence[int] | np.ndarray) -> Clip:
    """``waveform`` as floats and ``starts`` as int64, both checked (see the two checks)."""
    x = to_float_waveform(waveform)
    return x, _check_starts(starts, len(x))


def _examples_at(log_mel: np.ndarray, first_frames: np.ndarray) -> np.ndarray:
    """The 4 examples of the windows whose log-mel starts at ``first_frames``, in one gather."""
    frames = first_frames[:, None] + np.arange(WINDOW_FRAMES)
    return log_mel[frames].reshape(-1, EXAMPLES_PER_WINDOW, EXAMPLE_FRAMES, NUM_BANDS)


def _frame_groups(
    x: np.ndarray, starts: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (window indices, log-mel, first frame of each window) per frame grid.

    Windows whose starts agree modulo the hop share one STFT frame grid, so the log-mel of their
    common span, sliced at frame (s - base) // 160, is the per-chunk log-mel frame for frame:
    both are the same samples through the same row-wise operations. Starts on the usual 0.5 s
    grid all fall in one group and the log-mel is computed once for the whole file.
    """
    residues = starts % STFT_HOP_SAMPLES
    for residue in np.unique(residues):
        indices = np.nonzero(residues == residue)[0]
        base = int(starts[indices].min())
        stop = int(starts[indices].max()) + WINDOW_SAMPLES
        log_mel = _log_mel(x[base:stop])
        yield indices, log_mel, (starts[indices] - base) // STFT_HOP_SAMPLES


# === Network ====================================================================================


class VGGishNetwork(nn.Module):
    """The VGGish network with torchvggish's exact module layout and state-dict keys.

    Input ``[B, 1, 96, 64]`` log-mel examples, output ``[B, 128]`` embeddings. 3x3 SAME
    convolutions with ReLU and 2x2 max-pooling; the ``[B, 512, 6, 4]`` feature map is flattened
    in TF's channels-last order; fc 4096 ReLU, fc 4096 ReLU, fc 128.

    ``final_relu``: TF's VGGish dropped the ReLU after the last layer in Aug 2020 and its smoke
    test figures assume that; torchvggish 0.2 still applies it (harritaylor/torchvggish#24).
    Default False matches TF. The ReLU has no parameters, so either setting loads the same file.
    The encoder's ``version`` names the setting, so an index never mixes the two.
    """

    def __init__(self, final_relu: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), _relu()]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096),
            _relu(),
            nn.Linear(4096, 4096),
            _relu(),
            nn.Linear(4096, EMBEDDING_SIZE),
            _relu() if final_relu else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed ``[B, 1, 96, 64]`` examples into ``[B, 128]``."""
        x = self.features(x)
        # [B, C, H, W] -> [B, H, W, C] before flattening: the fc weights were trained on TF's
        # NHWC layout (torchvggish does the same with two transposes).
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.embeddings(x)


def _relu() -> nn.ReLU:
    """In place: inference only, and it spares the copy of each feature map."""
    return nn.ReLU(inplace=True)


def _network_from_state(state: dict[str, torch.Tensor], final_relu: bool) -> VGGishNetwork:
    state = {k: v.to(torch.float32).contiguous() for k, v in state.items()}
    with torch.device("meta"):  # skip a pointless random init of 72 M parameters
        network = VGGishNetwork(final_relu=final_relu)
    network.load_state_dict(state, strict=True, assign=True)
    # oneDNN's convolutions run about 1.5x faster on channels-last tensors (with in-place
    # ReLUs); the values agree to 2e-8.
    return network.eval().to(memory_format=torch.channels_last)


def _pca_from_state(state: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    eigen_vectors = state["pca_eigen_vectors"].to(torch.float64).numpy()
    means = state["pca_means"].to(torch.float64).reshape(-1).numpy()
    return eigen_vectors, means


def load_pca_params(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Verify and load the PCA file: float64 eigenvectors ``(128, 128)`` and means ``(128,)``."""
    verify_model_file(path)
    return _pca_from_state(load_checkpoint(path, PCA_STATE_SHAPES))


# === Postprocessing =============================================================================


def pca_project(raw: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """AudioSet PCA (with whitening) without clipping: ``E @ (x - mu)`` per row, float32."""
    raw = np.asarray(raw, dtype=np.float64)
    return ((raw - means.reshape(1, -1)) @ eigen_vectors.T).astype(np.float32)


def quantize(projected: np.ndarray) -> np.ndarray:
    """Clip to [-2, 2] and map to 0..255 uint8, truncating as ``vggish_postprocess`` does.

    (TF's ``astype(np.uint8)`` truncates, and TF's smoke-test figures were measured with that.)
    """
    clipped = np.clip(np.asarray(projected, dtype=np.float64), QUANTIZE_MIN, QUANTIZE_MAX)
    scaled = (clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))
    return scaled.astype(np.uint8)


def dequantize(quantized: np.ndarray) -> np.ndarray:
    """Inverse scale of :func:`quantize`: ``q / 255 * 4 - 2`` as float32."""
    q = np.asarray(quantized, dtype=np.float32)
    return q / np.float32(255.0) * np.float32(QUANTIZE_MAX - QUANTIZE_MIN) + np.float32(
        QUANTIZE_MIN
    )


def postprocess(raw: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """The AudioSet release postprocessing: PCA, clip to [-2, 2], quantise to uint8."""
    return quantize(pca_project(raw, eigen_vectors, means))


# === Encoder ====================================================================================


class VGGishEncoder:
    """VGGish as an :class:`~audiosearch.encoders.base.Encoder`: one 512-d vector per 4 s window.

    Each window yields 4 consecutive 0.96 s examples; their 128-d embeddings are concatenated in
    time order. What is returned per example is the PCA-projected, mean-centred float embedding
    ``E @ (x - mu)`` WITHOUT the release's clipping and 8-bit quantisation: cosine similarity is
    unchanged by the rotation, centring removes the offset all raw VGGish vectors share (which
    crowds raw cosines together), and quantisation would only add error. :meth:`postprocess`
    gives the release's uint8 form when it is wanted.

    ``models_dir`` must hold both files (``python app.py models download`` fetches them); each is
    checked against the checksum its name carries. ``batch_size`` is the number of examples per
    forward pass (4 per window). ``weights_file``/``pca_file`` name other checkpoints that follow
    the same ``<stem>-<sha256 prefix>.pth`` convention.
    """

    name = "vggish"
    dim = EMBEDDING_DIM

    def __init__(
        self,
        models_dir: Path,
        *,
        final_relu: bool = False,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        weights_file: str = VGGISH_WEIGHTS.name,
        pca_file: str = VGGISH_PCA_PARAMS.name,
    ) -> None:
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        models_dir = Path(models_dir)
        weights_path, pca_path = models_dir / weights_file, models_dir / pca_file
        self.batch_size = batch_size
        self.device = torch.device(device)
        # Check both files before the slow load: a missing PCA file must fail just as early.
        self.weights_sha256 = verify_model_file(weights_path)
        self.pca_sha256 = verify_model_file(pca_path)
        pca_state = load_checkpoint(pca_path, PCA_STATE_SHAPES)
        self.pca_eigen_vectors, self.pca_means = _pca_from_state(pca_state)
        weights_state = load_checkpoint(weights_path, VGGISH_STATE_SHAPES)
        self.network = _network_from_state(weights_state, final_relu).to(self.device)
        self.version = (
            f"vggish-{self.weights_sha256[:8]}-pca{self.pca_sha256[:8]}-"
            f"{'relu' if final_relu else 'norelu'}-pcacentred"
        )

    def embed_examples(self, examples: np.ndarray) -> np.ndarray:
        """Raw network embeddings ``(n, 128)`` float32 of log-mel examples ``(n, 96, 64)``."""
        examples = np.asarray(examples, dtype=np.float32)
        if examples.ndim != 3 or examples.shape[1:] != (EXAMPLE_FRAMES, NUM_BANDS):
            raise InvalidInputError(f"examples must be (n, 96, 64), got {examples.shape}")
        out = np.empty((len(examples), EMBEDDING_SIZE), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(examples), self.batch_size):
                batch = torch.from_numpy(examples[i : i + self.batch_size]).unsqueeze(1)
                batch = batch.to(self.device, memory_format=torch.channels_last)
                out[i : i + len(batch)] = self.network(batch).cpu().numpy()
        return out

    def project(self, raw: np.ndarray) -> np.ndarray:
        """PCA-projected, mean-centred float embeddings (what :meth:`embed_windows` returns)."""
        return pca_project(raw, self.pca_eigen_vectors, self.pca_means)

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """The AudioSet release's uint8 embeddings of raw embeddings ``(n, 128)``."""
        return postprocess(raw, self.pca_eigen_vectors, self.pca_means)

    def embed_windows(self, waveform: np.ndarray, starts: Sequence[int] | np.ndarray) -> np.ndarray:
        """Embed the 4 s windows ``waveform[s : s + 64000]``: float32 ``(len(starts), 512)``.

        ``waveform`` is 16 kHz mono, float in [-1, 1] (or int16). The log-mel is computed once
        per frame grid for the whole span (once per file for starts on multiples of 160) and
        sliced into 4 examples per window, which is identical to computing it per chunk.
        """
        return self.embed_batch([(waveform, starts)])[0]

    def embed_batch(self, clips: Sequence[Clip]) -> list[np.ndarray]:
        """:meth:`embed_windows` for several clips, their windows batched across clips.

        Every clip is checked before any work starts. Forward passes take ``batch_size``
        examples from as many clips as it takes; a clip's log-mel is computed when its first
        window is due, so memory holds one clip's log-mel and one batch, however many clips.
        """
        checked = [_checked_clip(waveform, starts) for waveform, starts in clips]
        counts = [len(starts) for _, starts in checked]
        per_batch = max(1, self.batch_size // EXAMPLES_PER_WINDOW)
        vectors = embed_pieces(
            _example_pieces(checked, per_batch), self._embed_window_examples,
            rows=sum(counts), dim=EMBEDDING_DIM, batch_size=per_batch,
        )  # fmt: skip
        return split_rows(vectors, counts)

    def _embed_window_examples(self, examples: np.ndarray) -> np.ndarray:
        """Vectors ``(n, 512)`` of the examples ``(n, 4, 96, 64)`` of ``n`` windows."""
        raw = self.embed_examples(examples.reshape(-1, EXAMPLE_FRAMES, NUM_BANDS))
        return self.project(raw).reshape(len(examples), EMBEDDING_DIM)


def _example_pieces(clips: Sequence[Clip], per_batch: int) -> Iterator[Piece]:
    """The examples of up to ``per_batch`` windows at a time, with their rows in the output."""
    offset = 0
    for x, starts in clips:
        for indices, log_mel, first_frames in _frame_groups(x, starts):
            for lo in range(0, len(indices), per_batch):
                some = slice(lo, lo + per_batch)
                yield _examples_at(log_mel, first_frames[some]), offset + indices[some]
        offset += len(starts)


def smoke_test(
    models_dir: Path,
    *,
    final_relu: bool = False,
    weights_file: str = VGGISH_WEIGHTS.name,
    pca_file: str = VGGISH_PCA_PARAMS.name,
) -> dict:
    """Run tensorflow/models' VGGish smoke test on the weights in ``models_dir``.

    Embeds 3 s of a 1 kHz sine at 16 kHz (3 examples) and returns the mean and standard
    deviation of the raw embeddings and of the uint8 postprocessed ones, the expected figures,
    the names that ``failed`` and ``passed`` (each within 10 %, as in the reference). The
    figures assume ``final_relu=False``. Raises ModelFileError when the files are missing or
    bad: there is no pass without the real weights.
    """
    encoder = VGGishEncoder(
        models_dir, final_relu=final_relu, weights_file=weights_file, pca_file=pca_file
    )
    t = np.arange(0, 3, 1 / SAMPLE_RATE)
    examples = waveform_to_examples(np.sin(2 * np.pi * 1000 * t))
    raw = encoder.embed_examples(examples)
    post = encoder.postprocess(raw)
    measured = {
        "embedding_mean": float(np.mean(raw)),
        "embedding_std": float(np.std(raw)),
        "postprocessed_mean": float(np.mean(post)),
        "postprocessed_std": float(np.std(post)),
    }
    failed = [
        k
        for k, v in SMOKE_EXPECTED.items()
        if not np.isclose(measured[k], v, rtol=SMOKE_RTOL, atol=0)
    ]
    return {
        "version": encoder.version,
        "examples": len(examples),
        **measured,
        "expected": dict(SMOKE_EXPECTED),
        "rtol": SMOKE_RTOL,
        "failed": failed,
        "passed": not failed,
    }
