"""How the command line prints results: summaries, ranked tables and clip tables (rich)."""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audiosearch.client import AudioSearchClient, find_audio

__all__ = [
    "cli_words", "count", "duration", "index_with_progress", "print_clips", "print_index_summary",
    "print_matches", "print_stats", "progress_note", "shorten_middle", "size", "stats_lines",
]  # fmt: skip


def index_with_progress(
    client: AudioSearchClient, paths: Sequence[str | Path], *, batch_size: int, quiet: bool
) -> list[dict]:
    """Index the audio under ``paths`` with a progress bar on stderr (none when ``quiet``).

    The bar moves once per batch and shows files done, their rate, hours of audio indexed, the
    speed relative to real time and the failures so far.
    """
    from tqdm import tqdm

    started = time.monotonic()
    with tqdm(total=len(find_audio(paths)), unit="file", disable=quiet, file=sys.stderr) as bar:

        def progress(results: list[dict]) -> None:
            bar.update(len(results) - bar.n)
            bar.set_postfix_str(progress_note(results, time.monotonic() - started))

        return client.index(paths, batch_size=batch_size, progress=progress)


def progress_note(results: list[dict], seconds: float) -> str:
    """How much audio ``results`` hold, how much faster than real time, and failures."""
    audio = sum(d.get("duration") or 0 for d in results)
    failed = sum(d["status"] == "error" for d in results)
    length = f"{audio / 3600:.2f} h" if audio >= 3600 else f"{audio / 60:.1f} min"
    return f"{length} audio, {audio / max(seconds, 1e-9):.0f}x realtime, {failed} failed"


def print_index_summary(results: list[dict], seconds: float) -> None:
    """Counts by status and the totals, then each failed file with the reason."""
    from collections import Counter

    counts = Counter(d["status"] for d in results)
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(
        f"{len(results)} files in {seconds:.1f} s: {statuses}; {progress_note(results, seconds)}"
        if results
        else "no audio files found"
    )
    failures = [d for d in results if d["status"] == "error"]
    if failures:
        print("failed:")
    for doc in failures:
        uri = doc.get("uri") or "(no path)"
        print(f"  {uri}\n      {doc['error'].removeprefix(f'{uri}: ')}")


def print_matches(query: str, doc: dict) -> None:
    """A ranked table of one query's matches (their clip ids, for --clip-id, --like, delete)."""
    from rich.console import Console

    console = Console()
    if doc.get("status") == "error":
        console.print(f"[red]{cli_words(doc['error'])}[/red]", highlight=False)
        return
    marks = {"like": " +", "unlike": " -"}
    rows = [
        [
            f"{rank}{marks.get(m.get('judged'), '')}", str(m["clip_id"]), f"{m['score']:.3f}",
            f"{m['start']:.1f}-{m['end']:.1f} s", f"{m['query_start']:.1f}-{m['query_end']:.1f} s",
            _short(m["uri"]),
        ]
        for rank, m in enumerate(doc["matches"], 1)
    ]  # fmt: skip
    columns = ("rank", "id", "score", "matched segment", "query segment", "path")
    console.print(_table(console, f"Most similar to {query}", columns, rows, right=3))


def print_clips(docs: list[dict], *, title: str) -> None:
    """A table of clips as /list, /clips and /delete describe them; errors in red."""
    from datetime import datetime

    from rich.console import Console

    console = Console()
    rows = []
    for doc in docs:
        if doc.get("status") == "error":
            console.print(f"[red]{cli_words(doc['error'])}[/red]", highlight=False)
            continue
        indexed = datetime.fromtimestamp(doc["indexed_at"]).strftime("%Y-%m-%d %H:%M")
        rows.append([str(doc["clip_id"]), f"{doc['duration']:.1f} s", str(doc["chunk_count"]),
                     indexed, _short(doc["uri"])])  # fmt: skip
    if rows:
        columns = ("id", "duration", "chunks", "indexed", "path")
        console.print(_table(console, title, columns, rows, right=1))


