"""Turn a client's URI into a file the service may read, and nothing else.

A service that opens paths its clients name is a file-read hole unless it is careful: only
regular files under the allowed folders (after following symbolic links) are read, ``..`` is
refused, and ``http(s)://`` is fetched only when the operator enables it, within size and time
limits.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import ParseResult, unquote, urlparse

from audiosearch.errors import InvalidInputError

#: Folders a client may name files in, relative to the server's working directory (the project
#: root when started by app.py).
DEFAULT_ROOTS = ("toy-data", "data")
#: Largest audio file the service reads or downloads.
MAX_FILE_BYTES = 1 << 30
#: Longest a whole http(s) download may take.
HTTP_TIMEOUT_SECONDS = 30.0
_HOW_TO_ADD_ROOT = (
    "add its folder with `python app.py serve --allowed-root DIR`, the AUDIOSEARCH_ALLOWED_ROOTS "
    "variable or the segmenter's allowed_roots in flow.yml"
)
_HTTP_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ReadPolicy:
    """Where the service may read audio from, and how much of it.

    ``roots`` may be relative (to ``base``, by default the working directory at each check) and
    may be symbolic links; they are resolved whenever a path is checked, so a folder created or
    re-linked after start is honoured.
    """

    roots: Sequence[str | Path] = DEFAULT_ROOTS
    allow_http: bool = False
    max_file_bytes: int = MAX_FILE_BYTES
    http_timeout_seconds: float = HTTP_TIMEOUT_SECONDS
    base: Path | None = None

    def resolved_roots(self) -> list[Path]:
        """The roots as absolute paths with every symbolic link followed."""
        base = self.base or Path.cwd()
        return [Path(os.path.realpath(base / Path(root).expanduser())) for root in self.roots]

    def describe_roots(self) -> str:
        """The roots for messages: "/srv/a, /srv/b"."""
        return ", ".join(str(r) for r in self.resolved_roots()) or "none"


@dataclass(frozen=True)
class AudioSource:
    """A readable audio file: ``uri`` names it in the index, ``path`` is what to decode."""

    uri: str
    path: Path
    fingerprint: str


def is_http_uri(uri: str | None) -> bool:
    """Whether ``uri`` is an http:// or https:// URL."""
    return bool(uri) and _parse(uri).scheme.lower() in _HTTP_SCHEMES


def _parse(uri: str) -> ParseResult:
    try:
        return urlparse(uri)
    except ValueError as exc:  # e.g. "http://[": an unclosed IPv6 host
        raise InvalidInputError(
            f"uri={uri!r}: not a valid path or URL ({exc}); send a file path"
        ) from None


@contextmanager
def open_audio_source(uri: str | None, policy: ReadPolicy) -> Iterator[AudioSource]:
    """The file ``uri`` names, checked against ``policy``; downloads live for the block only."""
    if is_http_uri(uri):
        if not policy.allow_http:
            raise InvalidInputError(
                f"{uri}: http(s) downloads are off; put the file under an allowed folder "
                f"({policy.describe_roots()}) and send its path, or set allow_http: true for "
                "the segmenter in flow.yml"
            )
        with _download(uri, policy) as source:
            yield source
    else:
        path = resolve_audio_path(uri, policy)
        yield AudioSource(str(path), path, fingerprint(path))


def resolve_audio_path(uri: str | None, policy: ReadPolicy | None = None) -> Path:
    """The absolute path of the regular file that ``uri`` names, if ``policy`` allows it.

    Accepts a plain path (relative ones are taken from ``policy.base``, the working directory by
    default) or a ``file://`` URI. Refuses, with a message that says what to send instead:
    other schemes, ``..`` steps, paths outside the allowed roots (symbolic links are followed
    first), missing files, directories, devices, pipes and files over the size limit.
    """
    policy = policy or ReadPolicy()
    if not uri:
        raise InvalidInputError(
            "uri is empty: send the path of an audio file, e.g. toy-data/bell_strikes.wav"
        )
    parsed = _parse(uri)
    if parsed.scheme.lower() == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInputError(
                f"uri={uri!r}: file:// URIs name files on this server only; "
                "use file:///path or a plain path"
            )
        uri = unquote(parsed.path)
    elif len(parsed.scheme) > 1 and uri[len(parsed.scheme) + 1 :].startswith("//"):
        # Without "//", "take:2.wav" is a file name with a colon, checked like any path.
        raise InvalidInputError(
            f"uri={uri!r}: the {parsed.scheme}:// scheme is not served; "
            "send the path of a file under an allowed folder"
        )
    if "\x00" in uri:  # also when file:// carried it as %00
        raise InvalidInputError(f"uri={uri!r}: contains a NUL character; send a plain file path")
    path = Path(uri)  # "~" is not expanded: the server's home is no business of its clients
    if ".." in path.parts:
        raise InvalidInputError(
            f"uri={uri!r}: '..' steps are not accepted; send the file's path inside an allowed "
            f"folder ({policy.describe_roots()})"
        )
    path = Path(os.path.abspath((policy.base or Path.cwd()) / path))
    _check_inside_roots(path, policy)
    return _check_regular_file(path, policy.max_file_bytes)


