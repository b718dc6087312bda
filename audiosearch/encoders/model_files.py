"""Model files on disk: where they come from, how they are checked, loaded and downloaded.

Checksum convention (the one torch.hub uses for these very files): a file named
``<stem>-<hex>.<ext>`` must have a SHA-256 digest that starts with ``<hex>``. The name carries its
own checksum, so any checkpoint (the official release or one a test generates and saves as
``vggish-<its own prefix>.pth``) goes through exactly the same verification code. For the official
file names the full digest is known where we could find it, and then the whole digest is compared.

Hashing the 288 MB weights file costs a fraction of the ``torch.load`` that follows and reads it
anyway, so files are hashed on every load and no checksum cache is kept next to them.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiosearch.errors import InvalidInputError, ModelFileError

__all__ = [
    "DOWNLOAD_COMMAND",
    "RELEASE_URL",
    "VGGISH_FILES",
    "VGGISH_PCA_PARAMS",
    "VGGISH_WEIGHTS",
    "ModelFile",
    "ShapeSpec",
    "download_model_files",
    "expected_sha256",
    "find_vggish_files",
    "load_checkpoint",
    "sha256_of_file",
    "sha256_prefix_from_name",
    "verify_model_file",
]

#: Where the torchvggish release keeps both files (GitHub redirects to its object storage).
RELEASE_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1"

#: The command that fetches the files; every "missing file" message names it.
DOWNLOAD_COMMAND = "python app.py models download"

#: A shape, or a list of the shapes that are all acceptable for one entry.
ShapeSpec = tuple[int, ...] | list[tuple[int, ...]]

# torch.hub's rule: the hex run between the last "-" and the first "." after it.
_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.[^-]*$")
_HEX = re.compile(r"[0-9a-f]{8,64}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    """One downloadable model file."""

    #: File name inside the models directory (and on the release page).
    name: str
    #: Full SHA-256 hex digest when known, otherwise the 8-hex prefix from the name.
    sha256: str
    #: What the file holds, for messages and the README.
    description: str


#: VGGish weights converted from Google's TF checkpoint by torchvggish (72,141,184 float32).
#: Full digest from three independent public sources (checksum pins in other projects); it
#: starts with the prefix torch.hub checks.
VGGISH_WEIGHTS = ModelFile(
    "vggish-10086976.pth",
    "10086976245803799d9194e9a73d9b6c1549c71d1b80106f5cade5608a561f4b",
    "VGGish network weights",
)
#: AudioSet PCA parameters (``pca_eigen_vectors`` 128x128, ``pca_means`` 128). Only the 8-hex
#: prefix is published; no full digest could be found.
VGGISH_PCA_PARAMS = ModelFile(
    "vggish_pca_params-970ea276.pth",
    "970ea276",
    "VGGish PCA parameters",
)
VGGISH_FILES: tuple[ModelFile, ...] = (VGGISH_WEIGHTS, VGGISH_PCA_PARAMS)

_KNOWN_DIGESTS = {f.name: f.sha256 for f in VGGISH_FILES}


def find_vggish_files(models_dir: Path | str) -> tuple[str, str]:
    """Names of the VGGish weights and PCA files in ``models_dir``.

    The release names when nothing is there (so loading fails with the download command); any
    single ``vggish-<sha256 prefix>.pth`` / ``vggish_pca_params-<prefix>.pth`` otherwise, so a
    checkpoint that follows the naming convention works without configuration.

    Raises ModelFileError when a directory holds more than one candidate of a kind.
    """
    found = []
    for pattern, default in (
        ("vggish-*.pth", VGGISH_WEIGHTS),
        ("vggish_pca_params-*.pth", VGGISH_PCA_PARAMS),
    ):
        names = sorted(p.name for p in Path(models_dir).glob(pattern))
        if len(names) > 1:
            raise ModelFileError(
                f"{models_dir}: holds {len(names)} files matching {pattern} ({', '.join(names)}); "
                "keep one"
            )
        found.append(names[0] if names else default.name)
    return found[0], found[1]


def _one_line(text: object) -> str:
    """Squeeze an inner error message onto one short line."""
    lines = str(text).strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line if len(line) <= 200 else line[:197] + "..."


def sha256_of_file(path: Path) -> str:
    """Return the SHA-256 hex digest of ``path``; raise ModelFileError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file is missing; run `{DOWNLOAD_COMMAND}`.")
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({_one_line(exc)}).") from exc


