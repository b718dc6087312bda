"""The encoder interface shared by the VGGish and sound-effects encoders."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

#: One clip to embed: its 16 kHz waveform and the sample offsets of its windows.
Clip = tuple[np.ndarray, np.ndarray]
#: Model inputs for some windows, and the rows of the output those windows fill.
Piece = tuple[np.ndarray, np.ndarray]


class Encoder(Protocol):
    """Turns fixed-length windows of a 16 kHz mono waveform into one vector per window."""

    #: Short name stored in the index ("vggish", "sfx").
    name: str
    #: Identifies weights and settings; an index refuses vectors with another one.
    version: str
    #: Length of each output vector.
    dim: int

    def embed_windows(self, waveform: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Embed the windows ``waveform[s : s + window_samples]`` for each ``s`` in ``starts``.

        ``waveform`` is float32 in [-1, 1] at 16 kHz; every window lies inside it. Returns a
        float32 array of shape ``(len(starts), dim)``.
        """
        ...

    def embed_batch(self, clips: Sequence[Clip]) -> list[np.ndarray]:
        """``[embed_windows(waveform, starts) for waveform, starts in clips]``, faster.

        The windows of all clips are fed to the network in large batches that run across
        clips, so many short files cost what one long file does.
        """
        ...


def embed_pieces(
    pieces: Iterable[Piece], embed: Callable[[np.ndarray], np.ndarray], *, rows: int, dim: int,
    batch_size: int,
) -> np.ndarray:  # fmt: skip
    """Run ``embed`` on batches of ``batch_size`` model inputs gathered across ``pieces``.

    Each piece holds the inputs of some windows and the output rows they fill; pieces are
    produced lazily (a clip at a time), so memory holds one batch and the clip being cut, never
    every window of a long file. Returns the ``(rows, dim)`` float32 output.
    """
    out = np.empty((rows, dim), dtype=np.float32)
    for inputs, where in _rebatch(pieces, batch_size):
        out[where] = embed(inputs)
    return out


def _rebatch(pieces: Iterable[Piece], size: int) -> Iterator[Piece]:
    """Regroup pieces into batches of exactly ``size`` inputs (the last one may be smaller)."""
    inputs: list[np.ndarray] = []
    where: list[np.ndarray] = []
    held = 0
    for piece_inputs, piece_rows in pieces:
        inputs.append(piece_inputs)
        where.append(piece_rows)
        held += len(piece_rows)
        if held >= size:
            joined, joined_rows = np.concatenate(inputs), np.concatenate(where)
            full = held - held % size
            for lo in range(0, full, size):
                yield joined[lo : lo + size], joined_rows[lo : lo + size]
            inputs, where, held = [joined[full:]], [joined_rows[full:]], held - full
    if held:
        yield np.concatenate(inputs), np.concatenate(where)


def split_rows(vectors: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """``vectors`` cut into consecutive blocks of ``counts`` rows: one block per clip."""
    return np.split(vectors, np.cumsum(counts)[:-1]) if counts else []


ENCODER_NAMES = ("auto", "vggish", "sfx")


def load_encoder(name: str = "auto", *, models_dir: str | Path = "models") -> tuple[Encoder, str]:
    """Build the encoder called ``name`` and say why it was chosen.

    ``auto`` takes VGGish when its weights are in ``models_dir`` and the pretrained sound-effects
    model otherwise. A VGGish file that is present but broken is an error, never a silent
    fallback. Returns the encoder and a one-line reason for the log.
    """
    from audiosearch.errors import InvalidInputError, ModelFileError

    if name not in ENCODER_NAMES:
        raise InvalidInputError(f"encoder={name!r}: expected one of {', '.join(ENCODER_NAMES)}")
    models_dir = Path(models_dir)
    if name in ("auto", "vggish"):
        from audiosearch.model_files import find_vggish_files
        from audiosearch.vggish import VGGishEncoder

        weights, pca = find_vggish_files(models_dir)
        try:
            encoder = VGGishEncoder(models_dir, weights_file=weights, pca_file=pca)
            return encoder, f"encoder={name}: VGGish weights {weights} found in {models_dir}"
        except ModelFileError as exc:
            if name == "vggish" or any(models_dir.glob("vggish*.pth")):
                raise
            reason = f"encoder=auto: no VGGish weights in {models_dir} ({exc}); using sfx"
    else:
        reason = "encoder=sfx"
    from audiosearch.sfx import SfxEncoder

    return SfxEncoder(), reason