def _check_inside_roots(path: Path, policy: ReadPolicy) -> None:
    roots = policy.resolved_roots()
    real = Path(os.path.realpath(path))
    if any(real.is_relative_to(root) for root in roots):
        return
    if real != path:
        raise InvalidInputError(
            f"{path}: is a symbolic link that leads outside the allowed folders "
            f"({policy.describe_roots()}); link only to files inside them, or {_HOW_TO_ADD_ROOT}"
        )
    raise InvalidInputError(
        f"{path}: outside the allowed folders ({policy.describe_roots()}); to index or search "
        f"files there, {_HOW_TO_ADD_ROOT}"
    )


def _check_regular_file(path: Path, max_bytes: int) -> Path:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidInputError(
            f"{path}: no such file; check the path (it is read on the server)"
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc.strerror}); check it") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInputError(
            f"{path}: is a folder, not a file; send one audio file per item "
            "(`python app.py index DIR` sends every file in a folder)"
        )
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(
            f"{path}: not a regular file (a device, pipe or socket); send the path of an audio file"
        )
    _check_size(str(path), info.st_size, max_bytes)
    return path


def _check_size(label: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InvalidInputError(
            f"{label}: is {size / 2**20:,.1f} MiB; files up to {max_bytes / 2**20:,.0f} MiB are "
            "read (max_file_mb in flow.yml); shorten or re-encode it"
        )


def fingerprint(path: Path) -> str:
    """A cheap identity of a file's current state: its size and modification time."""
    stat_result = path.stat()
    return f"{stat_result.st_size}:{stat_result.st_mtime_ns}"


@contextmanager
def _download(url: str, policy: ReadPolicy) -> Iterator[AudioSource]:
    """``url`` downloaded to a temporary file (removed afterwards), within the policy's limits.

    The fingerprint is the size and sha256 of the bytes, so an unchanged file is not re-indexed.
    """
    import httpx  # imported lazily: only enabled downloads need it

    limit = policy.http_timeout_seconds
    deadline = time.monotonic() + limit
    digest = hashlib.sha256()
    size = 0
    suffix = Path(urlparse(url).path).suffix[:8]
    with tempfile.NamedTemporaryFile(prefix="audiosearch-", suffix=suffix) as copy:
        try:
            with httpx.stream("GET", url, timeout=limit, follow_redirects=True) as response:
                if response.status_code != 200:
                    raise InvalidInputError(
                        f"{url}: the server answered HTTP {response.status_code}; check the URL"
                    )
                declared = response.headers.get("content-length", "")
                _check_size(url, int(declared) if declared.isdigit() else 0, policy.max_file_bytes)
                for block in response.iter_bytes():
                    size += len(block)
                    _check_size(url, size, policy.max_file_bytes)
                    if time.monotonic() > deadline:
                        raise httpx.TimeoutException("the whole download took too long")
                    copy.write(block)
                    digest.update(block)
        except httpx.TimeoutException:
            raise InvalidInputError(
                f"{url}: the download did not finish within {limit:g} s "
                "(http_timeout_seconds in flow.yml); try a smaller file or a closer server"
            ) from None
        except httpx.HTTPError as exc:
            raise InvalidInputError(
                f"{url}: download failed ({exc.__class__.__name__}: {exc}); check the URL and "
                "that the server can reach its host"
            ) from None
        copy.flush()
        yield AudioSource(url, Path(copy.name), f"{size}:{digest.hexdigest()[:16]}")
