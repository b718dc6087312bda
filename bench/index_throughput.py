"""Indexing throughput: the per-chunk reference against our pipeline, in process and over HTTP.

    .venv/bin/python bench/index_throughput.py                    # everything, see below
    .venv/bin/python bench/index_throughput.py --minutes 5 --no-long-file   # a quick look

Input, generated on the first run into bench/data/throughput/ (gitignored): a library of files
cut from the toy-data/ clips, looped to 1-60 s, written as WAV, FLAC and MP3 at 16, 22.05, 32,
44.1 and 48 kHz, mono and stereo, at least ``--minutes`` (20) of audio in all; and one 2-hour
MP3 (22.05 kHz mono, a podcast) for memory.

For each encoder, side by side in this one run, every path indexes the whole library into a
fresh index (decode, 4 s windows at a 2 s stride, vectors, store):

- (a) reference: per 4 s chunk, the front-end and one forward pass, as the tutorial's hub
  encoder did. VGGish: torchvggish's ``vggish_input.waveform_to_examples`` and torchvggish's
  own network; sfx: the chunk resampled and its aisfx log-mel, one window per forward pass.
  Files are decoded by ``load_audio`` one after another.
- (b) ours, core only: ``embed_batch`` over 16 files at a time (batches run across files)
  while a thread decodes the next 16, then ``ChunkIndex.add``.
- (c) ours, end to end: ``app.py serve`` (the flow of flow.yml) and ``app.py index`` over HTTP.

VGGish runs with generated VGGish-shaped weights (tests/conftest.py GeneratedVGGish; speed does
not depend on the values), so no real weights are needed. (a) and (b) run in a process of
their own each, whose peak RSS is reported; for (c) it is the peak of the summed RSS of every
process of the flow, sampled every 0.2 s (the ``app.py index`` client is not counted). Times
start once the model is loaded (once the flow answers) and end when the last clip is stored.
Then (b) and (c) index the 2-hour file alone with the first encoder (the flow with
``--max-seconds 7200``, the file sent in one ``/index`` request without a client time-out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # audiosearch, cli and tests.conftest (generated weights, the server)

from table import print_table  # noqa: E402

DATA = ROOT / "bench" / "data" / "throughput"
LIBRARY_FORMATS = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"),
                   ("mp3", "MP3", "MPEG_LAYER_III")]  # fmt: skip
LIBRARY_RATES = [16_000, 22_050, 32_000, 44_100, 48_000]
LONG_FILE_SECONDS = 2 * 3600
LONG_FILE_RATE = 22_050
FILES_PER_REQUEST = 16  # app.py index's default batch
WINDOW = 64_000


# === Input =======================================================================================


def toy_sound(rate: int) -> Iterator[np.ndarray]:
    """The toy-data clips at ``rate``, mono, in a fixed shuffled order, forever."""
    from audiosearch.audio import load_audio
    from tests.conftest import toy_clips

    clips = [load_audio(p, sample_rate=rate) for p in toy_clips()]
    order = np.random.default_rng(7).permutation(len(clips))
    while True:
        for i in order:
            yield clips[i]


def sound_of_length(sounds: Iterator[np.ndarray], samples: int) -> np.ndarray:
    """Toy clips one after another, cut to ``samples``."""
    parts, held = [], 0
    while held < samples:
        parts.append(next(sounds))
        held += len(parts[-1])
    return np.concatenate(parts)[:samples]


def make_library(folder: Path, minutes: float) -> list[Path]:
    """The benchmark library: at least ``minutes`` of audio (written once; its manifest then
    names the files)."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return [folder / name for name in json.loads(manifest.read_text())["files"]]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    sounds = {rate: toy_sound(rate) for rate in LIBRARY_RATES}
    files: list[Path] = []
    total = 0.0
    while total < minutes * 60:
        seconds = float(rng.uniform(1.0, 60.0))
        ext, fmt, subtype = LIBRARY_FORMATS[len(files) % len(LIBRARY_FORMATS)]
        rate = LIBRARY_RATES[len(files) % len(LIBRARY_RATES)]
        mono = sound_of_length(sounds[rate], round(seconds * rate))
        channels = 1 + len(files) % 2
        audio = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
        path = folder / f"{len(files):03d}_{seconds:04.1f}s_{rate}hz_{channels}ch.{ext}"
        sf.write(path, audio, rate, format=fmt, subtype=subtype)
        files.append(path)
        total += seconds
    manifest.write_text(json.dumps({"minutes": minutes, "files": [p.name for p in files]}))
    return files


