"""The encoders, and the factory that chooses and builds one: the only module that knows both.

``base`` holds the :class:`Encoder` interface and the helpers both encoders share; ``vggish`` and
``sfx`` implement it and import only ``base`` (and ``model_files``), never each other or this
module. Each is imported here only when chosen, so asking for one never loads the other's model
code.
"""

from __future__ import annotations

from pathlib import Path

from audiosearch.encoders.base import Encoder
from audiosearch.errors import InvalidInputError, ModelFileError

__all__ = ["ENCODER_NAMES", "Encoder", "load_encoder"]

ENCODER_NAMES = ("auto", "vggish", "sfx")


def load_encoder(name: str = "auto", *, models_dir: str | Path = "models") -> tuple[Encoder, str]:
    """Build the encoder called ``name`` and say why it was chosen.

    ``auto`` takes VGGish when its weights are in ``models_dir`` and the pretrained sound-effects
    model otherwise. A VGGish file that is present but broken is an error, never a silent
    fallback. Returns the encoder and a one-line reason for the log.
    """
    if name not in ENCODER_NAMES:
        raise InvalidInputError(
            f"encoder={name!r}: expected one of {', '.join(ENCODER_NAMES)}; try encoder=auto"
        )
    models_dir = Path(models_dir)
    if name in ("auto", "vggish"):
        from audiosearch.encoders.model_files import find_vggish_files
        from audiosearch.encoders.vggish import VGGishEncoder

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
    from audiosearch.encoders.sfx import SfxEncoder

    return SfxEncoder(), reason