def sha256_prefix_from_name(path: Path | str) -> str | None:
    """Return the checksum prefix a ``<stem>-<hex>.<ext>`` file name carries, or None."""
    match = _NAME_HASH.search(Path(path).name)
    return match.group(1) if match else None


def expected_sha256(path: Path | str) -> str:
    """What ``path``'s digest must start with: the full known digest, else its name's prefix.

    Raises ModelFileError when the name follows no checksum convention, since an unchecked file
    would silently change every embedding.
    """
    name = Path(path).name
    if name in _KNOWN_DIGESTS:
        return _KNOWN_DIGESTS[name]
    prefix = sha256_prefix_from_name(name)
    if prefix is None:
        raise ModelFileError(
            f"{path}: file name carries no checksum; name it <stem>-<first 8+ hex of its "
            "sha256>.pth (see models/README.md)."
        )
    return prefix


def verify_model_file(path: Path, expected_sha256_prefix: str | None = None) -> str:
    """Check that ``path`` exists, is readable and its SHA-256 starts with the expected hex.

    ``expected_sha256_prefix`` is a full digest or a prefix of at least 8 hex digits; None means
    :func:`expected_sha256` of the file name. Returns the full digest. Raises ModelFileError with
    a one-line message naming the file when it is missing, unreadable, or fails the checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file is missing; run `{DOWNLOAD_COMMAND}`.")
    expected = expected_sha256(path) if expected_sha256_prefix is None else expected_sha256_prefix
    expected = expected.strip().lower()
    if not _HEX.fullmatch(expected):
        raise InvalidInputError(f"expected sha256 must be 8 to 64 hex digits, got {expected!r}")
    digest = sha256_of_file(path)
    if not digest.startswith(expected):
        size = path.stat().st_size
        raise ModelFileError(
            f"{path}: checksum mismatch (sha256 {digest[:16]}..., expected {expected[:16]}...; "
            f"{size:,} bytes): the file is truncated, corrupted or a different file; delete it "
            f"and run `{DOWNLOAD_COMMAND}`."
        )
    return digest


def _numpy_safe_globals() -> list:
    """Globals a weights-only unpickler needs for numpy arrays inside a torch checkpoint.

    The released PCA file stores numpy float64 arrays (its size, 181,358 bytes, is that of two
    float64 arrays pickled with protocol 2), written by numpy 1.x under the old module name
    ``numpy.core.multiarray``; allowing exactly these keeps ``weights_only=True`` (no code runs).
    """
    from numpy._core.multiarray import _reconstruct

    return [
        np.ndarray,
        np.dtype,
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        type(np.dtype(np.float64)),
        type(np.dtype(np.float32)),
    ]


def _as_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return torch.from_numpy(value)
    return None


def _shape_ok(shape: tuple[int, ...], spec: ShapeSpec) -> bool:
    return shape in spec if isinstance(spec, list) else shape == tuple(spec)


def _spec_text(spec: ShapeSpec) -> str:
    return " or ".join(str(tuple(s)) for s in spec) if isinstance(spec, list) else str(tuple(spec))


def load_checkpoint(
    path: Path, expected_shapes: Mapping[str, ShapeSpec]
) -> dict[str, torch.Tensor]:
    """Load a state dict with ``torch.load(weights_only=True)`` and check its keys and shapes.

    ``expected_shapes`` maps every key the file must hold (no more, no fewer) to its shape, or to
    a list of acceptable shapes. Numpy float arrays (as in the PCA release file) are returned as
    tensors. Raises ModelFileError with a one-line message naming the file for a missing or
    unreadable file, a corrupt or non-weights pickle, wrong keys, wrong shapes or non-float data.
    The checksum is not checked here: call :func:`verify_model_file` first.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file is missing; run `{DOWNLOAD_COMMAND}`.")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file (zip, pickle, EOF, ...)
        raise ModelFileError(
            f"{path}: not a readable PyTorch weights file ({type(exc).__name__}: "
            f"{_one_line(exc)}); delete it and run `{DOWNLOAD_COMMAND}`."
        ) from exc
    if not isinstance(obj, Mapping):
        raise ModelFileError(f"{path}: expected a dict of tensors, found {type(obj).__name__}.")
    missing = sorted(set(expected_shapes) - set(obj))
    unexpected = sorted(str(k) for k in set(obj) - set(expected_shapes))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}" + (" ..." if len(missing) > 3 else ""))
        if unexpected:
            parts.append(
                f"unexpected keys {unexpected[:3]}" + (" ..." if len(unexpected) > 3 else "")
            )
        raise ModelFileError(f"{path}: wrong checkpoint layout: {'; '.join(parts)}.")
    state: dict[str, torch.Tensor] = {}
    for key, spec in expected_shapes.items():
        tensor = _as_tensor(obj[key])
        if tensor is None or not tensor.is_floating_point():
            raise ModelFileError(f"{path}: entry {key!r} is not a float tensor.")
        shape = tuple(tensor.shape)
        if not _shape_ok(shape, spec):
            raise ModelFileError(
                f"{path}: entry {key!r} has shape {shape}, expected {_spec_text(spec)}."
            )
        state[key] = tensor
    return state


