"""The /ui page and /docs, driven in headless Chromium (Debian's, through Playwright)."""

import base64
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from audiosearch.index import ChunkIndex, ClipToAdd
from audiosearch.paths import fingerprint
from tests.conftest import ROOT, Server, start_server, toy_clips

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "test-output"
#: The query clip: ten seconds, so its best chunk may lie past 0 s and the players must seek.
QUERY = "piano_phrase_10s.wav"


def chromium_path() -> str:
    """Debian's Chromium (Playwright's own browser download is not used)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"{path}: no Chromium; install it (apt-get install chromium) or set CHROMIUM")
    return path


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright, once per module (its sync API cannot be started twice at once)."""
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium with no sandbox, GPU or background networking."""
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=BROWSER_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def indexed(toy_index: list[dict]) -> list[dict]:
    """toy-data/ indexed (once per session, shared with the other modules)."""
    assert all(d["status"] != "error" for d in toy_index), toy_index
    return toy_index


@contextmanager
def service_page(browser: Browser, server: Server, width: int = 1280) -> Iterator[Page]:
    """A fresh page that may reach only ``server``; any other request, or a script error,
    fails the test."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    elsewhere: list[str] = []
    errors: list[str] = []

    def only_the_service(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_service)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(60_000)
    yield page
    context.close()
    assert not elsewhere, f"the page asked for something beyond the service: {elsewhere}"
    assert not errors, f"script errors: {errors}"


@pytest.fixture
def page(browser: Browser, sfx_server: Server) -> Iterator[Page]:
    """A fresh page at 1280 px that may reach only the shared service."""
    with service_page(browser, sfx_server) as page:
        yield page


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / name, full_page=True)


def result_rows(page: Page) -> list[dict]:
    """Each result row's clip name, matched segment text, and its player's start and position."""
    return page.eval_on_selector_all(
        "#results tbody tr",
        """rows => rows.map(row => {
            const audio = row.querySelector("audio");
            return {
                name: row.querySelector(".clip-name").textContent,
                matched: row.querySelector(".matched").textContent,
                start: Number(audio.dataset.start),
                currentTime: audio.currentTime,
                readyState: audio.readyState,
            };
        })""",
    )


def wait_for_players(page: Page) -> None:
    """Until every result's player has loaded its file's header (and so applied its start)."""
    page.wait_for_function(
        """() => [...document.querySelectorAll("#results audio")].every(
            a => a.readyState >= 1 && Math.abs(a.currentTime - Number(a.dataset.start)) < 0.05)"""
    )


def test_upload_search_plays_matches_from_the_matched_offset_and_more_like_this(
    page, sfx_server, indexed
):
    query = next(p for p in toy_clips() if p.name == QUERY)
    audio_statuses: list[int] = []
    page.on("response", lambda r: "/audio/" in r.url and audio_statuses.append(r.status))
    page.goto(f"{sfx_server.url}/ui")
    page.set_input_files("#file", query)
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length >= 5")
    wait_for_players(page)
    rows = result_rows(page)
    assert page.text_content("#results caption") == f"Most similar to {QUERY}"
    assert len(rows) == 10 and rows[0]["name"] == QUERY
    for row in rows:
        assert row["currentTime"] == pytest.approx(row["start"], abs=0.05), row
        assert row["matched"].startswith(f"{row['start']:.1f}-"), row
    assert any(row["start"] > 0 for row in rows)  # some players really had to seek
    # Chromium asks for media by byte ranges (it could not seek in a long file otherwise).
    assert audio_statuses and set(audio_statuses) == {206}, audio_statuses
    screenshot(page, "ui-search.png")

    # "More like this" on the second result: new rows, ranked against that clip.
    other = rows[1]["name"]
    page.click("#results tbody tr:nth-child(2) .more-like-this")
    page.wait_for_function(
        "text => document.querySelector('#results caption').textContent === text",
        arg=f"More like {other}",
    )
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length >= 5")
    wait_for_players(page)
    again = result_rows(page)
    assert other not in [row["name"] for row in again]  # the clip itself is left out
    assert [row["name"] for row in again] != [row["name"] for row in rows]
    screenshot(page, "ui-more-like-this.png")


