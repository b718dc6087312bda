"""The encoder interface shared by the VGGish and sound-effects encoders."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


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
