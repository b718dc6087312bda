"""The /ui page and /docs, driven in headless Chromium (Debian's, through Playwright)."""

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import ROOT, Server, toy_clips

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium with no sandbox, GPU or background networking."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def indexed(toy_index: list[dict]) -> list[dict]:
    """toy-data/ indexed (once per session, shared with the other modules)."""
    assert all(d["status"] != "error" for d in toy_index), toy_index
    return toy_index


@pytest.fixture
def page(browser: Browser, sfx_server: Server) -> Iterator[Page]:
    """A fresh page that may reach only the service; any other request, or a script error,
    fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    elsewhere: list[str] = []
    errors: list[str] = []

    def only_the_service(route):
        if route.request.url.startswith(sfx_server.url):
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
