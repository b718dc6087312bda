"""Audio in: decode any common file to 16 kHz mono (``decode``), cut it into windows (``segment``).

The decoder's names are re-exported here. The windowing names are imported from
``audiosearch.audio.segment`` itself: its main function shares the module's name, and
re-exporting it here would hide the module behind the function.
"""

from audiosearch.audio.decode import (
    BLOCK_FRAMES,
    MIN_SECONDS,
    SAMPLE_RATE,
    SILENCE_PEAK,
    DecodedAudio,
    decode_audio,
    load_audio,
)

__all__ = [
    "BLOCK_FRAMES",
    "MIN_SECONDS",
    "SAMPLE_RATE",
    "SILENCE_PEAK",
    "DecodedAudio",
    "decode_audio",
    "load_audio",
]