def _manual_hint(url: str, dest: Path, spec: ModelFile) -> str:
    return (
        f"download {url} by other means and save it as {dest} (sha256 starts with "
        f"{spec.sha256[:8]}); see models/README.md"
    )


def _fetch(url: str, dest: Path, spec: ModelFile, timeout: float, progress: bool) -> None:
    """Stream ``url`` into a temporary file beside ``dest``; rename it only once it verifies."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise ModelFileError(f"{dest.parent}: cannot write there ({_one_line(exc)}).") from exc
    tmp = Path(tmp_name)
    try:
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = resp.headers.get("Content-Length")
                bar = _progress_bar(spec.name, int(total) if total else None, progress)
                try:
                    while chunk := resp.read(_CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        bar.update(len(chunk))
                finally:
                    bar.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError, HTTPError and timeouts are OSErrors; IncompleteRead is an HTTPException.
            if isinstance(exc, urllib.error.HTTPError):
                reason = f"HTTP {exc.code} {exc.reason}"
            else:
                reason = f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
            raise ModelFileError(
                f"download of {url} failed ({_one_line(reason)}); {_manual_hint(url, dest, spec)}."
            ) from exc
        digest = hasher.hexdigest()
        if not digest.startswith(spec.sha256):
            raise ModelFileError(
                f"{dest}: downloaded file fails its checksum (sha256 {digest[:16]}..., expected "
                f"{spec.sha256[:16]}...); nothing was saved; retry or "
                f"{_manual_hint(url, dest, spec)}."
            )
        os.replace(tmp, dest)  # atomic on one filesystem: readers never see a partial file
    finally:
        tmp.unlink(missing_ok=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(name: str, total: int | None, enabled: bool) -> Any:
    """A tqdm bar (shown only on a terminal) or a do-nothing stand-in."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety, never a reason to fail
        return _NoBar()
    # disable=None: tqdm shows the bar only when stderr is a terminal.
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, disable=None, leave=False)


def download_model_files(
    models_dir: Path,
    *,
    timeout: float = 60,
    base_url: str = RELEASE_URL,
    files: Sequence[ModelFile] = VGGISH_FILES,
    progress: bool = True,
) -> list[Path]:
    """Make sure every file in ``files`` is in ``models_dir`` and passes its checksum.

    Files already present and valid are kept; others are fetched from ``base_url/<name>`` with
    urllib (``timeout`` seconds per socket operation), written to a temporary file in
    ``models_dir`` and renamed into place only after the checksum passes. Returns the paths of
    all files. Raises ModelFileError saying what failed, why, and how to place the files by hand.
    """
    models_dir = Path(models_dir)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(
            f"{models_dir}: cannot create the models directory ({_one_line(exc)})."
        ) from exc
    paths = []
    for spec in files:
        dest = models_dir / spec.name
        if dest.is_file():
            try:
                verify_model_file(dest, spec.sha256)
            except ModelFileError:
                pass  # a bad copy is replaced below; the rename is atomic
            else:
                paths.append(dest)
                continue
        _fetch(f"{base_url.rstrip('/')}/{spec.name}", dest, spec, timeout, progress)
        paths.append(dest)
    return paths
