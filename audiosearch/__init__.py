"""Framework-free core of the audio similarity search service.

Decoding, segmenting, feature extraction, encoders, storage and ranking live here as plain
functions and classes; the Jina executors in ``executors/`` are thin adapters around them.
"""

__version__ = "0.1.0"
