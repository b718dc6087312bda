"""Model file checks, loading and download (audiosearch.encoders.model_files), generated files."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from audiosearch.encoders.model_files import (
    DOWNLOAD_COMMAND,
    RELEASE_URL,
    VGGISH_FILES,
    VGGISH_PCA_PARAMS,
    VGGISH_WEIGHTS,
    ModelFile,
    download_model_files,
    expected_sha256,
    load_checkpoint,
    sha256_prefix_from_name,
    verify_model_file,
)
from audiosearch.errors import InvalidInputError, ModelFileError

# Nothing listens on the discard port of the loopback interface.
UNREACHABLE = "http://127.0.0.1:9/x"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save_named(obj: object, directory: Path, stem: str, **save_kwargs: object) -> Path:
    """torch.save ``obj`` as ``<stem>-<first 8 hex of its sha256>.pth`` (the hub convention)."""
    tmp = directory / f"{stem}.tmp"
    torch.save(obj, tmp, **save_kwargs)
    final = directory / f"{stem}-{_sha256(tmp.read_bytes())[:8]}.pth"
    tmp.rename(final)
    return final


def _assert_one_line_naming(exc: pytest.ExceptionInfo, path: Path | str) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message
    return message


SMALL_SPEC = {"a.weight": (3, 2), "a.bias": (3,)}


def _small_state() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.arange(6, dtype=torch.float32).reshape(3, 2), "a.bias": torch.ones(3)}


# --- published constants ------------------------------------------------------------------------


def test_official_names_carry_a_prefix_of_their_digest() -> None:
    assert [f.name for f in VGGISH_FILES] == [
        "vggish-10086976.pth",
        "vggish_pca_params-970ea276.pth",
    ]
    for spec in VGGISH_FILES:
        prefix = sha256_prefix_from_name(spec.name)
        assert prefix is not None and spec.sha256.startswith(prefix)
        assert expected_sha256(Path("/nowhere") / spec.name) == spec.sha256
    assert len(VGGISH_WEIGHTS.sha256) == 64  # full digest known for the weights
    assert VGGISH_PCA_PARAMS.sha256 == "970ea276"  # only the published prefix for the PCA file


def test_release_urls_match_torchvggish() -> None:
    tv = pytest.importorskip("torchvggish.torchvggish")
    assert f"{RELEASE_URL}/{VGGISH_WEIGHTS.name}" == tv.VGGISH_WEIGHTS
    assert f"{RELEASE_URL}/{VGGISH_PCA_PARAMS.name}" == tv.PCA_PARAMS


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("vggish-10086976.pth", "10086976"),
        ("vggish_pca_params-970ea276.pth", "970ea276"),
        ("my-model-0123456789abcdef.pt", "0123456789abcdef"),
        ("vggish.pth", None),
        ("vggish-1234567.pth", None),  # fewer than 8 hex digits is no checksum
        ("vggish-XYZ12345.pth", None),
    ],
)
def test_sha256_prefix_from_name(name: str, prefix: str | None) -> None:
    assert sha256_prefix_from_name(name) == prefix


# --- verify_model_file ---------------------------------------------------------------------------


def test_verify_accepts_a_file_whose_name_carries_its_prefix(tmp_path: Path) -> None:
    path = _save_named(_small_state(), tmp_path, "small")
    digest = verify_model_file(path)
    assert digest == _sha256(path.read_bytes())
    assert verify_model_file(path, digest) == digest  # full digest
    assert verify_model_file(path, digest[:8].upper()) == digest  # case-insensitive prefix


def test_verify_missing_file_names_it_and_the_download_command(tmp_path: Path) -> None:
    path = tmp_path / "vggish-10086976.pth"
    with pytest.raises(ModelFileError) as exc:
        verify_model_file(path)
    assert DOWNLOAD_COMMAND in _assert_one_line_naming(exc, path)


def test_verify_wrong_checksum(tmp_path: Path) -> None:
    path = tmp_path / "small-deadbeef.pth"
    torch.save(_small_state(), path)
    with pytest.raises(ModelFileError) as exc:
        verify_model_file(path)
    assert "checksum" in _assert_one_line_naming(exc, path)


def test_verify_truncated_file(tmp_path: Path) -> None:
    path = _save_named(_small_state(), tmp_path, "small")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as exc:
        verify_model_file(path)
    message = _assert_one_line_naming(exc, path)
    assert "truncated" in message and f"{len(data) // 2:,} bytes" in message


def test_verify_name_without_checksum_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(_small_state(), path)
    with pytest.raises(ModelFileError) as exc:
        verify_model_file(path)
    _assert_one_line_naming(exc, path)
    # An explicit expectation is enough for such a file.
    assert verify_model_file(path, _sha256(path.read_bytes())[:10])


def test_verify_rejects_a_malformed_expectation(tmp_path: Path) -> None:
    path = _save_named(_small_state(), tmp_path, "small")
    with pytest.raises(InvalidInputError):
        verify_model_file(path, "abc")


# --- load_checkpoint -----------------------------------------------------------------------------


def test_load_checkpoint_round_trip(tmp_path: Path) -> None:
    state = _small_state()
    path = _save_named(state, tmp_path, "small")
    loaded = load_checkpoint(path, SMALL_SPEC)
    assert set(loaded) == set(state)
    for key in state:
        assert torch.equal(loaded[key], state[key])


def test_load_checkpoint_accepts_numpy_arrays_from_numpy_1_era_pickles(tmp_path: Path) -> None:
    """The PCA release file holds numpy float64 arrays pickled as ``numpy.core.multiarray``."""
    eig = np.random.default_rng(0).standard_normal((4, 4))
    means = np.arange(4, dtype=np.float64)
    path = tmp_path / "pca.pth"
    torch.save(
        {"pca_eigen_vectors": eig, "pca_means": means}, path, _use_new_zipfile_serialization=False
    )
    data = path.read_bytes()
    assert b"numpy._core.multiarray" in data  # written by numpy 2; rewrite as numpy 1 did
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    loaded = load_checkpoint(path, {"pca_eigen_vectors": (4, 4), "pca_means": [(4,), (4, 1)]})
    assert loaded["pca_eigen_vectors"].dtype == torch.float64
    np.testing.assert_array_equal(loaded["pca_eigen_vectors"].numpy(), eig)
    np.testing.assert_array_equal(loaded["pca_means"].numpy(), means)


def test_load_checkpoint_wrong_keys(tmp_path: Path) -> None:
    state = _small_state()
    state["extra"] = state.pop("a.bias")
    path = tmp_path / "small.pth"
    torch.save(state, path)
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    message = _assert_one_line_naming(exc, path)
    assert "a.bias" in message and "extra" in message


def test_load_checkpoint_wrong_shape(tmp_path: Path) -> None:
    state = _small_state()
    state["a.weight"] = torch.zeros(2, 3)
    path = tmp_path / "small.pth"
    torch.save(state, path)
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    message = _assert_one_line_naming(exc, path)
    assert "a.weight" in message and "(2, 3)" in message and "(3, 2)" in message


def test_load_checkpoint_shape_alternatives(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    torch.save({"m": torch.zeros(4, 1)}, path)
    assert load_checkpoint(path, {"m": [(4,), (4, 1)]})["m"].shape == (4, 1)
    with pytest.raises(ModelFileError):
        load_checkpoint(path, {"m": [(4,), (1, 4)]})


def test_load_checkpoint_non_float_entry(tmp_path: Path) -> None:
    path = tmp_path / "small.pth"
    torch.save({"a.weight": torch.zeros(3, 2, dtype=torch.int64), "a.bias": torch.ones(3)}, path)
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    assert "a.weight" in _assert_one_line_naming(exc, path)


def test_load_checkpoint_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    _assert_one_line_naming(exc, path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_load_checkpoint_corrupt_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "small.pth"
    torch.save(_small_state(), path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(1).bytes(len(data)))
    else:
        path.write_bytes(b"")
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    assert "not a readable PyTorch weights file" in _assert_one_line_naming(exc, path)


_CODE_RAN: list[bool] = []


def _run_code() -> torch.Tensor:
    _CODE_RAN.append(True)
    return torch.zeros(3, 2)


class _Payload:
    """Pickles as a call to ``_run_code``: a file that executes code when loaded unsafely."""

    def __reduce__(self) -> tuple:
        return (_run_code, ())


def test_load_checkpoint_refuses_code_in_the_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"a.weight": _Payload(), "a.bias": torch.ones(3)}, path)
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    assert "not a readable PyTorch weights file" in _assert_one_line_naming(exc, path)
    assert not _CODE_RAN


def test_load_checkpoint_extra_key_only(tmp_path: Path) -> None:
    state = _small_state()
    state["num_batches_tracked"] = torch.zeros(1)
    path = tmp_path / "small.pth"
    torch.save(state, path)
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    message = _assert_one_line_naming(exc, path)
    assert "unexpected keys" in message and "missing" not in message


def test_load_checkpoint_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(ModelFileError) as exc:
        load_checkpoint(path, SMALL_SPEC)
    assert DOWNLOAD_COMMAND in _assert_one_line_naming(exc, path)


# --- download_model_files ------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback HTTP server; tests put ``{path: body}`` into the returned dict."""
    routes: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server dispatches on this name
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rel", routes
    finally:
        server.shutdown()
        server.server_close()


