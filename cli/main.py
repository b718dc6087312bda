"""Command line for the audio similarity search service.

    python app.py demo                    # index toy-data/ and show what is similar to what
    python app.py serve                   # start the flow: HTTP on 127.0.0.1:8080, /docs
    python app.py serve --allowed-root ~/sounds   # serve, reading files under ~/sounds too
    python app.py index ~/sounds          # index a folder (recursively) into that service
    python app.py search query.wav        # the indexed clips most similar to a clip, ranked
    python app.py list                    # the indexed clips (also: delete ID|PATH, stats)
    python app.py models download         # fetch the VGGish weights into models/

Run ``python app.py COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from audiosearch.client import URL_ENV, RequestFailed
from audiosearch.client import default_url as default_service_url
from audiosearch.params import ListParameters, Parameters, SearchParameters
from cli.commands import cmd_delete, cmd_index, cmd_list, cmd_models, cmd_search, cmd_stats
from cli.flowconfig import ROOT, flow_config
from cli.render import cli_words
from cli.serve import cmd_demo, cmd_export, cmd_serve

__all__ = ["main", "parser"]


def model_help(model: type[Parameters], name: str, *, note: str = "") -> str:
    """The help of the option for parameter ``name`` of ``model``: the parameter's own
    description, ``note``, its range and its default."""
    field = model.model_fields[name]
    low, high = (next((getattr(m, k) for m in field.metadata if hasattr(m, k)), None)
                 for k in ("ge", "le"))  # fmt: skip
    shown = [f"{low}..{high}"] if low is not None and high is not None else []
    default = field.get_default(call_default_factory=True)
    if default is not None and default is not False and default != []:
        shown.append(f"default {default}")
    text = field.description or ""
    return f"{text[:1].lower()}{text[1:]}{note}" + (f" ({'; '.join(shown)})" if shown else "")


def model_default(model: type[Parameters], name: str) -> object:
    """The default of parameter ``name`` of ``model``."""
    return model.model_fields[name].default


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    top = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(dest="command", required=True)
    flow = flow_config()
    default_url = default_service_url()
    read_policy = flow["gateway"]["uses_with"]["read_policy"]

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
        sub.add_argument(
            "--url", help=f"serve at this URL's host and port (default: ${URL_ENV}, else "
            "flow.yml's; --host and --port win over it)",
        )  # fmt: skip
        sub.add_argument("--workspace", help="where the index lives (flow.yml: workspace/)")
        sub.add_argument("--encoder", choices=("auto", "vggish", "sfx"), help="flow.yml: auto")
        sub.add_argument("--models-dir", help="where VGGish weights are (flow.yml: models/)")
    commands.choices["serve"].add_argument(
        "--host", help="address to listen on (flow.yml: 127.0.0.1; 0.0.0.0 exposes it)"
    )
    commands.choices["serve"].add_argument(
        "--allowed-root", action="append", default=[], metavar="DIR",
        help="also read clients' audio files under DIR (repeatable; flow.yml: toy-data, data)",
    )  # fmt: skip
    commands.choices["serve"].add_argument(
        "--max-seconds",
        type=float,
        help=f"decode only this much of each file (flow.yml: {read_policy['max_seconds']:g})",
    )
    commands.choices["serve"].add_argument(
        "--shards", type=int, help="indexer shards; keep the number an index was built with (1)"
    )
    commands.choices["serve"].add_argument(
        "--dtype", choices=("float32", "float16"),
        help="how vectors are stored (flow.yml: float32); float16 halves their size, and an "
        "index stored the other way is converted on start",
    )  # fmt: skip
    commands.choices["demo"].add_argument(
        "--queries", type=int, default=3, help="how many toy clips to search with"
    )

    index = command(
        "index", "Index audio files or folders (recursively).", "python app.py index ~/sounds"
    )
    index.add_argument("paths", nargs="+", help="audio files or folders")
    index.add_argument(
        "--batch-size", type=int, default=16, help="files per request (progress shows per batch)"
    )

    search = command(
        "search",
        "Find the indexed clips most similar to FILE (its bytes are sent, so the service may "
        "run elsewhere), or to an indexed clip.",
        "python app.py search q.wav --limit 5 --max-duration 10\n"
        "  python app.py search --clip-id 12        # more like indexed clip 12\n"
        "  python app.py search q.wav --from 2.5 --to 6 --like 7 --unlike 3 --refine",
    )
    search.set_defaults(search_parser=search)  # main() reports a search with no query by it
    query = search.add_mutually_exclusive_group()
    query.add_argument("file", nargs="?", help="the query clip")
    query.add_argument("--clip-id", type=int, help="search with this indexed clip instead")
    search.add_argument(
        "--from", dest="start", type=float, metavar="SECONDS",
        help="search with the query from this time on (match times stay in its own time)",
    )  # fmt: skip
    search.add_argument(
        "--to", dest="end", type=float, metavar="SECONDS", help="... up to this time"
    )
    search.add_argument(
        "--like", type=int, action="append", default=[], metavar="CLIP_ID",
        help=model_help(SearchParameters, "like", note=" (repeatable; with no FILE: the query)"),
    )  # fmt: skip
    search.add_argument(
        "--unlike", type=int, action="append", default=[], metavar="CLIP_ID",
        help=model_help(SearchParameters, "unlike", note=" (repeatable)"),
    )  # fmt: skip
    search.add_argument(
        "--refine", action="store_true",
        help="after each table, read marks by rank (+3 +5 -2) and search again with them",
    )  # fmt: skip
    search.add_argument(
        "--server-path", action="store_true",
        help="send FILE's path for the service to read instead of its bytes (same machine)",
    )  # fmt: skip
    search.add_argument(
        "--limit", type=int, default=model_default(SearchParameters, "limit"),
        help=model_help(SearchParameters, "limit"),
    )  # fmt: skip
    for name, kind in (("min_score", float), ("min_duration", float), ("max_duration", float),
                       ("path_glob", str), ("strategy", str)):  # fmt: skip
        search.add_argument(
            f"--{name.replace('_', '-')}", type=kind, help=model_help(SearchParameters, name)
        )
    search.add_argument(
        "--no-expansion", action="store_true",
        help="score by plain cosines: no second search with the nearest indexed window",
    )  # fmt: skip
    search.add_argument(
        "--duplicates", action="store_true", help=model_help(SearchParameters, "duplicates")
    )

    listing = command(
        "list", "List the indexed clips, by id, a page at a time.",
        "python app.py list --offset 50 --limit 50",
    )  # fmt: skip
    for name in ("offset", "limit"):
        listing.add_argument(
            f"--{name}", type=int, default=model_default(ListParameters, name),
            help=model_help(ListParameters, name),
        )  # fmt: skip
    delete = command(
        "delete", "Remove clips from the index (the files stay where they are).",
        "python app.py delete 12 ~/sounds/old_take.wav",
    )  # fmt: skip
    delete.add_argument("clips", nargs="+", help="clip ids (whole numbers) or file paths")
    stats = command(
        "stats", "Show what the index holds and how it is set up.", "python app.py stats"
    )

    for sub in (index, search, listing, delete, stats):
        sub.add_argument(
            "--url", default=default_url,
            help=f"the service (default: ${URL_ENV}, else flow.yml's port: {default_url})",
        )  # fmt: skip
        sub.add_argument("--json", action="store_true", help="print the raw JSON results")

    export = command(
        "export", "Write Kubernetes or docker-compose files for the flow in flow.yml, each "
        "executor in an image of its own (the command prints how to build them).",
        "python app.py export kubernetes k8s/ --shards 2",
    )  # fmt: skip
    export.add_argument("target", choices=("kubernetes", "docker-compose"))
    export.add_argument("out", help="folder to write into")
    export.add_argument("--image", default="audiosearch", help="image name (prefix)")
    export.add_argument("--tag", default="latest", help="image tag")
    export.add_argument("--shards", type=int, help="indexer shards (flow.yml: 1)")
    export.add_argument("--namespace", default="audiosearch", help="Kubernetes namespace")

    models = command("models", "Manage model files.", "python app.py models download")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    for name, help in (
        ("download", "Fetch VGGish weights and PCA parameters, verify their sha256."),
        ("check", "Run Google's VGGish smoke test on the weights in models/."),
    ):
        models_commands.add_parser(name, help=help).add_argument(
            "--models-dir", default=str(ROOT / "models")
        )
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line."""
    args = parser().parse_args(argv)
    if args.command == "search" and args.file is None and args.clip_id is None and not args.like:
        args.search_parser.error("one of the arguments file --clip-id --like is required")
    handlers = {
        "serve": cmd_serve, "demo": cmd_demo, "index": cmd_index, "search": cmd_search,
        "list": cmd_list, "delete": cmd_delete, "stats": cmd_stats, "export": cmd_export,
        "models": cmd_models,
    }  # fmt: skip
    try:
        handlers[args.command](args)
    except RequestFailed as exc:
        raise SystemExit(cli_words(str(exc))) from None
