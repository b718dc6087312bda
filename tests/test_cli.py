"""The command line (app.py) against a real service, as someone would run it."""

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli import main as app
from tests.conftest import ROOT, Server, start_server, write_tone

pytestmark = pytest.mark.slow


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python app.py ARGS`` in a wide terminal (so no table column is cut)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of tones (not toy-data: other modules expect to index that themselves first),
    one of them in a subfolder, and a file that only pretends to be audio."""
    folder = tmp_path_factory.mktemp("library")
    (folder / "sub").mkdir()
    for i, freq in enumerate((220.0, 330.0, 495.0)):
        write_tone(folder / f"tone {i}.wav", 5.0 + i, freq=freq)
    write_tone(folder / "sub" / "deep tone.wav", 9.0, freq=880.0)
    (folder / "broken.wav").write_text("this is not audio\n" * 100)
    (folder / "notes.txt").write_text("not collected: not an audio suffix\n")
    return folder


@pytest.fixture(scope="module")
def indexed(sfx_server: Server, library: Path) -> subprocess.CompletedProcess:
    """``app.py index`` run once over the library, two files per request."""
    return run_cli("index", str(library), "--url", sfx_server.url, "--batch-size", "2")


def test_index_shows_progress_then_a_summary_naming_each_failed_file(indexed, library):
    assert indexed.returncode == 1, indexed.stderr  # something failed: scripts can tell
    lines = indexed.stdout.splitlines()
    assert lines[0].startswith("5 files in ")
    assert "4 added, 1 error;" in lines[0] and "x realtime, 1 failed" in lines[0]
    assert lines[1:3] == [
        "failed:",
        f"  {library / 'broken.wav'}",
    ]
    assert "not a readable audio file" in lines[3]
    # The progress bar (stderr) moved per batch of two: 2, 4 then 5 files.
    progress = indexed.stderr.replace("\r", "\n")
    for done in ("2/5", "4/5", "5/5"):
        assert done in progress
    assert re.search(r"file/s|s/file", progress)  # the rate
    assert "min audio" in progress and "realtime" in progress
    assert "1 failed" in progress


def test_index_json_is_one_document_per_file(sfx_server, library, indexed):
    again = run_cli("index", str(library), "--url", sfx_server.url, "--json")
    docs = json.loads(again.stdout)
    by_name = {Path(d["uri"]).name: d["status"] for d in docs}
    assert by_name == {
        "broken.wav": "error", "tone 0.wav": "unchanged", "tone 1.wav": "unchanged",
        "tone 2.wav": "unchanged", "deep tone.wav": "unchanged",
    }  # fmt: skip
    assert "5/5" not in again.stderr  # no progress bar mixed into JSON runs


def test_search_prints_a_ranked_table(sfx_server, library, indexed):
    query = library / "sub" / "deep tone.wav"
    result = run_cli("search", str(query), "--limit", "3", "--url", sfx_server.url)
    assert result.returncode == 0, result.stderr
    header, first = [line for line in result.stdout.splitlines() if "│" in line or "┃" in line][:2]
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "rank", "id", "score", "matched segment", "query segment", "path",
    ]  # fmt: skip
    cells = [c.strip() for c in first.strip("│").split("│")]
    assert cells[0] == "1" and cells[1].isdigit()  # the id --clip-id, --like and delete take
    assert float(cells[2]) >= 0.99 and cells[5] == str(query)
    assert cells[3].endswith(" s") and cells[4].endswith(" s")


def test_search_json_sends_the_bytes_and_ranks_like_a_server_path(sfx_server, library, indexed):
    query = library / "tone 1.wav"
    by_bytes = json.loads(run_cli("search", str(query), "--json", "--url", sfx_server.url).stdout)
    by_path = json.loads(
        run_cli("search", str(query), "--json", "--server-path", "--url", sfx_server.url).stdout
    )
    assert by_bytes["uri"] == query.name  # uploaded: only its name travels with the bytes
    assert by_path["uri"] == str(query)
    assert [m["uri"] for m in by_bytes["matches"]] == [m["uri"] for m in by_path["matches"]]
    assert by_bytes["matches"][0]["uri"] == str(query)


def test_search_options_reach_the_service(sfx_server, library, indexed, tmp_path):
    query = write_tone(tmp_path / "not indexed.wav", 6.0, freq=262.0)

    def scores(*options: str) -> list[float]:
        result = run_cli(
            "search", str(query), "--json", "--limit", "3", "--url", sfx_server.url, *options
        )
        assert result.returncode == 0, result.stderr
        return [m["score"] for m in json.loads(result.stdout)["matches"]]

    default = scores()
    assert len(default) == 3
    assert scores("--no-expansion") != default  # plain cosines, not the expanded query's
    votes = scores("--strategy", "votes")
    assert votes != default and all(0 < v <= 1 for v in votes)
    assert scores("--duplicates") == []  # a new recording is nobody's copy
    bogus = run_cli("search", str(query), "--strategy", "bogus", "--url", sfx_server.url)
    assert (
        bogus.returncode == 1 and "strategy='bogus': expected one of" in bogus.stdout + bogus.stderr
    )


def test_search_problems_are_reported_plainly(sfx_server, tmp_path):
    missing = run_cli("search", str(tmp_path / "nope.wav"), "--url", sfx_server.url)
    assert missing.returncode == 1
    assert "nope.wav: cannot read it (No such file or directory)" in missing.stderr
    bad_limit = run_cli(
        "search", str(ROOT / "toy-data" / "bell_strikes.wav"), "--limit", "0",
        "--url", sfx_server.url,
    )  # fmt: skip
    assert bad_limit.returncode == 1
    assert (
        "search failed: HTTP 422: parameters.limit=0: expected a whole number from 1 to 1000"
        in (bad_limit.stderr)
    )
    neither = run_cli("search", "--url", sfx_server.url)
    assert neither.returncode == 2
    assert "one of the arguments file --clip-id --like is required" in neither.stderr


def test_every_command_has_help_with_an_example(capsys):
    commands = app.parser()._subparsers._group_actions[0].choices
    assert {"serve", "demo", "index", "search", "models"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as done:
            app.main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert "example:" in text and f"python app.py {name}" in text, text


class FlakyIndex(BaseHTTPRequestHandler):
    """An /index that fails whole requests holding several files, or a file named poison."""

    def do_POST(self) -> None:
        docs = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["data"]
        if len(docs) > 1 or any("poison" in d["uri"] for d in docs):
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"worker crashed")
            return
        body = json.dumps({"data": [{**d, "status": "added", "duration": 60.0} for d in docs]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def flaky_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyIndex)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_a_failed_batch_is_retried_file_by_file(flaky_service, tmp_path):
    for name in ("a.wav", "poison.wav", "c.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    result = run_cli("index", str(tmp_path), "--url", flaky_service, "--json")
    statuses = {
        Path(d["uri"]).name: (d["status"], d.get("error")) for d in json.loads(result.stdout)
    }
    assert statuses == {
        "a.wav": ("added", None),
        "c.wav": ("added", None),
        "poison.wav": ("error", "index failed: HTTP 500: worker crashed"),
    }
    assert result.returncode == 1


def test_every_client_command_takes_url_and_audiosearch_url(sfx_server, indexed):
    commands = app.parser()._subparsers._group_actions[0].choices
    for name in ("serve", "demo", "index", "search", "list", "delete", "stats"):
        assert "--url" in commands[name]._option_string_actions, name
    from_env = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "stats", "--json"], capture_output=True,
        text=True, timeout=600, cwd=ROOT, env={**os.environ, "AUDIOSEARCH_URL": sfx_server.url},
    )  # fmt: skip
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["clips"] >= 4


def test_search_table_keeps_one_line_per_match_at_80_columns(sfx_server, library, indexed):
    query = library / "sub" / "deep tone.wav"
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "search", str(query), "--limit", "3",
         "--url", sfx_server.url], capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 3, result.stdout  # no row wrapped onto a second line
    assert all(len(row) <= 80 and row.rstrip("│ ").endswith(".wav") for row in rows), rows
    assert rows[0].split("│")[2].strip().isdigit()  # the clip id


def test_stats_reads_as_words(sfx_server, indexed):
    result = run_cli("stats", "--url", sfx_server.url)
    assert result.returncode == 0, result.stderr
    lines = dict(line.strip().split(": ", 1) for line in result.stdout.splitlines())
    assert re.fullmatch(r"\d[\d,]*", lines["clips"]) and re.fullmatch(r"\d[\d,]*", lines["windows"])
    assert re.fullmatch(r"\d+\.\d s|\d+ min \d+ s|\d+ h \d\d min", lines["audio"])
    assert re.fullmatch(r"\d+(\.\d)? (B|kB|MB|GB)", lines["vectors"])
    assert "None" not in result.stdout and "_" not in "".join(lines)


def test_service_hints_are_given_in_command_line_words(sfx_server, indexed):
    bad = run_cli("search", str(ROOT / "toy-data" / "bell_strikes.wav"), "--limit", "0",
                  "--url", sfx_server.url)  # fmt: skip
    assert bad.returncode == 1
    assert "limit=0: expected a whole number from 1 to 1000; try --limit 10" in bad.stderr
    missing = run_cli("search", "--clip-id", "987654", "--url", sfx_server.url)
    assert missing.returncode == 1
    assert "app.py list" in missing.stdout and "/list" not in missing.stdout


def test_list_past_the_end_says_where_the_end_is(sfx_server, indexed):
    clips = json.loads(run_cli("stats", "--json", "--url", sfx_server.url).stdout)["clips"]
    past = run_cli("list", "--offset", "1000", "--url", sfx_server.url)
    assert past.returncode == 1
    assert f"no clips at offset 1000; the library has {clips:,} clips" in past.stderr


def test_a_query_file_too_large_to_send_is_named_with_its_size(sfx_server, tmp_path):
    big = tmp_path / "long take.wav"
    sf.write(big, np.zeros(28_500_000, dtype=np.int16), 16_000, subtype="PCM_16")
    assert big.stat().st_size == 57_000_044
    result = run_cli("search", str(big), "--url", sfx_server.url)
    assert result.returncode == 1
    assert "long take.wav is 57.0 MB, too large to send" in result.stderr, result.stderr
    assert "--server-path" in result.stderr and "32 MiB" in result.stderr


def test_serve_starts_without_warnings_and_prints_its_urls(tmp_path):
    server = start_server(tmp_path / "workspace", "--encoder", "sfx")
    try:
        time.sleep(3)  # anything printed just after the flow answers
        output = server.log.read_text()
    finally:
        server.stop()
    noise = re.compile(r"warning|deprecat|GOAWAY|shadows|Getting endpoints failed", re.I)
    assert not [line for line in output.splitlines() if noise.search(line)], output
    assert f"serving on {server.url} (web page: {server.url}/ui" in output
