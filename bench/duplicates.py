"""Near-duplicate margins on toy-data: copies made with sox/ffmpeg against different clips.

    .venv/bin/python bench/duplicates.py      # about 3 minutes on 2 busy cores

Every toy clip gets the five copies that tests/test_duplicates.py makes: MP3 at 64 kbit/s, Opus
at 24 kbit/s, trimmed, 9 dB quieter, and trimmed + 4 dB quieter + 22.05 kHz + Vorbis q2. Over
each copy against its original (positives), and every pair of different clips and every copy
against the other originals (negatives), it prints the weakest positive and the strongest
negative of two scores: the correlation of ``audiosearch.duplicates.align`` (what
``duplicates=true`` uses) and the best chunk-pair cosine of the sfx encoder (what ranking uses),
with the margins of the first around the threshold ``MIN_CORRELATION``.
"""

from __future__ import annotations

import sys
import tempfile
from itertools import product
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiosearch.audio import load_audio  # noqa: E402
from audiosearch.audio.segment import segment  # noqa: E402
from audiosearch.duplicates import MIN_CORRELATION, align, spectral_frames  # noqa: E402
from audiosearch.encoders import load_encoder  # noqa: E402
from audiosearch.index import normalize_rows  # noqa: E402
from tests.conftest import toy_clips  # noqa: E402
from tests.test_duplicates import VARIANTS, make_variant  # noqa: E402


def best_chunk_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Best cosine between any chunk vector of ``a`` and any of ``b``."""
    return float((normalize_rows(a) @ normalize_rows(b).T).max())


def main() -> None:
    encoder, _ = load_encoder("sfx")
    originals = toy_clips()
    with tempfile.TemporaryDirectory() as tmp:
        copies = {(o, kind): make_variant(o, kind, Path(tmp)) for o, kind in
                  product(originals, VARIANTS)}  # fmt: skip
        audio = {p: load_audio(p) for p in [*originals, *copies.values()]}
    frames = {p: spectral_frames(w) for p, w in audio.items()}
    vectors = {}
    for path, waveform in audio.items():
        cut = segment(waveform)
        vectors[path] = encoder.embed_windows(cut.waveform, cut.starts)
    positives = [(copy, o) for (o, _), copy in copies.items()]
    negatives = [(a, b) for a in [*originals, *copies.values()] for b in originals
                 if b != a and (a, b) not in positives]  # fmt: skip
    print(f"{len(originals)} toy clips, {len(positives)} copies, {len(negatives)} different pairs")
    print("| score | weakest copy | strongest different pair | margin below / above |")
    print("|---|---|---|---|")
    for name, score in (
        ("correlation (duplicates=true)", lambda a, b: align(frames[a], frames[b]).correlation),
        ("sfx best chunk-pair cosine", lambda a, b: best_chunk_cosine(vectors[a], vectors[b])),
    ):
        pos = min((score(a, b), a.name) for a, b in positives)
        neg = max((score(a, b), f"{a.name} vs {b.name}") for a, b in negatives)
        margin = (
            f"{pos[0] - MIN_CORRELATION:+.3f} / {MIN_CORRELATION - neg[0]:+.3f}"
            if name.startswith("correlation")
            else f"overlap {neg[0] - pos[0]:.3f}"
            if neg[0] >= pos[0]
            else "separable"
        )
        print(f"| {name} | {pos[0]:.3f} ({pos[1]}) | {neg[0]:.3f} ({neg[1]}) | {margin} |")


if __name__ == "__main__":
    main()
