"""Retrieval quality on real labeled audio: mAP, P@1, P@5 and nDCG@10 per encoder and ranker.

    .venv/bin/python bench/make_quality_set.py      # once: the labeled set, bench/data/quality/
    .venv/bin/python bench/quality.py               # 5 minutes idle, 20 on 2 busy cores
    .venv/bin/python bench/quality.py --index-options   # + standardised vectors, computed here

For each encoder it starts the service (``app.py serve`` on a free port, empty workspace),
indexes the set's index clips through ``POST /index``, then sends every query to
``POST /search`` once per ranking strategy (the ``strategy`` parameter), with and without query
expansion (the ``query_expansion`` parameter), with ``limit`` large enough to rank the whole
index. A match is relevant when its class is the query's; the dataset
recipe guarantees that it never shares a recording, instrument or speaker with the query.
Figures are given for all queries and, for mAP, for short (3-7 s) and long (8-14 s) ones.

In the same run, as references: the seeds' method (MFCC-13 mean per file, cosine) and VGGish's
log-mel front end (mean and std per file, no network), computed here with librosa and
``audiosearch.encoders.vggish``. With ``--index-options``, a change the service does not have,
computed here with its own segmenter, encoder, ``ChunkIndex`` and rankers (marked * in the
table): chunk vectors standardised by the index's per-dimension mean and std.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.conftest starts and stops the service

from audiosearch.audio import SAMPLE_RATE, load_audio  # noqa: E402
from audiosearch.audio.segment import segment  # noqa: E402
from audiosearch.encoders import load_encoder  # noqa: E402
from audiosearch.encoders.vggish import log_mel_spectrogram  # noqa: E402
from audiosearch.errors import ModelFileError  # noqa: E402
from audiosearch.index import ChunkIndex, ClipToAdd, normalize_rows  # noqa: E402
from audiosearch.rank import MAX_LIMIT, STRATEGIES, QueryChunkHits, rank_clips  # noqa: E402
from tests.conftest import start_server  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "quality"
REFERENCE = ("sfx", "best_chunk")
HERE = "sfx, computed here"
BATCH = 16
EXPANDED = " + query expansion"
FIGURES = ("mAP", "P@1", "P@5", "nDCG@10", "mAP short", "mAP long")


@dataclass(frozen=True)
class Clip:
    """A labeled clip of the set; ``length`` is short or long (queries only)."""

    path: Path
    label: str
    length: str


@dataclass(frozen=True)
class Row:
    """One line of the table: a method and its figures (None when it could not run)."""

    encoder: str
    ranker: str
    figures: dict[str, float] | None
    #: Average precision of each query, for the paired comparison with the reference.
    aps: np.ndarray | None = None
    note: str = ""


def read_set(data: Path) -> tuple[list[Clip], list[Clip]]:
    """Index clips and queries listed in ``data/manifest.csv``."""
    manifest = data / "manifest.csv"
    if not manifest.is_file():
        raise SystemExit(f"{manifest}: missing; build the set: python bench/make_quality_set.py")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    split: dict[str, list[Clip]] = {"index": [], "queries": []}
    for row in rows:
        split[row["split"]].append(Clip(data / row["path"], row["label"], row["length"]))
    return split["index"], split["queries"]


def average_precision(hits: np.ndarray, n_relevant: int) -> float:
    """AP of one ranking: mean precision at the rank of each relevant item (missing ones: 0)."""
    ranks = np.flatnonzero(hits) + 1
    return float((np.arange(1, len(ranks) + 1) / ranks).sum() / n_relevant)


def ndcg(hits: np.ndarray, n_relevant: int, k: int = 10) -> float:
    """Binary-relevance nDCG@k."""
    discounts = 1 / np.log2(np.arange(2, k + 2))
    ideal = discounts[: min(n_relevant, k)].sum()
    return float((hits[:k] * discounts[: len(hits[:k])]).sum() / ideal)


def evaluate(
    encoder: str,
    ranker: str,
    rankings: Sequence[Sequence[str]],
    queries: list[Clip],
    index: list[Clip],
) -> Row:
    """The row of :data:`FIGURES` for ranked index paths, one ranking per query."""
    label_of = {str(c.path): c.label for c in index}
    per_label = {label: sum(c.label == label for c in index) for label in label_of.values()}
    per_query: dict[str, list[float]] = {name: [] for name in FIGURES[:4]}
    for query, ranked in zip(queries, rankings, strict=True):
        hits = np.array([label_of.get(p) == query.label for p in ranked], dtype=float)
        n = per_label[query.label]
        per_query["mAP"].append(average_precision(hits, n))
        per_query["P@1"].append(hits[:1].sum())
        per_query["P@5"].append(hits[:5].sum() / 5)
        per_query["nDCG@10"].append(ndcg(hits, n))
    figures = {name: float(np.mean(values)) for name, values in per_query.items()}
    for length in ("short", "long"):
        aps = [ap for q, ap in zip(queries, per_query["mAP"], strict=True) if q.length == length]
        figures[f"mAP {length}"] = float(np.mean(aps))
    return Row(encoder, ranker, figures, np.array(per_query["mAP"]))


def paired_difference(aps: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Mean AP difference to the reference over the same queries, with a 95% bootstrap interval."""
    difference = aps - reference
    rng = np.random.default_rng(0)
    resampled = difference[rng.integers(0, len(difference), (2000, len(difference)))]
    low, high = np.percentile(resampled.mean(axis=1), [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)


# ------------------------------------------------------------------ the service, over HTTP
def service_rows(encoder: str, data: Path, index: list[Clip], queries: list[Clip]) -> list[Row]:
    """Start the service with ``encoder``, index the set, query it with every strategy."""
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "workspace", "--encoder", encoder,
                              "--allowed-root", str(data), timeout=300)  # fmt: skip
        try:
            started = time.monotonic()
            for lo in range(0, len(index), BATCH):
                docs = server.post("index", [{"uri": str(c.path)} for c in index[lo : lo + BATCH]])
                failed = [d for d in docs if d["status"] != "added"]
                if failed:
                    raise SystemExit(f"indexing failed: {failed[0]}")
            print(f"{encoder}: indexed {len(index)} clips in {time.monotonic() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
            rows = []
            for expand, strategy in itertools.product((False, True), STRATEGIES):
                rankings = []
                for lo in range(0, len(queries), BATCH):
                    docs = server.post(
                        "search",
                        [{"uri": str(c.path)} for c in queries[lo : lo + BATCH]],
                        limit=min(len(index), MAX_LIMIT),
                        strategy=strategy,
                        query_expansion=expand,
                    )
                    rankings += [[m["uri"] for m in d["matches"]] for d in docs]
                ranker = f"{strategy}{EXPANDED if expand else ''}"
                rows.append(evaluate(encoder, ranker, rankings, queries, index))
                print(f"{encoder}: searched with {ranker}", file=sys.stderr)
            return rows
        finally:
            server.stop()


# ------------------------------------------------------- computed here, as references
def file_vector_rows(
    waveforms: dict[Path, np.ndarray], index: list[Clip], queries: list[Clip]
) -> list[Row]:
    """The no-network references: one vector per file, ranked by cosine."""
    features: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "MFCC-13 mean (seeds)": lambda w: librosa.feature.mfcc(y=w, sr=SAMPLE_RATE, n_mfcc=13).mean(
            axis=1
        ),
        "VGGish log-mel mean+std": lambda w: np.concatenate(
            [log_mel_spectrogram(w).mean(axis=0), log_mel_spectrogram(w).std(axis=0)]
        ),
    }
    rows = []
    for name, feature in features.items():
        vectors = normalize_rows(np.stack([feature(waveforms[c.path]) for c in index + queries]))
        scores = vectors[len(index) :] @ vectors[: len(index)].T
        rankings = [[str(index[i].path) for i in np.argsort(-s, kind="stable")] for s in scores]
        rows.append(evaluate(name, "file cosine", rankings, queries, index))
    return rows


