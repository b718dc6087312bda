"""Near-duplicate check: is an indexed clip the query's own recording, copied?

The chunk vectors say what a sound *is* like; two takes of the same kind of sound score as high
as a re-encoded copy (on toy-data, different espeak-ng sentences reach cosine 0.975 while a
trimmed, re-sampled Vorbis copy of a flute phrase scores 0.927), so they cannot tell copies from
look-alikes. This module compares the audio itself instead: log-mel frames of both clips, slid
against each other to the time offset where they agree best, scored by their correlation over
the overlap. Correlation over the overlap with per-band means removed is blind to gain changes
(a constant in dB), trims (the offset) and most codec damage, while different recordings of the
same notes or words decorrelate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import librosa
import numpy as np
from scipy.signal import fftconvolve

from audiosearch.audio import SAMPLE_RATE
from audiosearch.rank import ClipMatch

HOP_SAMPLES = 256  # 16 ms: a trim is matched to within 8 ms
N_FFT = 1024
N_MELS = 32
#: Frames quieter than this far below the clip's peak count as silence; codec noise hides there.
FLOOR_DB = 60.0
#: Correlation from which two clips are copies. Measured on toy-data (bench/duplicates.py): the
#: 165 re-encoded, trimmed and quieter copies score 0.954 or more against their originals, the
#: 6336 pairs of different clips 0.835 or less (organ and choir playing the same chords).
MIN_CORRELATION = 0.9
#: The aligned overlap must cover this share of the longer clip: copies match over most of their
#: length, an excerpt of a long recording does not count as its copy.
MIN_OVERLAP = 0.5


@dataclass(frozen=True)
class Alignment:
    """Where two clips agree best: the correlation there and the overlapping spans, seconds."""

    correlation: float
    query_start: float
    query_end: float
    start: float
    end: float


def spectral_frames(waveform: np.ndarray) -> np.ndarray:
    """Log-mel frames ``(frames, N_MELS)`` in dB below the peak, floored at ``-FLOOR_DB``."""
    mel = librosa.feature.melspectrogram(
        y=waveform, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_SAMPLES, n_mels=N_MELS
    )
    return librosa.power_to_db(mel, ref=np.max, top_db=FLOOR_DB).T.astype(np.float64)


def _prefix_sums(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])


def align(query: np.ndarray, clip: np.ndarray, *, min_overlap: float = MIN_OVERLAP) -> Alignment:
    """The offset of ``clip`` against ``query`` (both :func:`spectral_frames`) that agrees best.

    For every offset whose overlap covers ``min_overlap`` of the longer clip, the Pearson
    correlation of the overlapping frames (each band's mean over the overlap removed); the best
    one wins. Correlation 0 with empty spans when no offset overlaps enough.
    """
    nq, nc = len(query), len(clip)
    lags = np.arange(-(nq - 1), nc)  # clip frame = query frame + lag
    q0 = np.maximum(0, -lags)
    q1 = np.minimum(nq, nc - lags)
    frames = q1 - q0
    usable = frames >= min_overlap * max(nq, nc)
    if not usable.any():
        return Alignment(0.0, 0.0, 0.0, 0.0, 0.0)
    # Sums over the overlap for every lag at once: products by FFT, sums from prefix sums.
    products = sum(fftconvolve(clip[:, b], query[::-1, b]) for b in range(query.shape[1]))
    sq, sc = _prefix_sums(query), _prefix_sums(clip)
    eq, ec = _prefix_sums((query**2).sum(axis=1)), _prefix_sums((clip**2).sum(axis=1))
    sum_q, sum_c = sq[q1] - sq[q0], sc[q1 + lags] - sc[q0 + lags]
    covariance = products - (sum_q * sum_c).sum(axis=1) / frames
    var_q = eq[q1] - eq[q0] - (sum_q**2).sum(axis=1) / frames
    var_c = ec[q1 + lags] - ec[q0 + lags] - (sum_c**2).sum(axis=1) / frames
    # A silent (constant) overlap has no variance and correlates with nothing.
    correlation = covariance / np.sqrt(np.maximum(var_q * var_c, 1e-12))
    best = int(np.argmax(np.where(usable, correlation, -np.inf)))
    seconds = HOP_SAMPLES / SAMPLE_RATE
    q_start, q_end = q0[best] * seconds, q1[best] * seconds
    shift = lags[best] * seconds
    return Alignment(float(correlation[best]), q_start, q_end, q_start + shift, q_end + shift)


def find_duplicates(
    query: np.ndarray,
    candidates: Sequence[ClipMatch],
    load: Callable[[str], np.ndarray | None],
    *,
    min_correlation: float = MIN_CORRELATION,
) -> list[ClipMatch]:
    """The ``candidates`` that are copies of the 16 kHz ``query`` waveform, best first.

    ``load(uri)`` gives a candidate's 16 kHz waveform, or None to skip it (a file that is gone).
    Each copy's ``score`` becomes its correlation with the query, and its segments say which
    part of the query lies where in it.
    """
    query_frames = spectral_frames(query)
    copies = []
    for candidate in candidates:
        waveform = load(candidate.uri)
        if waveform is None:
            continue
        found = align(query_frames, spectral_frames(waveform))
        if found.correlation >= min_correlation:
            copies.append(replace(candidate, score=found.correlation, start=found.start,
                                  end=found.end, query_start=found.query_start,
                                  query_end=found.query_end))  # fmt: skip
    return sorted(copies, key=lambda m: -m.score)