def make_long_file(path: Path) -> Path:
    """A 2-hour MP3 (22.05 kHz mono) of toy clips, written a block at a time (written once)."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    sounds = toy_sound(LONG_FILE_RATE)
    partial = path.with_suffix(".partial")
    with sf.SoundFile(partial, "w", LONG_FILE_RATE, 1, format="MP3",
                      subtype="MPEG_LAYER_III") as out:  # fmt: skip
        for _ in range(LONG_FILE_SECONDS // 60):
            out.write(sound_of_length(sounds, 60 * LONG_FILE_RATE))
    partial.rename(path)
    return path


# === The three paths (each in a child process) ===================================================


def load_vggish_reference(models_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """torchvggish's network with the generated weights, and the per-chunk reference embedding."""
    import torch
    from torchvggish import vggish_input
    from torchvggish.torchvggish import _vgg

    from audiosearch.encoders.model_files import find_vggish_files
    from audiosearch.encoders.vggish import load_pca_params, pca_project

    weights, pca = find_vggish_files(models_dir)
    network = _vgg(postprocess=False)
    network.load_state_dict(torch.load(models_dir / weights, weights_only=True))
    network.eval()
    eigen_vectors, means = load_pca_params(models_dir / pca)

    def embed_chunk(chunk: np.ndarray) -> np.ndarray:
        examples = vggish_input.waveform_to_examples(chunk, 16_000)
        with torch.no_grad():
            raw = network(examples).numpy()
        return pca_project(raw, eigen_vectors, means).reshape(-1)

    return embed_chunk


def index_per_chunk(
    embed_chunk: Callable[[np.ndarray], np.ndarray], files: Sequence[Path], workspace: Path,
    identity: str,
) -> float:  # fmt: skip
    """(a): decode a file, embed its chunks one by one, store it; the audio seconds."""
    from audiosearch.audio import load_audio
    from audiosearch.audio.segment import segment
    from audiosearch.index import ChunkIndex

    seconds = 0.0
    with ChunkIndex(workspace) as index:
        for path in files:
            cut = segment(load_audio(path))
            vectors = np.array([embed_chunk(cut.waveform[s : s + WINDOW]) for s in cut.starts])
            index.add([to_add(path, cut, vectors)], encoder=identity)
            seconds += cut.duration
    return seconds


def index_batched(encoder, files: Sequence[Path], workspace: Path, identity: str) -> float:
    """(b): decode the next files in a thread while ``embed_batch`` runs; the audio seconds."""
    from audiosearch.audio import load_audio
    from audiosearch.audio.segment import segment
    from audiosearch.client import batched
    from audiosearch.index import ChunkIndex

    def decode(paths: Sequence[Path]) -> list:
        return [segment(load_audio(p, max_seconds=LONG_FILE_SECONDS)) for p in paths]

    batches = list(batched(files, FILES_PER_REQUEST))
    seconds = 0.0
    with ThreadPoolExecutor(1) as decoder, ChunkIndex(workspace) as index:
        decoding = decoder.submit(decode, batches[0])
        for i, paths in enumerate(batches):
            cuts = decoding.result()
            if i + 1 < len(batches):
                decoding = decoder.submit(decode, batches[i + 1])
            vectors = encoder.embed_batch([(cut.waveform, cut.starts) for cut in cuts])
            index.add([to_add(*args) for args in zip(paths, cuts, vectors, strict=True)],
                      encoder=identity)  # fmt: skip
            seconds += sum(cut.duration for cut in cuts)
    return seconds


def to_add(path: Path, cut, vectors: np.ndarray):
    """The ChunkIndex entry of one decoded, embedded file."""
    from audiosearch.index import ClipToAdd

    return ClipToAdd(str(path), cut.duration, cut.start_seconds, cut.end_seconds, vectors)