def _table(
    console: Any, title: str, columns: Sequence[str], rows: list[list[str]], *, right: int
) -> Any:
    """A rich table of ``rows`` whose last column, a path, is shortened in its middle to fit
    the terminal (paths are never wrapped); the first ``right`` columns are right-aligned."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns[:-1])]
    # Each column takes its text, a space either side and one border.
    room = max(MIN_PATH_WIDTH, console.width - sum(widths) - 3 * len(columns) - 1)
    for i, column in enumerate(columns):
        last = i == len(columns) - 1
        table.add_column(column, justify="right" if i < right else "left", no_wrap=last)
    for row in rows:
        table.add_row(*row[:-1], shorten_middle(row[-1], room))
    return table


#: The fewest characters a path column is given, however narrow the terminal.
MIN_PATH_WIDTH = 20


def shorten_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters by an ellipsis in its middle, keeping more of its
    end (a path's file name)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return f"{text[:head]}…{text[len(text) - (width - 1 - head) :]}"


def _short(uri: str) -> str:
    path = Path(uri)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else uri


#: The service's names for things, and the command line's.
_ENDPOINT = re.compile(r"(?<![\w/])/(index|search|list|clips|delete|stats)\b")
_SETTING = re.compile(r"\b(try|e\.g\.) (limit|offset|min_score|min_duration|max_duration|"
                      r"path_glob|strategy)=(\S+?)(?=[;,)]|\s|$)")  # fmt: skip


def cli_words(message: str) -> str:
    """A message of the service in the command line's words: "app.py list" for /list, "try
    --limit 10" for "try limit=10"."""
    message = _ENDPOINT.sub(r"app.py \1", message)
    return _SETTING.sub(lambda m: f"{m[1]} --{m[2].replace('_', '-')} {m[3]}", message)


def print_stats(stats: dict[str, Any]) -> None:
    """What the index holds, in words: counts with thousands separators, lengths in minutes,
    sizes in MB; settings that do not apply are left out."""
    for label, value in stats_lines(stats):
        print(f"{label:>10}: {value}")


def stats_lines(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, value)`` lines for ``/stats``' answer (see :func:`print_stats`)."""
    known = dict(stats)
    lines = [("clips", count(known.pop("clips", 0)))]
    windows = count(known.pop("chunks", 0))
    dead = known.pop("dead_chunks", 0)
    if dead:
        windows += f" (and {count(dead)} of deleted clips, until the index is compacted)"
    lines.append(("windows", windows))
    lines.append(("audio", duration(known.pop("audio_seconds", 0.0))))
    encoder, dim, dtype = (known.pop(k, None) for k in ("encoder", "dim", "dtype"))
    if encoder:
        lines.append(("encoder", f"{encoder}, {dim}-d vectors stored as {dtype}"))
    lines.append(("vectors", size(known.pop("vector_bytes", 0))))
    search, clusters = known.pop("search", None), known.pop("ann_clusters", None)
    if search:
        lines.append(
            ("search", f"{search}" + (f", {count(clusters)} clusters" if clusters else ""))
        )
    shards = known.pop("shards", 1)
    known.pop("shard", None)
    known.pop("per_shard", None)
    if shards and shards > 1:
        lines.append(("shards", count(shards)))
    lines += [(k.replace("_", " "), str(v)) for k, v in known.items() if v is not None]
    return lines


def count(n: int) -> str:
    """``n`` with thousands separators: 12,345."""
    return f"{n:,}"


def duration(seconds: float) -> str:
    """A length in words: 39.5 s, 2 min 39 s, 3 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def size(n_bytes: float) -> str:
    """A size in decimal units: 512 B, 1.2 MB, 3.4 GB."""
    units = ("B", "kB", "MB", "GB", "TB")
    power = min(len(units) - 1, int(math.log10(max(n_bytes, 1)) // 3))
    return f"{n_bytes:.0f} B" if power == 0 else f"{n_bytes / 1000**power:.1f} {units[power]}"
