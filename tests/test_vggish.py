"""VGGish front-end, network, postprocessing and encoder (audiosearch.encoders.vggish).

The real weights are not available to the tests. The front-end is checked against the issue's
reference figures, an independent implementation written here from the published formulas, and
(where installed) torchvggish's copy of the reference code. The network and loader are checked
with a checkpoint generated from random numbers in a temporary directory: it has the real keys
and shapes, is never saved anywhere else, and says nothing about embedding quality.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from audiosearch.encoders import Encoder
from audiosearch.encoders.vggish import (
    PCA_STATE_SHAPES,
    VGGISH_NUM_PARAMETERS,
    VGGISH_STATE_SHAPES,
    VGGishEncoder,
    VGGishNetwork,
    dequantize,
    log_mel_spectrogram,
    mel_matrix,
    num_frames,
    pca_project,
    postprocess,
    quantize,
    smoke_test,
    to_float_waveform,
    waveform_to_examples,
    window_examples,
)
from audiosearch.errors import InvalidInputError, ModelFileError
from tests.conftest import GeneratedVGGish as Generated
from tests.conftest import save_named

SR = 16000
LOG_SILENCE = math.log(0.01)  # -4.60517...

# ---------------------------------------------------------------------------------------------
# An independent, deliberately plain implementation of the reference formulas
# (mel_features.py): explicit loops for the mel matrix, a direct DFT (no FFT), a loop over frames.
# ---------------------------------------------------------------------------------------------


def _mel(hz: float) -> float:
    return 1127.0 * math.log(1.0 + hz / 700.0)


def plain_mel_matrix() -> np.ndarray:
    num_bins, num_bands = 257, 64
    lo, hi = _mel(125.0), _mel(7500.0)
    edges = [lo + (hi - lo) * j / (num_bands + 1) for j in range(num_bands + 2)]
    w = np.zeros((num_bins, num_bands))
    for k in range(1, num_bins):  # bin 0 (DC) stays zero
        m = _mel(k * (SR / 2) / (num_bins - 1))
        for b in range(num_bands):
            left, center, right = edges[b], edges[b + 1], edges[b + 2]
            w[k, b] = max(0.0, min((m - left) / (center - left), (right - m) / (right - center)))
    return w


def plain_log_mel(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    hann = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / 400) for n in range(400)])
    n = np.arange(400)
    dft = np.exp(-2j * np.pi * np.outer(n, np.arange(257)) / 512)  # zero-padded 512-point DFT
    weights = plain_mel_matrix()
    count = 1 + (len(x) - 400) // 160
    out = np.empty((count, 64))
    for t in range(count):
        spectrum = np.abs((x[160 * t : 160 * t + 400] * hann) @ dft)
        out[t] = np.log(spectrum @ weights + 0.01)
    return out


def smoke_sine() -> np.ndarray:
    t = np.arange(0, 3, 1 / SR)  # exactly as vggish_smoke_test.py
    return np.sin(2 * np.pi * 1000 * t)


def chirp(seconds: float, f0: float, f1: float, amplitude: float = 0.8) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (amplitude * np.sin(phase)).astype(np.float32)


# --- front-end against the figures -------------------------------------------------------


def test_mel_matrix_matches_reference_figures() -> None:
    m = mel_matrix()
    assert m.shape == (257, 64)
    assert m.sum() == pytest.approx(230.9136, abs=1e-4)
    nonzero_rows = np.nonzero(m.any(axis=1))[0]
    assert nonzero_rows[0] == 5 and nonzero_rows[-1] == 239
    assert np.all(m[0] == 0)


def test_smoke_input_matches_reference_figures() -> None:
    x = smoke_sine()
    assert len(x) == 48000
    log_mel = log_mel_spectrogram(x)
    examples = waveform_to_examples(x)
    assert log_mel.shape == (298, 64)
    assert examples.shape == (3, 96, 64)
    assert examples.mean() == pytest.approx(-3.4296, abs=1e-4)
    assert examples.std() == pytest.approx(2.1266, abs=1e-4)
    assert examples.min() == pytest.approx(-4.6012, abs=1e-4)
    assert examples.max() == pytest.approx(4.8111, abs=1e-4)


# --- front-end against the independent implementation ---------------------------------------------


def test_plain_implementation_reproduces_the_reference_figures() -> None:
    """Guards the guard: the test's own implementation must agree with the published numbers."""
    assert plain_mel_matrix().sum() == pytest.approx(230.9136, abs=1e-4)
    ex = plain_log_mel(smoke_sine())[:288]
    assert ex.mean() == pytest.approx(-3.4296, abs=1e-4)
    assert ex.max() == pytest.approx(4.8111, abs=1e-4)


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(
            lambda: np.random.default_rng(1).uniform(-0.5, 0.5, SR).astype(np.float32), id="noise"
        ),
        pytest.param(
            lambda: (0.01 * np.random.default_rng(2).standard_normal(SR)).astype(np.float32),
            id="quiet-noise",
        ),
        pytest.param(lambda: chirp(1.0, 50.0, 7950.0), id="linear-chirp"),
        pytest.param(lambda: chirp(1.3, 7000.0, 200.0, amplitude=0.3), id="falling-chirp"),
        pytest.param(lambda: np.zeros(SR, dtype=np.float32), id="silence"),
        pytest.param(smoke_sine, id="sine-float64"),
    ],
)
def test_front_end_matches_plain_implementation(signal: Callable[[], np.ndarray]) -> None:
    x = signal()
    np.testing.assert_allclose(log_mel_spectrogram(x), plain_log_mel(x), rtol=0, atol=1e-4)


