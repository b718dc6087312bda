"""Batched encoding (windows of many files per forward pass) gives the per-chunk vectors.

The per-chunk reference embeds each 4 s chunk on its own, cut out of the decoded clip, through
an independent front-end: torchvggish's ``vggish_input.waveform_to_examples`` for VGGish (with
generated VGGish-shaped weights), aisfx's front-end on the one resampled chunk for sfx. The
batched side is ``embed_batch`` over real toy clips, with batch sizes that make forward passes
run across files. Vectors are compared after scaling to unit length (what cosine search sees)
to 1e-5; different windows of a clip differ by orders of magnitude more.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soxr
import torch
from docarray import DocList

from audiosearch.audio import SAMPLE_RATE, load_audio
from audiosearch.audio.segment import Segments, segment
from audiosearch.encoders import Encoder
from audiosearch.encoders.sfx import MODEL_RATE, SfxEncoder
from executors.docs import AudioDoc, ChunkDoc
from tests.conftest import GeneratedVGGish, Server, toy_clips

WINDOW = 64_000
TOLERANCE = 1e-5
#: A short clip (looped to one window), clips with a tail window off the 2 s grid, and
#: long ones, in every container format of toy-data.
CLIP_NAMES = [
    "snare_hit_1p5s.wav", "piano_phrase_10s.wav", "speech_es.flac", "brass_fanfare.mp3",
    "flute_melody.ogg", "violin_melody.m4a", "harp_arpeggio.opus", "rock_drum_beat.wav",
]  # fmt: skip


@pytest.fixture(scope="module")
def clips() -> list[Segments]:
    by_name = {p.name: p for p in toy_clips()}
    return [segment(load_audio(by_name[name])) for name in CLIP_NAMES]


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def assert_same_vectors(batched: list[np.ndarray], per_chunk: list[np.ndarray]) -> None:
    assert [len(b) for b in batched] == [len(p) for p in per_chunk]
    got, expected = unit(np.concatenate(batched)), unit(np.concatenate(per_chunk))
    assert np.abs(got - expected).max() <= TOLERANCE
    # The comparison can fail: neighbouring windows are far apart at this tolerance.
    assert np.abs(expected[1:] - expected[:-1]).max(axis=1).min() > 100 * TOLERANCE


def vggish_per_chunk(generated: GeneratedVGGish, seg: Segments) -> np.ndarray:
    """torchvggish's front-end and one forward pass per 4 s chunk, then the PCA projection."""
    vggish_input = pytest.importorskip("torchvggish.vggish_input")
    vectors = []
    for s in seg.starts:
        examples = vggish_input.waveform_to_examples(seg.waveform[s : s + WINDOW], SAMPLE_RATE)
        with torch.inference_mode():
            raw = generated.network(examples.detach()).numpy().astype(np.float64)
        vectors.append(((raw - generated.means) @ generated.eig.T).reshape(-1))
    return np.array(vectors)


def sfx_per_chunk(encoder: SfxEncoder, seg: Segments) -> np.ndarray:
    """The chunk resampled on its own, aisfx's log-mel and one forward pass per chunk through
    the network in PyTorch's default memory layout."""
    network = copy.deepcopy(encoder.net).to(memory_format=torch.contiguous_format)
    vectors = []
    for s in seg.starts:
        chunk = soxr.resample(seg.waveform[s : s + WINDOW], SAMPLE_RATE, MODEL_RATE)
        with torch.inference_mode():
            vectors.append(network(torch.from_numpy(encoder.log_mel(chunk[None]))).numpy()[0])
    return np.array(vectors)


@pytest.mark.parametrize("batch_size", [12, 64])  # examples: 3 windows, 16 windows
def test_vggish_batched_equals_per_chunk(
    generated_vggish: GeneratedVGGish, clips: list[Segments], batch_size: int
) -> None:
    encoder: Encoder = generated_vggish.encoder(batch_size=batch_size)
    batched = encoder.embed_batch([(seg.waveform, seg.starts) for seg in clips])
    assert_same_vectors(batched, [vggish_per_chunk(generated_vggish, seg) for seg in clips])


@pytest.fixture(scope="module")
def sfx_per_chunk_vectors(clips: list[Segments]) -> list[np.ndarray]:
    encoder = SfxEncoder()
    return [sfx_per_chunk(encoder, seg) for seg in clips]


@pytest.mark.parametrize("batch_size", [5, 32])
def test_sfx_batched_equals_per_chunk(
    clips: list[Segments], sfx_per_chunk_vectors: list[np.ndarray], batch_size: int
) -> None:
    encoder: Encoder = SfxEncoder(batch_size=batch_size)
    batched = encoder.embed_batch([(seg.waveform, seg.starts) for seg in clips])
    assert_same_vectors(batched, sfx_per_chunk_vectors)


def test_embed_windows_is_a_batch_of_one(
    generated_vggish: GeneratedVGGish, clips: list[Segments]
) -> None:
    encoder = generated_vggish.encoder()
    seg = clips[1]
    [batched] = encoder.embed_batch([(seg.waveform, seg.starts)])
    np.testing.assert_array_equal(encoder.embed_windows(seg.waveform, seg.starts), batched)
    assert encoder.embed_batch([]) == []


