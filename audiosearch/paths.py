"""Turn a client's URI into a local file path the service may read."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from audiosearch.errors import InvalidInputError


def resolve_audio_path(uri: str | None) -> Path:
    """The absolute path of the regular file that ``uri`` names.

    Accepts a plain path (relative ones are taken from the server's working directory) or a
    ``file://`` URI. Other schemes, directories and missing files are refused with a message
    that says what to send instead.
    """
    if not uri:
        raise InvalidInputError("uri is empty: send the path of an audio file, e.g. data/a.wav")
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        uri = unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:  # one letter would be a Windows drive
        raise InvalidInputError(
            f"uri={uri!r}: the {parsed.scheme}:// scheme is not served; send a file path"
        )
    path = Path(uri).expanduser().absolute()
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file; check the path (it is read on the server)")
    if not path.is_file():
        raise InvalidInputError(f"{path}: not a regular file; send the path of an audio file")
    return path


def fingerprint(path: Path) -> str:
    """A cheap identity of a file's current state: its size and modification time."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