def test_front_end_matches_torchvggish_reference_code() -> None:
    mf = pytest.importorskip("torchvggish.mel_features")
    x = np.concatenate([chirp(2.0, 100, 7000), np.random.default_rng(3).uniform(-1, 1, SR)])
    ref = mf.log_mel_spectrogram(
        x.astype(np.float64),
        audio_sample_rate=SR,
        log_offset=0.01,
        window_length_secs=0.025,
        hop_length_secs=0.010,
        num_mel_bins=64,
        lower_edge_hertz=125,
        upper_edge_hertz=7500,
    )
    np.testing.assert_allclose(log_mel_spectrogram(x), ref, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(
        mel_matrix(), mf.spectrogram_to_mel_matrix(64, 257, SR, 125.0, 7500.0)
    )


def test_silence_is_log_offset_everywhere() -> None:
    log_mel = log_mel_spectrogram(np.zeros(3 * SR, dtype=np.float32))
    assert log_mel.shape == (298, 64)
    np.testing.assert_allclose(log_mel, LOG_SILENCE, rtol=0, atol=1e-6)
    assert math.isclose(LOG_SILENCE, -4.60517, abs_tol=1e-5)


# --- input scaling ----------------------------------------------------------------------------


def test_int16_and_float_give_the_same_log_mel() -> None:
    pcm = (np.random.default_rng(4).uniform(-0.7, 0.7, 2 * SR) * 32768).astype(np.int16)
    as_float = pcm.astype(np.float32) / 32768
    from_int = log_mel_spectrogram(pcm)
    np.testing.assert_allclose(from_int, log_mel_spectrogram(as_float), rtol=0, atol=1e-3)
    # Scaling twice (the tutorial bug) would leave almost nothing above the log offset.
    assert from_int.mean() > LOG_SILENCE + 5


def test_to_float_waveform_scales_int16_once_and_floats_never() -> None:
    pcm = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_array_equal(
        to_float_waveform(pcm), np.array([-1, -0.5, 0, 0.5, 32767 / 32768], dtype=np.float32)
    )
    floats = np.array([-1.0, 0.25, 1.0], dtype=np.float32)
    assert to_float_waveform(floats) is floats


@pytest.mark.parametrize(
    "bad",
    [
        np.array([0.0, 1000.0, -2000.0], dtype=np.float32),  # integer PCM stored as float
        np.array([0.0, np.nan], dtype=np.float32),
        np.array([0.0, np.inf]),
        np.zeros((2, 400), dtype=np.float32),  # not mono
        np.zeros(400, dtype=np.int32),  # ambiguous integer scale
    ],
)
def test_bad_waveforms_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(InvalidInputError):
        log_mel_spectrogram(bad)


# --- framing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [400, 401, 559, 560, 15_599, 15_600, 16_000, 48_000, 64_000, 64_159])
def test_frame_count(n: int) -> None:
    expected = 1 + math.floor((n - 400) / 160)
    assert num_frames(n) == expected
    assert log_mel_spectrogram(np.zeros(n, dtype=np.float32)).shape == (expected, 64)
    assert waveform_to_examples(np.zeros(n, dtype=np.float32)).shape == (expected // 96, 96, 64)


@pytest.mark.parametrize("n", [0, 1, 399])
def test_too_short_gives_no_frames(n: int) -> None:
    assert num_frames(n) == 0
    assert log_mel_spectrogram(np.zeros(n, dtype=np.float32)).shape == (0, 64)
    assert waveform_to_examples(np.zeros(n, dtype=np.float32)).shape == (0, 96, 64)


def test_one_example_needs_15600_samples_and_4s_give_exactly_4() -> None:
    assert waveform_to_examples(np.zeros(15_600, dtype=np.float32)).shape[0] == 1
    assert waveform_to_examples(np.zeros(15_599, dtype=np.float32)).shape[0] == 0
    x = np.random.default_rng(5).uniform(-1, 1, 64_000).astype(np.float32)
    assert num_frames(64_000) == 398
    examples = waveform_to_examples(x)
    assert examples.shape == (4, 96, 64)
    # Consecutive, non-overlapping: example i is frames 96 i .. 96 i + 95.
    np.testing.assert_array_equal(examples.reshape(-1, 64), log_mel_spectrogram(x)[:384])


def test_windows_sliced_from_whole_file_equal_per_chunk_log_mel() -> None:
    x = np.random.default_rng(6).uniform(-1, 1, 12 * SR).astype(np.float32)
    # On the usual 2 s grid, plus starts off the 160-sample frame grid.
    starts = np.array([0, 32_000, 64_000, 128_000, 1, 159, 161, 32_123, 100_000, 128_000])
    sliced = window_examples(x, starts)
    per_chunk = np.stack([waveform_to_examples(x[s : s + 64_000]) for s in starts])
    assert sliced.shape == (len(starts), 4, 96, 64)
    np.testing.assert_array_equal(sliced, per_chunk)  # exactly, not approximately


def test_long_input_is_processed_in_blocks_identically() -> None:
    """More frames than one internal block: the block seams must not show."""
    x = np.random.default_rng(7).uniform(-1, 1, 4096 * 160 + 5000).astype(np.float32)
    whole = log_mel_spectrogram(x)
    assert whole.shape[0] > 4096
    seam = 4096 * 160
    part = log_mel_spectrogram(x[4090 * 160 : seam + 2000])
    np.testing.assert_array_equal(whole[4090:4100], part[:10])


# --- network -------------------------------------------------------------------------------------


def test_network_has_published_parameter_count_and_keys() -> None:
    with torch.device("meta"):  # shapes only: no 288 MB allocation or random init
        net = VGGishNetwork()
    assert sum(p.numel() for p in net.parameters()) == VGGISH_NUM_PARAMETERS == 72_141_184
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == VGGISH_STATE_SHAPES


def test_network_matches_torchvggish_module_and_flatten_order() -> None:
    tv = pytest.importorskip("torchvggish.torchvggish")
    torch.manual_seed(0)
    theirs = tv._vgg(postprocess=False).eval()
    state = theirs.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == VGGISH_STATE_SHAPES
    with torch.device("meta"):
        ours_relu, ours = VGGishNetwork(final_relu=True), VGGishNetwork(final_relu=False)
    ours_relu.load_state_dict(state, strict=True, assign=True)
    ours.load_state_dict(state, strict=True, assign=True)
    ours_relu.eval(), ours.eval()
    x = torch.from_numpy(waveform_to_examples(chirp(2.0, 200, 6000))).unsqueeze(1)
    with torch.inference_mode():
        expected = theirs(x)
        np.testing.assert_allclose(ours_relu(x).numpy(), expected.numpy(), rtol=0, atol=1e-6)
        no_relu = ours(x)
    np.testing.assert_allclose(torch.relu(no_relu).numpy(), expected.numpy(), rtol=0, atol=1e-6)
    # A channels-first flatten would change the fc input order; prove the output notices.
    with torch.inference_mode():
        feats = theirs.features(x)
        wrong = theirs.embeddings(feats.reshape(feats.shape[0], -1))
    assert not torch.allclose(wrong, expected, atol=1e-3)


# --- postprocessing -------------------------------------------------------------------------------


def test_pca_project_is_e_times_x_minus_mu() -> None:
    rng = np.random.default_rng(8)
    eig, means, raw = (
        rng.standard_normal((128, 128)),
        rng.standard_normal(128),
        rng.random((5, 128)),
    )
    # vggish_postprocess.py: np.dot(pca_matrix, (embeddings_batch.T - pca_means)).T
    expected = np.dot(eig, raw.T - means.reshape(-1, 1)).T
    np.testing.assert_allclose(pca_project(raw, eig, means), expected, rtol=1e-5, atol=1e-4)


def test_quantize_clips_and_truncates_like_the_reference() -> None:
    values = np.array([[-3.0, -2.0, 0.0, 1.99, 2.0, 5.0]])
    # (x + 2) * 255 / 4, then astype(uint8): 0 -> 127.5 -> 127 (rounding would give 128).
    np.testing.assert_array_equal(quantize(values), [[0, 0, 127, 254, 255, 255]])
    assert quantize(values).dtype == np.uint8


def test_dequantize_inverts_the_scale() -> None:
    np.testing.assert_allclose(dequantize(np.array([0, 255, 51])), [-2.0, 2.0, 51 / 255 * 4 - 2])
    x = np.linspace(-2, 2, 1001)
    err = np.abs(dequantize(quantize(x)) - x)
    assert err.max() <= 4 / 255 + 1e-6


def test_postprocess_is_quantized_projection() -> None:
    rng = np.random.default_rng(9)
    eig, means, raw = (
        rng.standard_normal((128, 128)),
        rng.standard_normal(128),
        rng.random((3, 128)),
    )
    np.testing.assert_array_equal(
        postprocess(raw, eig, means), quantize(pca_project(raw, eig, means))
    )


# --- generated checkpoint and encoder ------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(generated_vggish: Generated) -> Generated:
    return generated_vggish


@pytest.fixture(scope="module")
def encoder(generated: Generated) -> VGGishEncoder:
    return generated.encoder()


def _place(generated: Generated, name: str, dest: Path) -> Path:
    """Put a generated file into ``dest`` for reading only: a hard link, so no 288 MB copy."""
    target = dest / name
    try:
        os.link(generated.dir / name, target)
    except OSError:
        shutil.copy(generated.dir / name, target)
    return target


def test_generated_checkpoint_round_trips(generated: Generated, encoder: VGGishEncoder) -> None:
    loaded = encoder.network.state_dict()
    assert set(loaded) == set(generated.state)
    for key, value in generated.state.items():
        assert torch.equal(loaded[key], value), key
    assert sum(p.numel() for p in encoder.network.parameters()) == 72_141_184
    examples = waveform_to_examples(chirp(2.0, 300, 5000))
    with torch.inference_mode():
        expected = generated.network(torch.from_numpy(examples).unsqueeze(1)).numpy()
    # Same weights, other memory layout (channels-last): float32 rounding differs, no more.
    actual = encoder.embed_examples(examples)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(encoder.pca_eigen_vectors, generated.eig)
    np.testing.assert_array_equal(encoder.pca_means, generated.means)


def test_generated_checkpoint_loads_into_torchvggish(generated: Generated) -> None:
    tv = pytest.importorskip("torchvggish.torchvggish")
    state = torch.load(generated.dir / generated.weights_file, weights_only=True)
    tv._vgg(postprocess=False).load_state_dict(state, strict=True)


def test_encoder_follows_the_protocol(generated: Generated, encoder: VGGishEncoder) -> None:
    as_protocol: Encoder = encoder  # structural: a type checker verifies this line
    assert as_protocol.name == "vggish" and as_protocol.dim == 512
    assert isinstance(as_protocol.version, str) and callable(as_protocol.embed_windows)
    assert generated.weights_file[7:15] in encoder.version
    assert generated.pca_file[18:26] in encoder.version
    assert "norelu" in encoder.version and "pcacentred" in encoder.version
    empty = encoder.embed_windows(np.zeros(64_000, dtype=np.float32), np.array([], dtype=int))
    assert empty.shape == (0, 512) and empty.dtype == np.float32


def test_embed_windows_is_concatenated_pca_of_the_four_examples(
    generated: Generated, encoder: VGGishEncoder
) -> None:
    x = np.random.default_rng(10).uniform(-0.5, 0.5, 6 * SR).astype(np.float32)
    starts = np.array([0, 32_000])
    out = encoder.embed_windows(x, starts)
    assert out.shape == (2, 512) and out.dtype == np.float32
    for row, s in zip(out, starts, strict=True):
        examples = torch.from_numpy(waveform_to_examples(x[s : s + 64_000])).unsqueeze(1)
        with torch.inference_mode():
            raw = generated.network(examples).numpy().astype(np.float64)
        expected = ((raw - generated.means) @ generated.eig.T).reshape(-1)  # E (x - mu), no clip
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-4)


def test_embed_windows_whole_file_equals_per_chunk_and_int16(encoder: VGGishEncoder) -> None:
    pcm = (np.random.default_rng(11).uniform(-0.6, 0.6, 7 * SR) * 32768).astype(np.int16)
    x = pcm.astype(np.float32) / 32768
    starts = np.array([40_123, 16_000])  # unordered, one off the 160-sample frame grid
    whole = encoder.embed_windows(x, starts)
    assert np.abs(whole[0] - whole[1]).max() > 0.1  # windows differ far beyond the tolerance
    per_chunk = np.concatenate([encoder.embed_windows(x[s : s + 64_000], [0]) for s in starts])
    np.testing.assert_allclose(whole, per_chunk, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encoder.embed_windows(pcm, starts), whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("starts", [[-1], [32_001], [0.5], [[0]]])
def test_embed_windows_refuses_windows_outside_the_waveform(
    encoder: VGGishEncoder, starts: list
) -> None:
    with pytest.raises(InvalidInputError):
        encoder.embed_windows(np.zeros(96_000, dtype=np.float32), np.array(starts))


def test_final_relu_option(generated: Generated, encoder: VGGishEncoder) -> None:
    with_relu = generated.encoder(final_relu=True)
    assert with_relu.version != encoder.version and "-relu-" in with_relu.version
    examples = waveform_to_examples(chirp(1.0, 500, 3000))
    raw_off, raw_on = encoder.embed_examples(examples), with_relu.embed_examples(examples)
    assert (raw_off < 0).any()  # off (TF since Aug 2020) can be negative
    assert (raw_on >= 0).all()
    np.testing.assert_array_equal(raw_on, np.maximum(raw_off, 0))


def test_smoke_test_reports_figures_and_fails_with_random_weights(
    generated: Generated, encoder: VGGishEncoder
) -> None:
    result = smoke_test(
        generated.dir, weights_file=generated.weights_file, pca_file=generated.pca_file
    )
    raw = encoder.embed_examples(waveform_to_examples(smoke_sine()))
    post = encoder.postprocess(raw)
    assert result["examples"] == 3
    assert result["embedding_mean"] == pytest.approx(float(raw.mean()))
    assert result["postprocessed_std"] == pytest.approx(float(post.std()))
    assert result["expected"]["embedding_std"] == 0.343
    assert result["passed"] is False and result["failed"]


def test_smoke_test_without_weights_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        smoke_test(tmp_path)


# --- model file errors through the encoder --------------------------------------------------------


def _assert_one_line(exc: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_weights_names_the_download_command(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as exc:
        VGGishEncoder(tmp_path)
    _assert_one_line(exc, "vggish-10086976.pth", "python app.py models download")


def test_missing_pca_file_is_an_error(generated: Generated, tmp_path: Path) -> None:
    _place(generated, generated.weights_file, tmp_path)
    with pytest.raises(ModelFileError) as exc:
        VGGishEncoder(tmp_path, weights_file=generated.weights_file)
    _assert_one_line(exc, "vggish_pca_params-970ea276.pth", "python app.py models download")


def test_wrong_shape_in_weights(generated: Generated, tmp_path: Path) -> None:
    state = dict(generated.state)
    state["embeddings.4.weight"] = torch.zeros(128, 4095)
    name = save_named(state, tmp_path, "vggish")
    _place(generated, generated.pca_file, tmp_path)
    with pytest.raises(ModelFileError) as exc:
        VGGishEncoder(tmp_path, weights_file=name, pca_file=generated.pca_file)
    _assert_one_line(exc, str(tmp_path / name), "embeddings.4.weight", "(128, 4095)")


def test_wrong_keys_in_weights(generated: Generated, tmp_path: Path) -> None:
    # A DataParallel-style save: every key prefixed with "module." (keys are checked before
    # shapes, so small tensors do).
    name = save_named({f"module.{k}": torch.zeros(1) for k in generated.state}, tmp_path, "vggish")
    _place(generated, generated.pca_file, tmp_path)
    with pytest.raises(ModelFileError) as exc:
        VGGishEncoder(tmp_path, weights_file=name, pca_file=generated.pca_file)
    _assert_one_line(exc, str(tmp_path / name), "missing keys", "unexpected keys")


def test_wrong_shape_in_pca_file(generated: Generated, tmp_path: Path) -> None:
    name = save_named(
        {"pca_eigen_vectors": np.eye(64), "pca_means": np.zeros(128)}, tmp_path, "pca"
    )
    _place(generated, generated.weights_file, tmp_path)
    with pytest.raises(ModelFileError) as exc:
        VGGishEncoder(tmp_path, weights_file=generated.weights_file, pca_file=name)
    _assert_one_line(exc, str(tmp_path / name), "pca_eigen_vectors", "(64, 64)")
    assert set(PCA_STATE_SHAPES) == {"pca_eigen_vectors", "pca_means"}


def test_truncated_weights_file(generated: Generated, tmp_path: Path) -> None:
    """An interrupted download: the first third of the file under its full name."""
    path = tmp_path / generated.weights_file
    with (generated.dir / generated.weights_file).open("rb") as src:
        path.write_bytes(src.read(96_000_000))
    _place(generated, generated.pca_file, tmp_path)
    with pytest.raises(ModelFileError) as exc:
        VGGishEncoder(tmp_path, weights_file=generated.weights_file, pca_file=generated.pca_file)
    _assert_one_line(exc, str(path), "checksum", "truncated")


def test_corrupted_pca_file_wrong_checksum(generated: Generated, tmp_path: Path) -> None:
    _place(generated, generated.weights_file, tmp_path)
    path = tmp_path / generated.pca_file
    data = bytearray((generated.dir / generated.pca_file).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = b"\x00\xff" * 8  # same size, flipped bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as exc:
        VGGishEncoder(tmp_path, weights_file=generated.weights_file, pca_file=generated.pca_file)
    _assert_one_line(exc, str(path), "checksum")