def index_option_rows(
    waveforms: dict[Path, np.ndarray], index: list[Clip], queries: list[Clip]
) -> list[Row]:
    """sfx with standardised vectors, through ChunkIndex and rankers."""
    encoder, _ = load_encoder("sfx")
    embedded = {}
    for clip in index + queries:
        cut = segment(waveforms[clip.path])
        vectors = encoder.embed_windows(cut.waveform, cut.starts)
        embedded[clip.path] = ClipToAdd(str(clip.path), cut.duration, cut.start_seconds,
                                         cut.end_seconds, vectors)  # fmt: skip
    stacked = np.concatenate([embedded[c.path].vectors for c in index])
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    options = {
        HERE: lambda v: v,  # no option: must give the service's figures
        "sfx, standardised*": lambda v: (v - mean) / std,
    }
    rows = []
    for name, transform in options.items():
        hits = search_here(embedded, index, queries, transform)
        for strategy in STRATEGIES:
            rankings = [[m.uri for m in rank_clips(h, strategy=strategy, limit=len(index))]
                        for h in hits]  # fmt: skip
            rows.append(evaluate(name, strategy, rankings, queries, index))
    return rows


def search_here(
    embedded: dict[Path, ClipToAdd],
    index: list[Clip],
    queries: list[Clip],
    transform: Callable[[np.ndarray], np.ndarray],
) -> list[list[QueryChunkHits]]:
    """Each query's chunk hits from a ChunkIndex of ``transform``-ed vectors (no expansion)."""
    with tempfile.TemporaryDirectory() as tmp:
        chunk_index = ChunkIndex(tmp)
        chunk_index.add([ClipToAdd(c.uri, c.duration, c.starts, c.ends, transform(c.vectors))
                         for c in (embedded[i.path] for i in index)], encoder="here")  # fmt: skip
        results = []
        for query in queries:
            clip = embedded[query.path]
            vectors = transform(clip.vectors)
            per_chunk = chunk_index.search(vectors, limit=len(index), encoder="here")
            results.append([QueryChunkHits(start, end, hits) for start, end, hits
                            in zip(clip.starts, clip.ends, per_chunk, strict=True)])  # fmt: skip
        chunk_index.close()
    return results