def test_a_bad_document_fails_alone_in_a_batched_request(clips: list[Segments]) -> None:
    """The encoder executor batches a request's documents; one bad one must not sink the rest."""
    from executors.encoder import AudioEncoder

    executor = AudioEncoder(encoder="sfx")

    def doc(seg: Segments, uri: str) -> AudioDoc:
        chunks = DocList[ChunkDoc](
            ChunkDoc(start=float(a), end=float(b))
            for a, b in zip(seg.start_seconds, seg.end_seconds, strict=True)
        )
        return AudioDoc(uri=uri, tensor=seg.waveform, chunks=chunks)

    good = [doc(clips[0], "a.wav"), doc(clips[1], "b.wav")]
    bad = doc(clips[1], "cut.wav")
    bad.tensor = clips[1].waveform[:WINDOW]  # its chunks now reach past the waveform's end
    docs = executor.encode(DocList[AudioDoc]([good[0], bad, good[1]]), parameters={})
    assert [d.status for d in docs] == [None, "error", None]
    assert "cut.wav" in docs[1].error
    for d, seg in zip(good, clips[:2], strict=True):
        assert d.encoder.startswith("sfx/") and d.tensor is None
        vectors = np.array([c.embedding for c in d.chunks])
        np.testing.assert_allclose(unit(vectors), unit(sfx_per_chunk(executor.model, seg)),
                                   rtol=0, atol=TOLERANCE)  # fmt: skip


def test_a_long_file_travels_as_its_path_and_is_embedded_as_if_carried(tmp_path) -> None:
    """Past ``max_carried_seconds`` the segmenter sends no waveform; the encoder decodes the
    file again and gets the vectors it would have got from the carried waveform."""
    import soundfile as sf

    from executors.encoder import AudioEncoder
    from executors.segmenter import AudioSegmenter

    long, short = tmp_path / "long.flac", tmp_path / "short.wav"
    waveform = load_audio(toy_clips()[0], sample_rate=22_050)
    sf.write(long, np.tile(waveform, 4)[: 22_050 * 19], 22_050)
    sf.write(short, waveform[: 22_050 * 5], 22_050)
    policy = {"allowed_roots": [str(tmp_path)]}  # flow.yml gives both the same read_policy
    encoder = AudioEncoder(encoder="sfx", read_policy=policy)

    def index(max_carried_seconds: float, *paths: Path) -> DocList[AudioDoc]:
        segmenter = AudioSegmenter(read_policy=policy, max_carried_seconds=max_carried_seconds)
        return segmenter.segment_files(DocList[AudioDoc](AudioDoc(uri=str(p)) for p in paths))

    carried = encoder.encode(index(600, long, short), parameters={})
    segmented = index(10, long, short)
    assert segmented[0].tensor is None and segmented[0].decode_again  # 19 s > 10 s
    assert segmented[1].tensor is not None and not segmented[1].decode_again
    # The flag is the segmenter's alone: a client that sets it has the encoder read nothing.
    sneaky = DocList[AudioDoc]([AudioDoc(uri="/etc/passwd", clip_id=1, decode_again=True)])
    segmenter = AudioSegmenter(read_policy=policy)
    assert segmenter.segment_queries(sneaky)[0].decode_again is None
    assert segmenter.segment_files(sneaky)[0].decode_again is None
    again = encoder.encode(segmented, parameters={})
    for a, b in zip(carried, again, strict=True):
        assert b.status is None and b.encoder == a.encoder and b.tensor is None
        np.testing.assert_allclose(  # other batch company: float rounding differs, no more
            unit(np.array([c.embedding for c in b.chunks])),
            unit(np.array([c.embedding for c in a.chunks])), rtol=0, atol=TOLERANCE,
        )  # fmt: skip
    # A file rewritten between the two decodes (same length, other sound) fails alone, saying so.
    segmented = index(10, long, short)
    sf.write(long, -np.tile(waveform, 4)[: 22_050 * 19], 22_050)
    changed = encoder.encode(segmented, parameters={})
    assert changed[0].status == "error" and "changed while it was being indexed" in changed[0].error
    assert changed[1].status is None and len(changed[1].chunks[0].embedding) == 512


@pytest.mark.slow
def test_indexed_in_a_batch_then_searched_alone_scores_one(sfx_server: Server) -> None:
    """End to end: vectors of clips indexed together equal those of the clip searched alone."""
    paths = [p for p in toy_clips() if p.name in CLIP_NAMES]
    indexed = sfx_server.post("index", [{"uri": str(p)} for p in paths])
    assert {d["status"] for d in indexed} <= {"added", "unchanged"}, indexed
    for path in paths[:3]:
        [doc] = sfx_server.post("search", [{"uri": str(path)}], limit=1)
        [top] = doc["matches"]
        assert top["uri"] == str(path)
        assert top["score"] == pytest.approx(1.0, abs=TOLERANCE)