def child(spec: dict) -> None:
    """Run (a) or (b) as ``spec`` says and print the audio seconds and the wall time."""
    from audiosearch.encoders import load_encoder

    files, workspace = [Path(p) for p in spec["files"]], Path(spec["workspace"])
    if spec["path"] == "a" and spec["encoder"] == "vggish":
        run = partial(index_per_chunk, load_vggish_reference(Path(spec["models_dir"])))
        identity = "torchvggish/reference"
    else:
        encoder, _ = load_encoder(spec["encoder"], models_dir=spec["models_dir"])
        identity = f"{encoder.name}/{encoder.version}"
        if spec["path"] == "a":
            run = partial(index_per_chunk, lambda chunk: encoder.embed_windows(chunk, [0])[0])
        else:
            run = partial(index_batched, encoder)
    started = time.perf_counter()
    seconds = run(files, workspace, identity)
    print(json.dumps({"audio_seconds": seconds, "wall_seconds": time.perf_counter() - started}))


def run_child(spec: dict) -> tuple[float, float, float]:
    """Run ``spec`` in a fresh process: audio seconds, wall seconds, peak RSS in MiB."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"{spec['path']}/{spec['encoder']} failed (status {status})")
    result = json.loads(output.splitlines()[-1])
    return result["audio_seconds"], result["wall_seconds"], usage.ru_maxrss / 1024


class MemorySampler:
    """Peaks of the summed RSS and PSS (shared pages split between the processes that map
    them) of every process in one process group, and of the largest single process's RSS, in
    MiB, sampled in a thread."""

    def __init__(self, group: int, every: float = 0.2) -> None:
        self.group, self.every = group, every
        self.peak = self.peak_pss = self.peak_process = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def totals(self) -> tuple[float, float, float]:
        """RSS and PSS of the group and the largest process's RSS now, MiB."""
        rss = pss = largest = 0
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
                if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[2]) == self.group:
                    rollup = (entry / "smaps_rollup").read_text()
                    process_rss = int(rollup.split("\nRss:")[1].split()[0])
                    rss, largest = rss + process_rss, max(largest, process_rss)
                    pss += int(rollup.split("\nPss:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                continue  # not a process, or it ended while being read
        return rss / 1024, pss / 1024, largest / 1024

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            rss, pss, largest = self.totals()
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            self.peak_process = max(self.peak_process, largest)

    def reset(self) -> None:
        self.peak, self.peak_pss, self.peak_process = self.totals()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def run_flow(
    encoder: str, models_dir: Path, library: Path, long_file: Path | None, workdir: Path,
    notes: list[str],
) -> list[tuple[float, float, float]]:  # fmt: skip
    """(c) for the library, then the long file: (audio s, wall s, peak RSS MiB) each."""
    from audiosearch.client import AudioSearchClient
    from tests.conftest import ROOT as REPO
    from tests.conftest import start_server

    (workdir / f"flow-{encoder}").mkdir()
    server = start_server(
        workdir / f"flow-{encoder}" / "workspace", "--encoder", encoder, "--models-dir",
        str(models_dir), "--allowed-root", str(DATA), "--max-seconds", str(LONG_FILE_SECONDS),
        timeout=600,
    )  # fmt: skip
    sampler = MemorySampler(server.process.pid)
    results = []
    try:
        time.sleep(2)
        rss, pss, _ = sampler.totals()
        notes.append(f"{encoder}: the flow's processes at rest: {rss:,.0f} MiB RSS in all, "
                     f"{pss:,.0f} MiB PSS")  # fmt: skip
        sampler.reset()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(REPO / "app.py"), "index", str(library), "--url", server.url,
             "--json"], capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
        docs = json.loads(done.stdout)
        check_indexed(docs, f"(c) {encoder}")
        results.append((sum(d["duration"] for d in docs), wall, sampler.peak))
        if long_file:
            sampler.reset()
            started = time.perf_counter()
            docs = AudioSearchClient(server.url, timeout=None).index([long_file])
            wall = time.perf_counter() - started
            check_indexed(docs, f"(c) {encoder}, 2-hour file")
            results.append((docs[0]["duration"], wall, sampler.peak))
            notes.append(f"{encoder}: the flow with the 2-hour file: peak PSS "
                         f"{sampler.peak_pss:,.0f} MiB in all; largest process "
                         f"{sampler.peak_process:,.0f} MiB RSS")  # fmt: skip
    finally:
        sampler.stop()
        server.stop()
    return results


def check_indexed(docs: list[dict], what: str) -> None:
    """Stop the benchmark if any file was not indexed: its figures would mean nothing."""
    failed = [d for d in docs if d.get("status") not in ("added", "replaced")]
    if failed:
        raise SystemExit(f"{what}: {len(failed)} files not indexed, e.g. {failed[0]}")


# === The table ===================================================================================


@dataclass
class Row:
    """One line of the table."""

    encoder: str
    path: str
    input: str
    audio_seconds: float
    wall_seconds: float
    peak_mib: float
    reference: float | None = None  # (a)'s x real time for the same encoder and input

    @property
    def speed(self) -> float:
        return self.audio_seconds / self.wall_seconds

    def cells(self) -> list[str]:
        ratio = f"{self.speed / self.reference:.2f}x" if self.reference else ""
        return [self.encoder, self.path, self.input, f"{self.audio_seconds / 60:.1f}",
                f"{self.wall_seconds:.1f}", f"{self.speed:.1f}x", f"{self.peak_mib:,.0f}",
                ratio]  # fmt: skip


PATHS = {
    "a": "(a) reference: per-chunk front-end + forward",
    "b": "(b) ours, core: batched across files, decoding ahead",
    "c": "(c) ours, flow over HTTP (app.py index)",
}


def print_results(rows: list[Row], notes: list[str]) -> None:
    header = ["encoder", "path", "input", "audio min", "wall s", "x real time", "peak RSS MiB",
              "vs (a)"]  # fmt: skip
    print_table(header, [row.cells() for row in rows], notes)


def bench_encoder(
    encoder: str, paths: Sequence[str], library: list[Path], long_file: Path | None,
    models: Path, workdir: Path, notes: list[str],
) -> list[Row]:  # fmt: skip
    """The rows of one encoder: the library by each path, then the long file by (b) and (c)."""

    def in_child(path: str, files: Sequence[Path], what: str) -> Row:
        spec = {"path": path, "encoder": encoder, "models_dir": str(models),
                "files": [str(f) for f in files],
                "workspace": str(workdir / f"{path}-{encoder}-{what}")}  # fmt: skip
        row = Row(encoder, PATHS[path], what, *run_child(spec))
        print(f"... {' | '.join(row.cells())}", file=sys.stderr, flush=True)
        return row

    rows = [in_child(path, library, "library") for path in ("a", "b") if path in paths]
    reference = rows[0].speed if "a" in paths else None  # every row is compared with (a)
    for row in rows:
        row.reference = reference
    if long_file and "b" in paths:
        rows.append(in_child("b", [long_file], "2-hour MP3"))
    if "c" in paths:
        flow_rows = run_flow(encoder, models, library[0].parent, long_file, workdir, notes)
        rows.append(Row(encoder, PATHS["c"], "library", *flow_rows[0], reference))
        rows += [Row(encoder, PATHS["c"], "2-hour MP3", *row) for row in flow_rows[1:]]
        for row in rows[-len(flow_rows) :]:
            print(f"... {' | '.join(row.cells())}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="audio in the library")
    parser.add_argument("--encoders", nargs="+", default=["vggish", "sfx"],
                        choices=["vggish", "sfx"])  # fmt: skip
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--no-long-file", action="store_true", help="skip the 2-hour file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    import torch

    from tests.conftest import GeneratedVGGish

    library = make_library(DATA / f"library-{args.minutes:g}min", args.minutes)
    long_file = None if args.no_long_file else make_long_file(DATA / "long" / "podcast_2h.mp3")
    notes = [f"{len(library)} files; load average before: {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} CPUs, torch {torch.__version__} with "
             f"{torch.get_num_threads()} threads"]  # fmt: skip
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="index-throughput-") as tmp:
        workdir = Path(tmp)
        (workdir / "models").mkdir()
        models = GeneratedVGGish(workdir / "models").dir
        for encoder in args.encoders:
            long_here = long_file if encoder == args.encoders[0] else None
            rows += bench_encoder(encoder, args.paths, library, long_here, models, workdir, notes)
    notes.append(f"load average after: {os.getloadavg()[0]:.1f}")
    print_results(rows, notes)


if __name__ == "__main__":
    main()