def drop_file(page: Page, selector: str, path: Path) -> None:
    """Drag ``path`` from the desktop and drop it on ``selector``, as a person would."""
    transfer = page.evaluate_handle(
        """([name, data]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "audio/wav"}));
            return transfer;
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(selector, event, {"dataTransfer": transfer})


def test_dropped_clip_is_searched_within_the_duration_range(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    page.fill("#min-duration", "5")
    page.fill("#max-duration", "9")
    drop_file(page, "#drop-zone", next(p for p in toy_clips() if p.name == QUERY))
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length >= 1")
    assert page.text_content("#results caption") == f"Most similar to {QUERY}"
    lengths = page.eval_on_selector_all(
        "#results tbody tr td:nth-child(4)", "cells => cells.map(c => parseFloat(c.textContent))"
    )
    assert lengths and all(5 <= n <= 9 for n in lengths), lengths


def test_library_view_pages_through_the_clips_with_players(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui#library")
    page.wait_for_function("document.querySelectorAll('#library tbody tr').length > 0")
    first_page = page.eval_on_selector_all(
        "#library tbody tr", "rows => rows.map(r => r.dataset.clipId)"
    )
    assert len(first_page) == 20  # a page; toy-data alone has 33 clips
    assert page.locator("#library tbody tr audio").count() == 20
    assert page.text_content("#page-info").startswith("Clips 1-20 of ")
    screenshot(page, "ui-library.png")
    page.click("#next")
    page.wait_for_function(
        "document.querySelector('#page-info').textContent.startsWith('Clips 21-')"
    )
    second_page = page.eval_on_selector_all(
        "#library tbody tr", "rows => rows.map(r => r.dataset.clipId)"
    )
    assert second_page and not set(second_page) & set(first_page)


def test_swagger_ui_renders_with_the_network_disabled(page, sfx_server):
    page.goto(f"{sfx_server.url}/docs")
    search = page.locator('.opblock-summary-path[data-path="/search"]')
    search.wait_for(state="visible")
    assert page.locator('.opblock-summary-path[data-path="/upload/search"]').is_visible()
    screenshot(page, "swagger-offline.png")


# --- #16: the query's waveform and region, results' outlines, big files, judgments --------------


#: True once every result's outline is drawn.
OUTLINES_DRAWN = "[...document.querySelectorAll('#results .clip-wave')].every(c => c.dataset.drawn)"


def wait_for_results(page: Page, caption_part: str = "") -> None:
    """Until the results table shows rows under a caption holding ``caption_part``."""
    page.wait_for_function(
        """part => !document.querySelector('#results').hidden
            && document.querySelector('#results caption').textContent.includes(part)
            && document.querySelectorAll('#results tbody tr').length > 0""",
        arg=caption_part,
    )


def drag(page: Page, selector: str, start: float, end: float) -> None:
    """Drag across ``selector`` from ``start`` to ``end`` (fractions of its width)."""
    box = page.locator(selector).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + start * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + end * box["width"], y, steps=8)
    page.mouse.up()


def test_first_load_shows_no_empty_query_and_a_drop_names_the_file(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    assert not page.is_visible("#query")  # hidden must beat #query's own display
    assert not page.is_visible("#results")
    drop_file(page, "#drop-zone", next(p for p in toy_clips() if p.name == QUERY))
    wait_for_results(page, QUERY)
    assert page.eval_on_selector("#file", "input => input.files[0].name") == QUERY
    assert page.text_content("#query-name") == QUERY


def test_region_dragged_on_the_waveform_is_what_is_searched(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    page.set_input_files("#file", next(p for p in toy_clips() if p.name == QUERY))
    wait_for_results(page, QUERY)
    page.wait_for_function("document.querySelector('#query-wave').dataset.drawn > 0")
    uploads: list[int] = []
    page.on(
        "request", lambda r: "/upload/search" in r.url and uploads.append(len(r.post_data_buffer))
    )
    drag(page, "#query-wave", 0.4, 0.9)  # 4-9 s of the 10 s clip
    wait_for_results(page, "(4.0-9.0 s)")
    assert page.text_content("#region-info").startswith("Searching 4.0-9.0 s of 10.0 s")
    spans = page.eval_on_selector_all(
        "#results .query-span", "s => s.map(e => [Number(e.dataset.start), Number(e.dataset.end)])"
    )
    assert len(spans) == 10, spans
    assert all(3.95 <= start < end <= 9.05 for start, end in spans), spans
    # Only the region travelled: 5 s of 16 kHz mono, 16-bit (plus the form's few hundred bytes).
    assert uploads and 5 * 16_000 * 2 < uploads[-1] < 5 * 16_000 * 2 + 4_000, uploads
    screenshot(page, "ui-region.png")

    page.click("#whole-clip")
    page.wait_for_function("!document.querySelector('#results caption').textContent.includes('(')")
    assert page.text_content("#region-info").startswith("All 10.0 s")


def test_result_rows_show_the_clip_outline_and_play_from_a_click(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    page.fill("#limit", "30")
    started = time.perf_counter()
    page.set_input_files("#file", next(p for p in toy_clips() if p.name == QUERY))
    wait_for_results(page, QUERY)
    page.wait_for_function(OUTLINES_DRAWN)
    rows = page.locator("#results tbody tr").count()
    print(f"\n{rows} results with their outlines drawn {time.perf_counter() - started:.2f} s "
          "after choosing the file")  # fmt: skip
    assert rows == 30
    # The matched segment is shaded: the canvas has the span's colour where the match is.
    wave = page.locator("#results tbody tr:first-child canvas.clip-wave")
    box = wave.bounding_box()
    wave.click(position={"x": box["width"] * 0.5, "y": box["height"] / 2})
    page.wait_for_function(
        """() => { const a = document.querySelector('#results tbody tr:first-child audio');
                   return !a.paused && Math.abs(a.currentTime - 5) < 1; }"""
    )


def test_a_five_minute_48k_stereo_file_is_searched_from_the_page(page, sfx_server, indexed,
                                                                 tmp_path):  # fmt: skip
    # The file: 57.6 MB, over the JSON body limit; the page sends 16 kHz mono.
    rate = 48_000
    t = np.arange(300 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(0.5 * t)) * t)).astype(np.float32)
    path = tmp_path / "five_minutes_48k_stereo.wav"
    sf.write(path, np.stack([tone, tone[::-1]], axis=1), rate, subtype="PCM_16")
    assert path.stat().st_size > 57_000_000
    uploads: list[int] = []
    page.on(
        "request", lambda r: "/upload/search" in r.url and uploads.append(len(r.post_data_buffer))
    )
    page.goto(f"{sfx_server.url}/ui")
    page.set_input_files("#file", path)
    wait_for_results(page, path.name)
    assert page.text_content("#region-info").startswith("All 300.0 s")
    assert uploads and uploads[-1] < 300 * 16_000 * 2 + 4_000, uploads
    assert page.locator("#results tbody tr").count() == 10


def test_judged_results_refine_the_search_and_start_over_clears_them(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    page.set_input_files("#file", next(p for p in toy_clips() if p.name == QUERY))
    wait_for_results(page, QUERY)
    assert page.is_disabled("#refine")
    ids = page.eval_on_selector_all(
        "#results tbody tr", "rs => rs.map(r => Number(r.dataset.clipId))"
    )
    liked, disliked = ids[4], ids[1]
    page.click(f'#results tr[data-clip-id="{liked}"] .like')
    page.click(f'#results tr[data-clip-id="{disliked}"] .unlike')
    assert page.get_attribute(f'#results tr[data-clip-id="{liked}"]', "class") == "judged-like"
    page.click("#refine")
    wait_for_results(page, "refined by 2 judged")
    refined = page.eval_on_selector_all(
        "#results tbody tr", "rs => rs.map(r => [Number(r.dataset.clipId), r.className])"
    )
    assert refined[0] == [liked, "judged-like"]  # the liked clip comes first, marked
    assert disliked not in [clip for clip, _ in refined]  # the disliked one is left out
    assert refined[1:] and all(mark == "" for _, mark in refined[1:])
    screenshot(page, "ui-refined.png")
    page.click("#start-over")
    page.wait_for_function(
        "!document.querySelector('#results caption').textContent.includes('refined')"
    )
    assert page.locator("#results tr.judged-like, #results tr.judged-unlike").count() == 0
    assert page.is_disabled("#refine")


def test_a_down_service_is_named_with_a_retry_and_old_results_go(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    page.set_input_files("#file", next(p for p in toy_clips() if p.name == QUERY))
    wait_for_results(page, QUERY)
    page.route("**/upload/search", lambda route: route.abort("connectionrefused"))
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-retry", state="visible")
    assert page.text_content("#search-status") == (
        f"cannot reach the service at {sfx_server.url}; is `app.py serve` running?"
    )
    assert not page.is_visible("#results")
    assert page.locator("#results tbody tr").count() == 0
    page.unroute("**/upload/search")
    page.click("#search-retry")
    wait_for_results(page, QUERY)
    assert not page.is_visible("#search-retry")


def test_a_failed_search_clears_the_previous_results(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    page.set_input_files("#file", next(p for p in toy_clips() if p.name == QUERY))
    wait_for_results(page, QUERY)
    page.fill("#min-duration", "9")
    page.fill("#max-duration", "2")  # the service refuses min > max
    page.click("#search-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#search-status').textContent.startsWith('Search failed')"
    )
    assert not page.is_visible("#results")


def test_more_like_this_names_the_clip_and_search_repeats_it(page, sfx_server, indexed):
    page.goto(f"{sfx_server.url}/ui")
    page.set_input_files("#file", next(p for p in toy_clips() if p.name == QUERY))
    wait_for_results(page, QUERY)
    other = page.text_content("#results tbody tr:nth-child(2) .clip-name")
    page.click("#results tbody tr:nth-child(2) .more-like-this")
    wait_for_results(page, f"More like {other}")
    assert page.text_content("#query-name") == other  # the bar names the clip, not the upload
    page.wait_for_function("document.querySelector('#query-wave').dataset.drawn > 0")
    page.click("#search-form button[type=submit]")  # searches with the clip again
    page.wait_for_function(
        "document.querySelector('#search-status').textContent.includes('clips in')"
    )
    assert page.text_content("#results caption") == f"More like {other}"


def test_phone_width_has_no_horizontal_scroll(browser, sfx_server, indexed):
    with service_page(browser, sfx_server, width=390) as page:
        page.goto(f"{sfx_server.url}/ui")
        page.set_input_files("#file", next(p for p in toy_clips() if p.name == QUERY))
        wait_for_results(page, QUERY)
        page.wait_for_function(OUTLINES_DRAWN)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "ui-search-390.png")
        page.goto(f"{sfx_server.url}/ui#library")
        page.wait_for_function("document.querySelectorAll('#library tbody tr').length > 0")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("window.scrollY") == 0  # the header stays in view
        page.goto(f"{sfx_server.url}/ui#map")
        page.wait_for_function("document.querySelector('#map').dataset.points > 0")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "ui-map-390.png")


def test_a_recorded_query_from_the_microphone_is_searched(playwright, sfx_server, indexed,
                                                          tmp_path):  # fmt: skip
    source = next(p for p in toy_clips() if p.name == QUERY)
    audio, rate = sf.read(source)
    fake = tmp_path / "microphone.wav"
    sf.write(fake, audio, rate, subtype="PCM_16")  # Chromium's fake device reads 16-bit PCM
    args = [*BROWSER_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake}"]  # fmt: skip
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=args)
    try:
        with service_page(browser, sfx_server) as page:
            page.goto(f"{sfx_server.url}/ui")
            page.click("#record")
            page.wait_for_selector("#stop-recording", state="visible")
            page.wait_for_function("document.querySelector('#level').value > 0.01")  # the meter
            page.wait_for_timeout(5_000)
            page.click("#stop-recording")
            wait_for_results(page, "recording-")
            rows = result_rows(page)
            scores = page.eval_on_selector_all(
                "#results .score", "cells => cells.map(c => Number(c.textContent))"
            )
            assert len(rows) == 10 and scores == sorted(scores, reverse=True)
            assert QUERY in [row["name"] for row in rows[:3]], rows
            assert page.text_content("#query-name").startswith("recording-")
    finally:
        browser.close()


# --- #16: the library map, and the library's filter and delete, over 2,000 clips ---------------

MAP_CLIPS = 2_000
MAP_FOLDERS = ("birds", "engines", "rain", "voices")


@pytest.fixture(scope="module")
def map_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A flow over 2,000 short generated clips in 4 folders, written into its index directly
    (vectors clustered by folder: encoding them would take minutes and show nothing more)."""
    root = tmp_path_factory.mktemp("map")
    rng = np.random.default_rng(16)
    centres = rng.normal(size=(len(MAP_FOLDERS), 512))
    clips = []
    for i in range(MAP_CLIPS):
        folder = root / "library" / MAP_FOLDERS[i % len(MAP_FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{MAP_FOLDERS[i % len(MAP_FOLDERS)]}_{i:04d}.wav"
        t = np.arange(8_000) / 8_000
        sf.write(path, 0.4 * np.sin(2 * np.pi * (200 + i) * t), 8_000, subtype="PCM_16")
        vectors = centres[i % len(MAP_FOLDERS)] + 0.3 * rng.normal(size=(2, 512))
        clips.append(ClipToAdd(
            uri=str(path), duration=1.0, starts=np.array([0.0, 0.5]), ends=np.array([0.5, 1.0]),
            vectors=vectors.astype(np.float32), fingerprint=fingerprint(path),
        ))  # fmt: skip
    workspace = root / "workspace"
    with ChunkIndex(workspace / "SimpleIndexer" / "0") as index:
        index.add(clips, encoder="sfx/generated")
    server = start_server(workspace, "--encoder", "sfx", "--allowed-root", str(root))
    yield server
    server.stop()


def test_the_map_draws_every_clip_with_names_on_hover_and_more_like_this(browser, map_server):
    with service_page(browser, map_server) as page:
        started = time.perf_counter()
        page.goto(f"{map_server.url}/ui#map")
        page.wait_for_function("document.querySelector('#map').dataset.points > 0")
        print(f"\nmap of {MAP_CLIPS} clips shown {time.perf_counter() - started:.2f} s after "
              "opening the page")  # fmt: skip
        assert page.get_attribute("#map", "data-points") == str(MAP_CLIPS)
        assert page.text_content("#map-status").startswith(f"{MAP_CLIPS} clips from 4 folders")
        assert page.locator("#map-legend li").count() == 4
        # A drawn point: the first clip's place, from /map, in canvas pixels.
        x, y = page.evaluate(
            """async () => {
                const m = await (await fetch('/map')).json();
                const c = document.querySelector('#map');
                const [w, h] = [c.clientWidth - 16, c.clientHeight - 16];
                return [8 + m.x[0] * w, 8 + (1 - m.y[0]) * h];
            }"""
        )
        lit = page.evaluate(
            """([x, y]) => {
                const c = document.querySelector('#map'), r = devicePixelRatio;
                const [px, py] = [Math.round(x * r), Math.round(y * r)];
                return [...c.getContext('2d').getImageData(px, py, 1, 1).data];
            }""",
            [x, y],
        )
        assert lit[3] == 255, lit  # a point is drawn there
        page.mouse.move(page.locator("#map").bounding_box()["x"] + x,
                        page.locator("#map").bounding_box()["y"] + y)  # fmt: skip
        page.wait_for_selector("#map-tip", state="visible")
        assert page.text_content("#map-tip").endswith(".wav")
        page.mouse.click(page.locator("#map").bounding_box()["x"] + x,
                         page.locator("#map").bounding_box()["y"] + y)  # fmt: skip
        page.wait_for_selector("#map-menu", state="visible")
        name = page.text_content("#map-menu-name")
        assert page.get_attribute("#map-player", "src").startswith("/audio/")
        page.wait_for_function("!document.querySelector('#map-player').paused")
        screenshot(page, "ui-map.png")
        page.click("#map-more")
        wait_for_results(page, f"More like {name}")
        assert page.evaluate("location.hash") == "#search"

        # Drawing 100k points (synthetic places) with the page's own code.
        took = page.evaluate(
            """async () => {
                const { LibraryMap, palette } = await import('/ui/map.js');
                const canvas = document.createElement('canvas');
                canvas.style.cssText = 'width: 1200px; height: 520px';
                document.body.append(canvas);
                const map = new LibraryMap(canvas);
                const n = 100000;
                const x = Float32Array.from({length: n}, Math.random);
                const y = Float32Array.from({length: n}, Math.random);
                map.setPoints(x, y, Uint16Array.from({length: n}, (_, i) => i % 40), palette(40));
                const times = [map.draw(), map.draw(), map.draw()];
                const started = performance.now();
                for (let i = 0; i < 100; i++) {
                    map.nearest(Math.random() * 1200, Math.random() * 520);
                }
                canvas.remove();
                return { draw: times, hover: (performance.now() - started) / 100 };
            }"""
        )
        print(f"100,000 points: drawn in {', '.join(f'{t:.0f}' for t in took['draw'])} ms; "
              f"nearest point under the pointer in {took['hover']:.3f} ms")  # fmt: skip
        assert min(took["draw"]) < 1_000


def test_fifty_results_show_their_outlines(browser, map_server):
    with service_page(browser, map_server) as page:
        page.goto(f"{map_server.url}/ui#library")
        page.wait_for_function("document.querySelectorAll('#library tbody tr').length > 0")
        page.evaluate("document.querySelector('#limit').value = '50'")
        started = time.perf_counter()
        page.click("#library tbody tr:first-child .more-like-this")
        wait_for_results(page, "More like")
        page.wait_for_function(OUTLINES_DRAWN)
        took = time.perf_counter() - started
        rows = page.locator("#results tbody tr").count()
        print(f"\n{rows} results and their outlines (GET /peaks) shown in {took:.2f} s")
        assert rows == 50


def test_library_filter_delete_and_page_in_the_url(browser, map_server):
    with service_page(browser, map_server) as page:
        page.goto(f"{map_server.url}/ui#library?page=3")
        page.wait_for_function(
            "document.querySelector('#page-info').textContent.startsWith('Clips 41-60 of 2000')"
        )
        page.fill("#library-filter", "rain_01")
        page.wait_for_function(
            "document.querySelector('#page-info').textContent === 'Clips 1-20 of 25'"
        )
        assert page.evaluate("location.hash") == "#library?filter=rain_01"
        names = page.eval_on_selector_all("#library .clip-name", "s => s.map(e => e.textContent)")
        assert len(names) == 20 and all("rain_01" in n for n in names)
        page.click("#next")
        page.wait_for_function(
            "document.querySelector('#page-info').textContent === 'Clips 21-25 of 25'"
        )
        assert page.evaluate("location.hash") == "#library?page=2&filter=rain_01"
        page.reload()  # the page and filter come back from the URL
        page.wait_for_function(
            "document.querySelector('#page-info').textContent === 'Clips 21-25 of 25'"
        )
        assert page.input_value("#library-filter") == "rain_01"

        doomed = page.text_content("#library tbody tr:first-child .clip-name")
        dialogs: list[str] = []
        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.click("#library tbody tr:first-child .delete")
        assert dialogs and doomed in dialogs[0]
        assert page.locator("#library tbody tr").count() == 5  # dismissed: nothing deleted
        page.once("dialog", lambda d: d.accept())
        page.click("#library tbody tr:first-child .delete")
        page.wait_for_function(
            "document.querySelector('#page-info').textContent === 'Clips 21-24 of 24'"
        )
        assert doomed not in page.eval_on_selector_all(
            "#library .clip-name", "s => s.map(e => e.textContent)"
        )
        screenshot(page, "ui-library-filter.png")
