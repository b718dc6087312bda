"""Command line for the audio similarity search service.

    python app.py demo                    # index toy-data/ and show what is similar to what
    python app.py serve                   # start the flow: HTTP on 127.0.0.1:8080, /docs
    python app.py index ~/sounds          # index a folder (recursively) into a running service
    python app.py search query.wav        # the most similar indexed clips, ranked
    python app.py models download         # fetch the VGGish weights into models/

Run ``python app.py COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent
FLOW_YML = ROOT / "flow.yml"
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".aif",
                  ".aiff", ".wma", ".webm"}  # fmt: skip


def flow_config(
    *, port: int | None = None, host: str | None = None, workspace: str | None = None,
    encoder: str | None = None, models_dir: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """flow.yml as a dict, with the given values put in place of its own."""
    config = yaml.safe_load(FLOW_YML.read_text())
    if port is not None:
        config["with"]["port"] = port
    if host is not None:
        config["with"]["host"] = host
    executors = {e["name"]: e for e in config["executors"]}
    if workspace is not None:
        executors["indexer"]["workspace"] = str(Path(workspace).absolute())
    if encoder is not None:
        executors["encoder"]["uses_with"]["encoder"] = encoder
    if models_dir is not None:
        executors["encoder"]["uses_with"]["models_dir"] = str(Path(models_dir).absolute())
    return config


def build_flow(config: dict[str, Any]):
    """A Jina Flow from ``config``; relative paths in it are taken from the project root."""
    from jina import Flow

    os.chdir(ROOT)  # py_modules, models/ and workspace/ in flow.yml are relative to it
    return Flow.load_config(config)


def base_url(config: dict[str, Any]) -> str:
    """Where the flow described by ``config`` answers HTTP."""
    host = config["with"]["host"]
    return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{config['with']['port']}"


def find_audio(paths: Sequence[str]) -> list[Path]:
    """Audio files named in ``paths``, folders searched recursively, sorted, absolute."""
    found: list[Path] = []
    for name in paths:
        path = Path(name).expanduser().absolute()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            found.append(path)  # the service reports a missing or unreadable file itself
    return found


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def post(url: str, endpoint: str, docs: list[dict], parameters: dict | None = None) -> list[dict]:
    """POST ``docs`` to ``endpoint``; the returned documents, or SystemExit with the reason."""
    try:
        response = httpx.post(
            f"{url}/{endpoint}", json={"data": docs, "parameters": parameters or {}}, timeout=600
        )
    except httpx.HTTPError as exc:
        raise SystemExit(
            f"cannot reach the service at {url} ({exc}); start it: python app.py serve"
        ) from None
    if response.status_code != 200:
        raise SystemExit(f"{endpoint} failed: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()["data"]


def index_files(url: str, paths: Sequence[str], *, batch_size: int, quiet: bool) -> list[dict]:
    """Send the audio under ``paths`` to ``/index`` in batches, with a progress bar."""
    from tqdm import tqdm

    files = find_audio(paths)
    results: list[dict] = []
    with tqdm(total=len(files), unit="file", disable=quiet, file=sys.stderr) as bar:
        for batch in batched(files, batch_size):
            docs = post(url, "index", [{"uri": str(p)} for p in batch])
            results += docs
            failed = sum(d["status"] == "error" for d in results)
            hours = sum(d.get("duration") or 0 for d in results) / 3600
            bar.set_postfix(failed=failed, audio=f"{hours:.2f} h")
            bar.update(len(batch))
    return results


def print_index_summary(results: list[dict]) -> None:
    """Counts by status, then each failed file with its reason."""
    from collections import Counter

    counts = Counter(d["status"] for d in results)
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no audio files")
    for doc in results:
        if doc["status"] == "error":
            print(f"  FAILED {doc['error']}")


def print_matches(query: str, doc: dict) -> None:
    """A ranked table of one query's matches."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if doc.get("status") == "error":
        console.print(f"[red]{doc['error']}[/red]")
        return
    table = Table(title=f"Most similar to {query}", title_justify="left")
    for column in ("rank", "score", "matched", "query part", "clip"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for rank, m in enumerate(doc["matches"], 1):
        table.add_row(
            str(rank), f"{m['score']:.3f}", f"{m['start']:.1f}-{m['end']:.1f} s",
            f"{m['query_start']:.1f}-{m['query_end']:.1f} s", _short(m["uri"]),
        )  # fmt: skip
    console.print(table)


def _short(uri: str) -> str:
    path = Path(uri)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else uri


def cmd_serve(args: argparse.Namespace) -> None:
    config = flow_config(
        port=args.port, host=args.host, workspace=args.workspace, encoder=args.encoder,
        models_dir=args.models_dir,
    )  # fmt: skip
    with build_flow(config) as flow:
        print(f"serving on {base_url(config)} (Swagger UI: {base_url(config)}/docs)", flush=True)
        flow.block()


def cmd_index(args: argparse.Namespace) -> None:
    results = index_files(args.url, args.paths, batch_size=args.batch_size, quiet=args.json)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_index_summary(results)
    if any(d["status"] == "error" for d in results):
        sys.exit(1)


def cmd_search(args: argparse.Namespace) -> None:
    query = str(Path(args.file).expanduser().absolute())
    [doc] = post(args.url, "search", [{"uri": query}], {"limit": args.limit})
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_matches(args.file, doc)
    if doc.get("status") == "error":
        sys.exit(1)


def cmd_models_download(args: argparse.Namespace) -> None:
    from audiosearch.errors import ModelFileError
    from audiosearch.model_files import download_model_files

    try:
        for path in download_model_files(Path(args.models_dir)):
            print(f"ok {path}")
    except ModelFileError as exc:
        raise SystemExit(f"models download failed: {exc}") from None


def cmd_demo(args: argparse.Namespace) -> None:
    """Start the flow, index toy-data/ and search with a few of its clips."""
    config = flow_config(
        port=args.port, workspace=args.workspace, encoder=args.encoder, models_dir=args.models_dir
    )
    url = base_url(config)
    with build_flow(config):
        results = index_files(url, [str(ROOT / "toy-data")], batch_size=8, quiet=False)
        print_index_summary(results)
        for query in sorted(find_audio([str(ROOT / "toy-data")]))[: args.queries]:
            [doc] = post(url, "search", [{"uri": str(query)}], {"limit": 5})
            print_matches(query.name, doc)


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    top = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(dest="command", required=True)
    default_url = base_url(flow_config())

    def command(name: str, help: str, example: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=f"{help}\n\nexample:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip

    for name, help, example in (
        ("serve", "Start the flow and serve HTTP until interrupted.", "python app.py serve"),
        ("demo", "Index toy-data/ and search with some of its clips.", "python app.py demo"),
    ):
        sub = command(name, help, example)
        sub.add_argument("--port", type=int, help="HTTP port (flow.yml: 8080)")
        sub.add_argument("--workspace", help="where the index lives (flow.yml: workspace/)")
        sub.add_argument("--encoder", choices=("auto", "vggish", "sfx"), help="flow.yml: auto")
        sub.add_argument("--models-dir", help="where VGGish weights are (flow.yml: models/)")
    commands.choices["serve"].add_argument(
        "--host", help="address to listen on (flow.yml: 127.0.0.1; 0.0.0.0 exposes it)"
    )
    commands.choices["demo"].add_argument(
        "--queries", type=int, default=3, help="how many toy clips to search with"
    )

    index = command(
        "index", "Index audio files or folders (recursively).", "python app.py index ~/sounds"
    )
    index.add_argument("paths", nargs="+", help="audio files or folders")
    index.add_argument("--batch-size", type=int, default=16, help="files per request")

    search = command(
        "search", "Find the indexed clips most similar to FILE.", "python app.py search q.wav"
    )
    search.add_argument("file", help="the query clip")
    search.add_argument("--limit", type=int, default=10, help="how many clips to show")

    for sub in (index, search):
        sub.add_argument("--url", default=default_url, help=f"the service (default {default_url})")
        sub.add_argument("--json", action="store_true", help="print the raw JSON results")

    models = command("models", "Manage model files.", "python app.py models download")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    download = models_commands.add_parser(
        "download", help="Fetch VGGish weights and PCA parameters, verify their sha256."
    )
    download.add_argument("--models-dir", default=str(ROOT / "models"))
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line."""
    args = parser().parse_args(argv)
    handlers = {
        "serve": cmd_serve, "demo": cmd_demo, "index": cmd_index, "search": cmd_search,
        "models": cmd_models_download,
    }  # fmt: skip
    handlers[args.command](args)


if __name__ == "__main__":
    main()
