"""A report's notes in its popup on the served map: fetched when the popup opens (the view's
columns leave them out), and shown as text: a hostile note is never read as HTML."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.domain import Report
from app.scenario import Scenario
from app.store import SQLiteStore
from tests.map.browser import Watched, open_map, settle
from tests.map.conftest import _serve
from tests.map.support import LiveServer, load_into
from tests.map.test_map_browser import click_topmost, pytestmark  # noqa: F401 (chromium)

HOSTILE = '<img src="x" onerror="window.__pwned = 1"> shelling at the ford & <b>bold</b>'
LON, LAT = 46.62, 39.70


@pytest.fixture
def noted_server(tmp_path: Path, scenario: Scenario) -> Iterator[LiveServer]:
    """The scenario and one report whose notes are hostile HTML, the last report of all."""
    store = SQLiteStore(tmp_path / "truce.sqlite")
    load_into(store, scenario)
    at = datetime(2022, 3, 28, 9, tzinfo=UTC)
    store.add_reports([Report("noted-1", "AZE", at, LON, LAT, notes=HOSTILE)], "test")
    try:
        yield from _serve(store)
    finally:
        store.close()


def test_a_popup_shows_the_reports_notes_as_text(
    watched: Watched, noted_server: LiveServer
) -> None:
    page = open_map(watched, f"{noted_server.url}/map")
    page.evaluate(f"() => window.truce.map.setView([{LAT}, {LON}], 16, {{animate: false}})")
    page.wait_for_timeout(200)  # the moveend debounce
    settle(page)
    assert page.evaluate("window.truce.mode()") == "reports"
    click_topmost(page, ".truce-report")
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(state="visible")
    page.wait_for_function(
        "() => (document.querySelector('.leaflet-popup-content') || {}).innerText"
        "?.includes('shelling at the ford')",
        timeout=20_000,
    )
    text = popup.inner_text()
    assert "noted-1" in text and "Notes" in text
    assert HOSTILE in text  # the markup shown as it was written
    assert popup.locator("img").count() == 0 and popup.locator("b").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
    assert any("/map/data/reports/noted-1" in url for url in watched.requests)
    assert watched.errors == []
