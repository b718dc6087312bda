"""Which files a client may make the service read: allowed roots, links, devices, schemes,
size limits, and http(s) downloads (off by default; bounded in size and time when on)."""

import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audiosearch.audio import load_audio
from audiosearch.errors import InvalidInputError
from audiosearch.paths import ReadPolicy, open_audio_source, resolve_audio_path
from tests.conftest import ROOT, TOY_DATA, write_tone


def refused(message: str):
    """Expect InvalidInputError whose message contains ``message`` literally."""
    return pytest.raises(InvalidInputError, match=re.escape(message))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An allowed folder holding one clip, a sub-folder, and a sibling folder that is not."""
    allowed = tmp_path / "library"
    (allowed / "drums").mkdir(parents=True)
    write_tone(allowed / "drums" / "kick.wav", 1.0)
    (tmp_path / "private").mkdir()
    write_tone(tmp_path / "private" / "secret.wav", 1.0)
    return allowed


@pytest.fixture
def policy(root: Path) -> ReadPolicy:
    return ReadPolicy(roots=[root], base=root)


def test_relative_and_absolute_paths_inside_a_root_resolve_to_the_absolute_file(root, policy):
    kick = root / "drums" / "kick.wav"
    assert resolve_audio_path("drums/kick.wav", policy) == kick
    assert resolve_audio_path(str(kick), policy) == kick
    assert resolve_audio_path(f"file://{kick}", policy) == kick
    assert resolve_audio_path("./drums//kick.wav", policy) == kick


def test_default_roots_are_toy_data_and_data_under_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    clip = TOY_DATA / "bell_strikes.wav"
    assert resolve_audio_path("toy-data/bell_strikes.wav") == clip
    with refused(f"outside the allowed folders ({TOY_DATA}, "):
        resolve_audio_path(str(ROOT / "app.py"))


def test_a_file_outside_the_roots_is_refused_naming_the_roots_and_how_to_add_one(root, policy):
    secret = root.parent / "private" / "secret.wav"
    with pytest.raises(InvalidInputError) as error:
        resolve_audio_path(str(secret), policy)
    message = str(error.value)
    assert message.startswith(f"{secret}: outside the allowed folders ({root})")
    assert "--allowed-root DIR" in message and "AUDIOSEARCH_ALLOWED_ROOTS" in message


@pytest.mark.parametrize(
    "uri", ["../private/secret.wav", "drums/../../private/secret.wav", "drums/../drums/kick.wav"]
)
def test_dot_dot_steps_are_refused_even_when_they_would_land_inside(policy, uri):
    with refused("'..' steps are not accepted"):
        resolve_audio_path(uri, policy)


def test_symlinks_are_followed_and_must_stay_inside_a_root(root, policy):
    (root / "escape.wav").symlink_to(root.parent / "private" / "secret.wav")
    (root / "alias.wav").symlink_to(root / "drums" / "kick.wav")
    (root / "etc").symlink_to("/etc")
    with refused("escape.wav: is a symbolic link that leads out"):
        resolve_audio_path("escape.wav", policy)
    with refused("etc/passwd: is a symbolic link that leads out"):
        resolve_audio_path("etc/passwd", policy)
    assert resolve_audio_path("alias.wav", policy) == root / "alias.wav"


def test_a_root_that_is_itself_a_symlink_works(root, tmp_path):
    (tmp_path / "linked").symlink_to(root)
    policy = ReadPolicy(roots=[tmp_path / "linked"])
    kick = root / "drums" / "kick.wav"
    assert resolve_audio_path(str(kick), policy) == kick


def test_folders_devices_pipes_missing_and_empty_uris_get_their_own_message(root, policy):
    os.mkfifo(root / "pipe.wav")
    cases = {
        "drums": "drums: is a folder, not a file",
        "pipe.wav": "pipe.wav: not a regular file (a device, pipe or socket)",
        "nothing.wav": "nothing.wav: no such file",
        "": "uri is empty",
        "a\x00b.wav": "contains a NUL character",
        "file:///a%00b.wav": "contains a NUL character",
    }
    for uri, message in cases.items():
        with refused(message):
            resolve_audio_path(uri, policy)
    with refused("/dev/zero: not a regular file"):
        resolve_audio_path("/dev/zero", ReadPolicy(roots=["/dev"]))


def test_file_uris_name_local_files_only_and_other_schemes_are_refused(root, policy):
    with refused("file:// URIs name files on this server only"):
        resolve_audio_path("file://fileserver/share/a.wav", policy)
    with refused("/etc/passwd: outside the allowed folders"):
        resolve_audio_path("file:///etc/passwd", policy)
    for uri in ("ftp://host/a.wav", "s3://bucket/a.wav", "smb://host/a.wav"):
        with refused("scheme is not served"):
            resolve_audio_path(uri, policy)
    write_tone(root / "take:2.wav", 1.0)  # a colon in a file name is not a scheme
    assert resolve_audio_path("take:2.wav", policy) == root / "take:2.wav"


def test_files_over_the_size_limit_are_refused_before_decoding(root):
    policy = ReadPolicy(roots=[root], max_file_bytes=10_000)
    with refused("kick.wav: is 0.0 MiB; files up to 0 MiB"):
        resolve_audio_path(str(root / "drums" / "kick.wav"), policy)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(uri=st.text(max_size=60) | st.from_regex(r"(file://)?(/|\.\./|~/)?[a-z./ ]{0,20}"))
@example(uri="A://[")  # urlparse raises ValueError (found by this test)
@example(uri="~nosuchuser/a.wav")  # Path.expanduser raised RuntimeError (found by this test)
def test_any_uri_resolves_inside_a_root_or_is_refused_with_a_message(root, policy, uri):
    try:
        path = resolve_audio_path(uri, policy)
    except InvalidInputError as exc:
        assert str(exc)
        return
    assert Path(os.path.realpath(path)).is_relative_to(root) and path.is_file()


# --- http(s) downloads -------------------------------------------------------------------------


class AudioHandler(BaseHTTPRequestHandler):
    """Serves ``/clip.wav`` whole, ``/slow.wav`` a little at a time, anything else as 404."""

    clip = b""

    def do_GET(self) -> None:
        if self.path not in ("/clip.wav", "/slow.wav"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.clip)))
        self.end_headers()
        try:
            if self.path == "/clip.wav":
                self.wfile.write(self.clip)
                return
            for lo in range(0, len(self.clip), 2_000):
                self.wfile.write(self.clip[lo : lo + 2_000])
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def http_url(tmp_path_factory) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 serving a 1 s tone."""
    AudioHandler.clip = write_tone(tmp_path_factory.mktemp("web") / "clip.wav", 1.0).read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), AudioHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_uris_are_refused_unless_enabled(http_url, policy):
    with refused("http(s) downloads are off") as error, open_audio_source(http_url, policy):
        pass
    assert "set read_policy.allow_http: true in flow.yml" in str(error.value)