def _spec_for(body: bytes, stem: str = "thing") -> ModelFile:
    digest = _sha256(body)
    return ModelFile(f"{stem}-{digest[:8]}.bin", digest, "test file")


def test_download_to_unreachable_url_fails_clearly(tmp_path: Path) -> None:
    models = tmp_path / "models"
    with pytest.raises(ModelFileError) as exc:
        download_model_files(models, base_url=UNREACHABLE, timeout=5, progress=False)
    message = str(exc.value)
    assert "\n" not in message
    assert "download of http://127.0.0.1:9/x/vggish-10086976.pth failed" in message
    assert "refused" in message.lower()  # why
    assert str(models / "vggish-10086976.pth") in message  # how to place it by hand
    assert list(models.iterdir()) == []  # no partial file left behind


def test_download_http_error_is_reported(tmp_path: Path, http_server: tuple) -> None:
    base, _routes = http_server
    spec = _spec_for(b"payload")
    with pytest.raises(ModelFileError) as exc:
        download_model_files(tmp_path, base_url=base, files=[spec], progress=False)
    assert "404" in str(exc.value) and "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_download_writes_verified_files(tmp_path: Path, http_server: tuple) -> None:
    base, routes = http_server
    bodies = [b"first file" * 1000, b"second"]
    specs = [_spec_for(b, f"f{i}") for i, b in enumerate(bodies)]
    for spec, body in zip(specs, bodies, strict=True):
        routes[f"/rel/{spec.name}"] = body
    paths = download_model_files(tmp_path / "m", base_url=base, files=specs, progress=False)
    assert paths == [tmp_path / "m" / s.name for s in specs]
    assert [p.read_bytes() for p in paths] == bodies
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(s.name for s in specs)


