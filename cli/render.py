"""How the command line prints results: summaries, ranked tables and clip tables (rich)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from audiosearch.client import AudioSearchClient, find_audio

__all__ = [
    "index_with_progress", "print_clips", "print_index_summary", "print_matches", "progress_note",
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
    """A ranked table of one query's matches."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if doc.get("status") == "error":
        console.print(f"[red]{doc['error']}[/red]")
        return
    table = Table(title=f"Most similar to {query}", title_justify="left")
    for column in ("rank", "id", "score", "matched segment", "query segment", "path"):
        table.add_column(
            column, justify="right" if column in ("rank", "id", "score") else "left",
            overflow="fold" if column == "path" else "ellipsis",
        )  # fmt: skip
    marks = {"like": " +", "unlike": " -"}
    for rank, m in enumerate(doc["matches"], 1):
        table.add_row(
            f"{rank}{marks.get(m.get('judged'), '')}", str(m["clip_id"]), f"{m['score']:.3f}",
            f"{m['start']:.1f}-{m['end']:.1f} s",
            f"{m['query_start']:.1f}-{m['query_end']:.1f} s", _short(m["uri"]),
        )  # fmt: skip
    console.print(table)


def _short(uri: str) -> str:
    path = Path(uri)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else uri


def print_clips(docs: list[dict], *, title: str) -> None:
    """A table of clips as /list, /clips and /delete describe them; errors in red."""
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title, title_justify="left")
    for column in ("id", "duration", "chunks", "indexed", "path"):
        table.add_column(column, justify="right" if column in ("id", "chunks") else "left",
                         overflow="fold" if column == "path" else "ellipsis")  # fmt: skip
    for doc in docs:
        if doc.get("status") == "error":
            console.print(f"[red]{doc['error']}[/red]")
            continue
        indexed = datetime.fromtimestamp(doc["indexed_at"]).strftime("%Y-%m-%d %H:%M")
        table.add_row(str(doc["clip_id"]), f"{doc['duration']:.1f} s", str(doc["chunk_count"]),
                      indexed, _short(doc["uri"]))  # fmt: skip
    if table.rows:
        console.print(table)
