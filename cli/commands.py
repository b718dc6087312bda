"""The client commands: index, search, list, delete and stats talk to a running service;
models manages the VGGish files."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from audiosearch.client import AudioSearchClient, RequestFailed
from cli.render import (
    count,
    index_with_progress,
    print_clips,
    print_index_summary,
    print_matches,
    print_stats,
    size,
)

__all__ = [
    "REFINE_PROMPT", "cmd_delete", "cmd_index", "cmd_list", "cmd_models", "cmd_search",
    "cmd_stats", "parse_mark", "read_marks", "search_query", "too_large",
]  # fmt: skip


def client_of(args: argparse.Namespace) -> AudioSearchClient:
    """The client of the service the command line names (``--url``)."""
    return AudioSearchClient(args.url)


def cmd_index(args: argparse.Namespace) -> None:
    started = time.monotonic()
    results = index_with_progress(
        client_of(args), args.paths, batch_size=args.batch_size, quiet=args.json
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_index_summary(results, time.monotonic() - started)
    if any(d["status"] == "error" for d in results):
        sys.exit(1)


def search_query(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The query the command line names, as :meth:`AudioSearchClient.search_result`'s
    arguments (none for "more like these"), and a name for it."""
    region = {"start": args.start, "end": args.end}
    if args.clip_id is not None:
        return {"clip_id": args.clip_id} | region, f"clip {args.clip_id}"
    if args.file is None:  # the liked clips are the query
        return {}, "the liked clips " + ", ".join(map(str, args.like))
    path = Path(args.file).expanduser().absolute()
    if args.server_path:
        return {"path": path} | region, args.file
    try:  # sent as bytes, so the service may run on another machine
        data = path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"{args.file}: cannot read it ({exc.strerror}); check the path") from None
    return {"path": path, "audio": data} | region, args.file


def cmd_search(args: argparse.Namespace) -> None:
    query, name = search_query(args)
    parameters = {
        "limit": args.limit, "min_score": args.min_score, "min_duration": args.min_duration,
        "max_duration": args.max_duration, "path_glob": args.path_glob, "strategy": args.strategy,
        "query_expansion": False if args.no_expansion else None,
        "duplicates": True if args.duplicates else None,
    }  # fmt: skip
    judged = {"like": list(dict.fromkeys(args.like)), "unlike": list(dict.fromkeys(args.unlike))}
    client = client_of(args)
    while True:
        try:
            doc = client.search_result(**query, **judged, **parameters)
        except RequestFailed as exc:
            if exc.status == 413 and "audio" in query:
                raise SystemExit(too_large(args.file, len(query["audio"]), str(exc))) from None
            raise
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print_matches(name, doc)
        if doc.get("status") == "error":
            sys.exit(1)
        if not args.refine or not read_marks(doc["matches"], judged):
            return


def too_large(name: str, size_bytes: int, refusal: str) -> str:
    """What to say when the service refused a query file's bytes as too large a request."""
    limit = re.search(r"the limit is ([\d.]+ MiB)", refusal)
    return (
        f"{name} is {size(size_bytes)}, too large to send: its bytes travel in the request, "
        f"base64-encoded, and the service takes requests up to "
        f"{limit[1] if limit else 'its max_body_mb'}. If the file is on the server's disk "
        "(under a folder it may read), search with --server-path: the service then reads it "
        "there; else search with a shorter part of it."
    )


#: What --refine asks after each table.
REFINE_PROMPT = "mark by rank: +N more like it, -N less like it (e.g. +1 +3 -2); Enter to stop: "


def read_marks(matches: list[dict], judged: dict[str, list[int]]) -> bool:
    """Read "+3 -2" style marks for the ranks of ``matches`` into ``judged`` (clip ids by
    judgment); False when the user ends the loop (an empty line or end of input)."""
    while True:
        try:
            line = input(REFINE_PROMPT).strip()
        except EOFError:
            return False
        if not line:
            return False
        try:
            marks = [parse_mark(token, len(matches)) for token in line.split()]
        except ValueError as exc:
            print(exc, file=sys.stderr)
            continue
        for sign, rank in marks:
            clip_id = matches[rank - 1]["clip_id"]
            mine, other = ("like", "unlike") if sign == "+" else ("unlike", "like")
            judged[other] = [c for c in judged[other] if c != clip_id]
            judged[mine] = list(dict.fromkeys([*judged[mine], clip_id]))
        return True


def parse_mark(token: str, ranks: int) -> tuple[str, int]:
    """``("+", 3)`` for "+3"; ValueError saying what to type for anything else."""
    if len(token) < 2 or token[0] not in "+-" or not token[1:].isdigit():
        raise ValueError(f"{token!r}: type + or - and a rank, e.g. +3 or -2")
    rank = int(token[1:])
    if not 1 <= rank <= ranks:
        raise ValueError(f"{token!r}: the table shows ranks 1 to {ranks}")
    return token[0], rank


def cmd_list(args: argparse.Namespace) -> None:
    client = client_of(args)
    docs = client.list(offset=args.offset, limit=args.limit)
    if not docs and args.offset > 0:  # past the end: say where the end is
        clips = client.stats().get("clips", 0)
        raise SystemExit(
            f"no clips at offset {args.offset}; the library has {count(clips)} clips "
            f"(app.py list --offset {max(0, clips - args.limit)} shows the last page)"
        )
    if args.json:
        print(json.dumps(docs, indent=2))
    else:
        print_clips(docs, title=f"Indexed clips {args.offset + 1}-{args.offset + len(docs)}")
    if any(d.get("status") == "error" for d in docs):
        sys.exit(1)


def cmd_delete(args: argparse.Namespace) -> None:
    named = [c if c.isdigit() else Path(c).expanduser().absolute() for c in args.clips]
    docs = client_of(args).delete(named)
    if args.json:
        print(json.dumps(docs, indent=2))
    else:
        print_clips(docs, title="Deleted")
    if any(d.get("status") == "error" for d in docs):
        sys.exit(1)


def cmd_stats(args: argparse.Namespace) -> None:
    stats = client_of(args).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print_stats(stats)


def cmd_models(args: argparse.Namespace) -> None:
    from audiosearch.encoders.model_files import download_model_files, find_vggish_files
    from audiosearch.encoders.vggish import smoke_test
    from audiosearch.errors import ModelFileError

    models_dir = Path(args.models_dir)
    try:
        if args.models_command == "download":
            for path in download_model_files(models_dir):
                print(f"ok {path}")
            return
        weights, pca = find_vggish_files(models_dir)
        report = smoke_test(models_dir, weights_file=weights, pca_file=pca)
    except ModelFileError as exc:
        raise SystemExit(f"models {args.models_command} failed: {exc}") from None
    for key, expected in report["expected"].items():
        print(f"{key:>20}: {report[key]:10.6f}  (reference {expected}, within 10 %)")
    if not report["passed"]:
        raise SystemExit(f"{weights} does not reproduce Google's VGGish: {report['failed']} off")
    print(f"ok: {weights} reproduces the reference VGGish smoke test")