def test_download_refuses_a_file_failing_its_checksum(tmp_path: Path, http_server: tuple) -> None:
    base, routes = http_server
    spec = _spec_for(b"the real file")
    routes[f"/rel/{spec.name}"] = b"something else"
    with pytest.raises(ModelFileError) as exc:
        download_model_files(tmp_path, base_url=base, files=[spec], progress=False)
    message = _assert_one_line_naming(exc, tmp_path / spec.name)
    assert "checksum" in message
    assert list(tmp_path.iterdir()) == []  # not renamed into place, temp file removed


def test_download_keeps_valid_files_and_replaces_bad_ones(
    tmp_path: Path, http_server: tuple
) -> None:
    base, routes = http_server
    good, bad = _spec_for(b"good", "g"), _spec_for(b"fresh", "b")
    (tmp_path / good.name).write_bytes(b"good")
    (tmp_path / bad.name).write_bytes(b"stale or truncated")
    routes[f"/rel/{bad.name}"] = b"fresh"  # the good file is not served: it must not be fetched
    download_model_files(tmp_path, base_url=base, files=[good, bad], progress=False)
    assert (tmp_path / good.name).read_bytes() == b"good"
    assert (tmp_path / bad.name).read_bytes() == b"fresh"


def test_download_skips_network_when_files_are_present(tmp_path: Path) -> None:
    spec = _spec_for(b"already here")
    (tmp_path / spec.name).write_bytes(b"already here")
    assert download_model_files(tmp_path, base_url=UNREACHABLE, files=[spec]) == [
        tmp_path / spec.name
    ]