def test_an_enabled_download_decodes_like_the_file_and_is_removed_afterwards(http_url, root):
    policy = ReadPolicy(roots=[root], allow_http=True)
    url = f"{http_url}/clip.wav"
    with open_audio_source(url, policy) as source:
        assert source.uri == url
        audio = load_audio(source.path, label=url)
        copy = source.path
    assert not copy.exists()
    np.testing.assert_array_equal(audio, load_audio(AudioHandler.clip))
    with open_audio_source(url, policy) as again:
        assert again.fingerprint == source.fingerprint  # same bytes: an unchanged clip


def test_downloads_are_bounded_in_size_and_time_and_report_http_errors(http_url, root):
    def fetch_from(url: str, **limits) -> None:
        with open_audio_source(url, ReadPolicy(roots=[root], allow_http=True, **limits)):
            pass

    def fetch(path: str, **limits) -> None:
        fetch_from(http_url + path, **limits)

    with refused("clip.wav: is 0.0 MiB; files up to 0 MiB"):
        fetch("/clip.wav", max_file_bytes=1_000)
    started = time.monotonic()
    with refused("slow.wav: the download did not finish within 1 s"):
        fetch("/slow.wav", http_timeout_seconds=1)
    assert time.monotonic() - started < 3
    with refused("gone.wav: the server answered HTTP 404"):
        fetch("/gone.wav")
    with refused("x.wav: download failed (ConnectError"):
        fetch_from("http://127.0.0.1:1/x.wav")