# ------------------------------------------------------------------------------ table
def print_table(rows: list[Row]) -> None:
    """A Markdown table; each row's mAP also as a ratio of the reference's (sfx, best_chunk),
    and as a difference over the same queries with its 95% bootstrap interval."""
    reference = next(r for r in rows if (r.encoder, r.ranker) == REFERENCE)
    ref = " ".join(REFERENCE)
    print(f"| encoder | ranker | {' | '.join(FIGURES)} | mAP / {ref} | mAP - {ref} [95% CI] |")
    print("|---|---|" + "---|" * (len(FIGURES) + 2))
    for row in rows:
        if row.figures is None or row.aps is None:
            print(
                f"| {row.encoder} | {row.ranker} | not run: {row.note} |"
                + " |" * (len(FIGURES) + 1)
            )
            continue
        figures = " | ".join(f"{row.figures[name]:.3f}" for name in FIGURES)
        ratio = row.figures["mAP"] / reference.figures["mAP"]
        mean, low, high = paired_difference(row.aps, reference.aps)
        print(f"| {row.encoder} | {row.ranker} | {figures} | {ratio:.3f} | "
              f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] |")  # fmt: skip


def vggish_missing(models_dir: Path) -> str | None:
    """Why VGGish cannot run here, or None when its weights load."""
    try:
        load_encoder("vggish", models_dir=models_dir)
    except ModelFileError as exc:
        return str(exc).split(";")[0]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"the set (default {DATA})")
    parser.add_argument("--index-options", action="store_true",
                        help="also evaluate standardised vectors and query expansion (embeds "
                             "the set again here)")  # fmt: skip
    args = parser.parse_args()
    data = args.data.resolve()
    index, queries = read_set(data)
    print(f"{len({c.label for c in index})} classes, {len(index)} index clips, {len(queries)} "
          f"queries from {data}", file=sys.stderr)  # fmt: skip
    rows = service_rows("sfx", data, index, queries)
    missing = vggish_missing(ROOT / "models")
    if missing:
        rows.append(Row("vggish", "all", None, note=f"no weights ({missing})"))
    else:
        rows += service_rows("vggish", data, index, queries)
    waveforms = {c.path: load_audio(c.path) for c in index + queries}
    if args.index_options:
        options = index_option_rows(waveforms, index, queries)
        service = {r.ranker: r.figures["mAP"] for r in rows if r.encoder == "sfx"}  # unexpanded
        gap = max(abs(r.figures["mAP"] - service[r.ranker]) for r in options if r.encoder == HERE)
        print(f"check: computed here, sfx without options is {gap:.4f} mAP from the service's",
              file=sys.stderr)  # fmt: skip
        rows += [r for r in options if r.encoder != HERE]
    rows += file_vector_rows(waveforms, index, queries)
    print_table(rows)


if __name__ == "__main__":
    main()
