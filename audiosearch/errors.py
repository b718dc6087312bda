"""One exception family for the whole core package.

Every message says what was wrong and what to do, so the edges (executors, gateway, CLI) can show
it to the user as it is.
"""


class AudioSearchError(Exception):
    """Base class of every error the core package raises on purpose."""


class InvalidInputError(AudioSearchError, ValueError):
    """A request, parameter or path is not acceptable (a wrong value, a path outside the roots)."""


class FileGoneError(InvalidInputError):
    """A path names no file (any more): deleted, moved, or never there."""


class AudioDecodeError(AudioSearchError):
    """A file exists but cannot be decoded as audio, or holds no usable audio."""


class ModelFileError(AudioSearchError):
    """A model file is missing, truncated, fails its checksum, or has the wrong keys or shapes."""


class IndexMismatchError(AudioSearchError):
    """Vectors from one encoder were offered to an index built with another encoder."""
