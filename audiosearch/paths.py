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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import ParseResult, unquote, urlparse

from audiosearch.errors import FileGoneError, InvalidInputError

#: Folders a client may name files in, relative to the server's working directory (the project
#: root when started by app.py).
DEFAULT_ROOTS = ("toy-data", "data")
#: Largest audio file the service reads or downloads.
MAX_FILE_BYTES = 1 << 30
#: Longest a whole http(s) download may take.
HTTP_TIMEOUT_SECONDS = 30.0
#: The service decodes at most this much of a file (flow.yml: ``read_policy.max_seconds``).
MAX_SECONDS = 600.0
#: Bytes hashed at each end of a file for its fingerprint: a rewrite that keeps the size and
#: the modification time (a restored backup, a copy with ``cp -p``) still changes it.
FINGERPRINT_EDGE_BYTES = 64 * 1024
_HOW_TO_ADD_ROOT = (
    "add its folder with `python app.py serve --allowed-root DIR`, the AUDIOSEARCH_ALLOWED_ROOTS "
    "variable or read_policy.allowed_roots in flow.yml"
)
_HTTP_SCHEMES = ("http", "https")
#: The keys of flow.yml's ``read_policy`` mapping.
READ_POLICY_KEYS = (
    "allowed_roots", "allow_http", "max_file_mb", "http_timeout_seconds", "max_seconds",
)  # fmt: skip


@dataclass(frozen=True)
class ReadPolicy:
    """Where the service may read audio from, and how much of it.

    ``roots`` may be relative (to ``base``, by default the working directory at each check) and
    may be symbolic links; they are resolved whenever a path is checked, so a folder created or
    re-linked after start is honoured. ``max_seconds``: how much of a file is decoded.
    """

    roots: Sequence[str | Path] = DEFAULT_ROOTS
    allow_http: bool = False
    max_file_bytes: int = MAX_FILE_BYTES
    http_timeout_seconds: float = HTTP_TIMEOUT_SECONDS
    max_seconds: float = MAX_SECONDS
    base: Path | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ReadPolicy:
        """The policy flow.yml's ``read_policy`` mapping describes (absent keys: defaults).

        Keys: ``allowed_roots``, ``allow_http``, ``max_file_mb``, ``http_timeout_seconds``,
        ``max_seconds``. Every executor that reads audio, and the gateway, get the same mapping.
        """
        config = dict(config or {})
        unknown = sorted(set(config) - set(READ_POLICY_KEYS))
        if unknown:
            raise InvalidInputError(
                f"read_policy.{unknown[0]}: unknown setting in flow.yml; "
                f"known: {', '.join(READ_POLICY_KEYS)}"
            )
        policy = cls(
            roots=tuple(config.get("allowed_roots", DEFAULT_ROOTS)),
            allow_http=bool(config.get("allow_http", False)),
            max_file_bytes=round(float(config.get("max_file_mb", MAX_FILE_BYTES / 2**20)) * 2**20),
            http_timeout_seconds=float(config.get("http_timeout_seconds", HTTP_TIMEOUT_SECONDS)),
            max_seconds=float(config.get("max_seconds", MAX_SECONDS)),
        )
        if policy.max_seconds <= 0 or policy.max_file_bytes <= 0:
            raise InvalidInputError(
                "read_policy: max_seconds and max_file_mb must be positive numbers (flow.yml)"
            )
        return policy

    def resolved_roots(self) -> list[Path]:
        """The roots as absolute paths with every symbolic link followed."""
        base = self.base or Path.cwd()
        return [Path(os.path.realpath(base / Path(root).expanduser())) for root in self.roots]

    def describe_roots(self) -> str:
        """The roots for messages: "/srv/a, /srv/b"."""
        return ", ".join(str(r) for r in self.resolved_roots()) or "none"


@dataclass(frozen=True)
class AudioSource:
    """A readable audio file: ``uri`` names it in the index, ``path`` is what to decode, and
    ``fingerprint`` identifies its content when it was checked."""

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
                f"({policy.describe_roots()}) and send its path, or set "
                "read_policy.allow_http: true in flow.yml"
            )
        with _download(uri, policy) as source:
            yield source
    else:
        yield readable_file(uri, policy)


def readable_file(
    uri: str | None, policy: ReadPolicy, *, indexed_fingerprint: str | None = None
) -> AudioSource:
    """The local file ``uri`` names, if ``policy`` lets the service read it now.

    Every read of a path goes through here: a client's path when it is indexed or searched
    with, and an indexed clip's path when it is read again (decoded a second time, compared
    for duplicates, streamed to a player). Symbolic links are resolved and checked against the
    roots at each call, so a link swapped after indexing is refused. With
    ``indexed_fingerprint`` (what the index stored), a file whose content changed since it was
    indexed is refused too.
    """
    path = resolve_audio_path(uri, policy)
    current = fingerprint(path)
    if indexed_fingerprint is not None and not same_content(indexed_fingerprint, current):
        raise InvalidInputError(
            f"{path}: changed since it was indexed; index it again (python app.py index PATH)"
        )
    return AudioSource(str(path), path, current)


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
        raise FileGoneError(
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
            "read (read_policy.max_file_mb in flow.yml); shorten or re-encode it"
        )


def fingerprint(path: Path) -> str:
    """A cheap identity of a file's content: size, modification time, and a hash of its first
    and last ``FINGERPRINT_EDGE_BYTES`` (``size:mtime_ns:hash``)."""
    with path.open("rb") as f:
        info = os.fstat(f.fileno())
        digest = hashlib.blake2b(f.read(FINGERPRINT_EDGE_BYTES), digest_size=8)
        if info.st_size > FINGERPRINT_EDGE_BYTES:
            f.seek(max(FINGERPRINT_EDGE_BYTES, info.st_size - FINGERPRINT_EDGE_BYTES))
            digest.update(f.read(FINGERPRINT_EDGE_BYTES))
    return f"{info.st_size}:{info.st_mtime_ns}:{digest.hexdigest()}"


def same_content(stored: str, current: str) -> bool:
    """Whether a stored fingerprint still describes the file whose fingerprint is ``current``.

    Indexes written before fingerprints held a hash stored ``size:mtime_ns``; those compare on
    the fields they have.
    """
    fields = stored.split(":")
    return fields == current.split(":")[: len(fields)]


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
                "(read_policy.http_timeout_seconds in flow.yml); try a smaller file or a closer "
                "server"
            ) from None
        except httpx.HTTPError as exc:
            raise InvalidInputError(
                f"{url}: download failed ({exc.__class__.__name__}: {exc}); check the URL and "
                "that the server can reach its host"
            ) from None
        copy.flush()
        yield AudioSource(url, Path(copy.name), f"{size}:{digest.hexdigest()[:16]}")
