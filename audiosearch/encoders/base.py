"""The encoder interface, and the batching helpers the VGGish and sound-effects encoders share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np

from audiosearch.audio import SAMPLE_RATE
from audiosearch.audio.segment import WINDOW_SECONDS

__all__ = ["WINDOW_SAMPLES", "Clip", "Encoder", "Piece", "embed_pieces", "split_rows"]

#: Every encoder's input window: ``WINDOW_SECONDS`` of 16 kHz audio.
WINDOW_SAMPLES = round(WINDOW_SECONDS * SAMPLE_RATE)

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
        """Embed the windows ``waveform[s : s + WINDOW_SAMPLES]`` for each ``s`` in ``starts``.

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
