"""A season's map in headless Chromium: the page carries no reports, map.js fetches what each
view and time window needs from /map/data, counts per cell at low zoom, reports (clustered) when
zoomed in, and says so when a filter matches nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.scenario import load_scenario
from tests.map.browser import Watched, count, open_map, report_elements, settle
from tests.map.conftest import SEASON_REPORTS
from tests.map.support import REPO, LiveServer
from tests.map.test_map_browser import pytestmark  # noqa: F401 (chromium and the assets)

TOTAL = SEASON_REPORTS + 13


def data_requests(watched: Watched, kind: str) -> list[dict[str, list[str]]]:
    """The query of every /map/data/<kind> request the page made, in order."""
    return [
        parse_qs(urlsplit(url).query)
        for url in watched.requests
        if urlsplit(url).path == f"/map/data/{kind}"
    ]


def cell_total(page: Any) -> int:
    """The reports the drawn cells stand for (the numbers on them, read from the layer)."""
    total: int = page.evaluate(
        """() => {
            let n = 0;
            window.truce.cellLayer.eachLayer((m) => { n += m.options.truceCount || 0; });
            return n;
        }"""
    )
    return total


def move(page: Any, lat: float, lon: float, zoom: int) -> None:
    page.evaluate(
        f"() => {{ window.truce.map.setView([{lat}, {lon}], {zoom}, {{animate: false}}); }}"
    )
    page.wait_for_timeout(200)  # the moveend debounce
    settle(page)


def test_the_page_carries_no_reports_and_fetches_cells_for_its_view(
    watched: Watched, season_server: LiveServer
) -> None:
    page = open_map(watched, f"{season_server.url}/map")
    assert watched.errors == []
    html = page.content()
    assert len(html) < 1_000_000  # 20,000 reports inline took 3 MB
    cells = data_requests(watched, "cells")
    assert cells and "bbox" in cells[-1] and "zoom" in cells[-1] and "until" in cells[-1]
    assert page.evaluate("window.truce.mode()") == "cells"
    counts = page.evaluate("window.truce.counts()")
    assert counts["reports"] == TOTAL  # the window: everything up to the last report
    assert 0 < counts["cells"] < 1_000
    assert cell_total(page) == counts["shown"]
    assert report_elements(page) == 0  # no marker per report at this zoom
    assert watched.foreign_requests({"127.0.0.1"}) == []


def test_zooming_in_fetches_reports_for_the_view_and_panning_fetches_again(
    watched: Watched, season_server: LiveServer
) -> None:
    page = open_map(watched, f"{season_server.url}/map")
    move(page, 40.0, 46.8, 14)
    assert page.evaluate("window.truce.mode()") == "reports"
    first = data_requests(watched, "reports")[-1]
    shown = page.evaluate("window.truce.counts()")["shown"]
    assert 0 < shown < TOTAL and report_elements(page) > 0
    move(page, 39.8, 46.5, 14)
    second = data_requests(watched, "reports")[-1]
    assert second["bbox"] != first["bbox"]
    west, south, east, north = map(float, second["bbox"][0].split(","))
    assert west < 46.5 < east and south < 39.8 < north
    assert watched.errors == []


def test_the_slider_fetches_the_window(watched: Watched, season_server: LiveServer) -> None:
    page = open_map(watched, f"{season_server.url}/map")
    last = page.evaluate("window.truce.counts()")["reports"]
    page.evaluate("window.truce.setStep(Math.floor(window.truce.steps.length / 2))")
    settle(page)
    middle = page.evaluate("window.truce.counts()")
    assert 0 < middle["reports"] < last
    until = data_requests(watched, "cells")[-1]["until"][0]
    assert until.startswith("2022-03-1")  # mid-March: half of the month
    page.evaluate("window.truce.setWindow(86400)")
    settle(page)
    day = page.evaluate("window.truce.counts()")["reports"]
    # A day of a month's reports: about 1/30 of them.
    assert 0 < day < middle["reports"] / 5
    assert "since" in data_requests(watched, "cells")[-1]
    assert watched.errors == []


def test_cells_split_as_the_map_zooms_in_and_clusters_split_too(
    watched: Watched, season_server: LiveServer
) -> None:
    page = open_map(watched, f"{season_server.url}/map")
    move(page, 40.0, 46.7, 8)
    coarse = page.evaluate("window.truce.counts()")["cells"]
    move(page, 40.0, 46.7, 10)
    fine = page.evaluate("window.truce.counts()")["cells"]
    assert fine > coarse > 0
    move(page, 40.0, 46.7, 13)
    assert page.evaluate("window.truce.mode()") == "reports"
    clusters = count(page, ".leaflet-marker-pane .truce-cluster")
    move(page, 40.0, 46.7, 17)
    single = count(page, ".leaflet-marker-pane .truce-report")
    assert clusters > 0 and single > 0
    assert count(page, ".leaflet-marker-pane .truce-cluster") < clusters
    assert watched.errors == []


def test_a_filter_that_matches_nothing_says_so_and_lists_what_there_is(
    watched: Watched, live_server: LiveServer
) -> None:
    page = open_map(watched, f"{live_server.url}/map?party=XYZ")
    notice = page.locator(".truce-notice")
    notice.wait_for(state="visible")
    text = notice.inner_text()
    assert "No reports match party XYZ" in text
    assert "AZE" in text and "nk-pk-zone" in text and "2022-03-24" in text
    assert watched.errors == []
    page = open_map(watched, f"{live_server.url}/map?party=AZE")
    assert (
        page.locator(".truce-notice").count() == 0 or not page.locator(".truce-notice").is_visible()
    )


def test_the_legend_folds_on_a_phone_and_under_an_open_popup(
    browser: Any, watched: Watched, live_server: LiveServer
) -> None:
    page = open_map(watched, f"{live_server.url}/map")
    legend = ".truce-legend details"
    assert page.evaluate(f"document.querySelector('{legend}').open") is True
    page.evaluate("() => { const m = window.truce.map; m.openPopup('x', m.getCenter()); }")
    assert page.evaluate(f"document.querySelector('{legend}').open") is False
    page.evaluate("() => { window.truce.map.closePopup(); }")
    assert page.evaluate(f"document.querySelector('{legend}').open") is True
    phone = browser.new_context(viewport={"width": 390, "height": 800})
    try:
        small = phone.new_page()
        small.goto(f"{live_server.url}/map", wait_until="load")
        small.wait_for_function("() => window.truce !== undefined", timeout=20_000)
        assert small.evaluate(f"document.querySelector('{legend}').open") is False
    finally:
        phone.close()


def test_a_click_on_a_zone_draws_no_focus_rectangle(
    watched: Watched, live_server: LiveServer
) -> None:
    page = open_map(watched, f"{live_server.url}/map")
    page.evaluate("() => { window.truce.map.setView([39.85, 46.75], 10, {animate: false}); }")
    settle(page)
    outline = page.evaluate(
        """() => {
            const path = document.querySelector('path.leaflet-interactive');
            path.setAttribute('tabindex', '0');
            path.focus();
            return getComputedStyle(path).outlineStyle;
        }"""
    )
    assert outline == "none"


def test_the_date_picker_moves_the_slider_to_the_end_of_that_day(
    watched: Watched, live_server: LiveServer
) -> None:
    page = open_map(watched, f"{live_server.url}/map")
    picker = page.locator(".truce-slider input[type=date]")
    assert picker.get_attribute("min") == "2022-03-24"
    picker.fill("2022-03-26")
    picker.dispatch_event("change")
    settle(page)
    moment = page.evaluate("window.truce.time()")
    end_of_day = 1648339199  # 2022-03-26T23:59:59Z
    assert moment <= end_of_day
    later = page.evaluate(f"window.truce.steps.filter((t) => t > {moment})")
    assert all(t > end_of_day for t in later)
    scenario_reports = load_scenario().reports
    expected = sum(r.observed_at.timestamp() <= moment for r in scenario_reports)
    assert page.evaluate("window.truce.counts()")["reports"] == expected < 13


def test_the_opening_view_frames_the_reports_and_labels_sit_above_markers(
    watched: Watched, live_server: LiveServer
) -> None:
    page = open_map(watched, f"{live_server.url}/map")
    west, south, east, north = page.evaluate(
        "() => { const b = window.truce.map.getBounds(); "
        "return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }"
    )
    reports = load_scenario().reports
    assert all(west <= r.lon <= east and south <= r.lat <= north for r in reports)
    assert east - west < 1.0  # the reports, not every zone of the region
    z = page.evaluate(
        """() => {
            const place = document.querySelector('.leaflet-marker-pane .truce-place');
            const marks = [...document.querySelectorAll('.leaflet-marker-pane .truce-report')];
            return [Number(getComputedStyle(place).zIndex),
                    Math.max(...marks.map((m) => Number(getComputedStyle(m).zIndex)))];
        }"""
    )
    assert z[0] > z[1]


def test_season_screenshot_for_the_readme(
    watched: Watched, season_server: LiveServer, tmp_path: Path
) -> None:
    """docs/map-season.png: written when missing or with TRUCE_UPDATE_SCREENSHOT=1."""
    page = open_map(watched, f"{season_server.url}/map")
    assert page.evaluate("window.truce.mode()") == "cells"
    page.wait_for_timeout(300)
    shot = tmp_path / "map-season.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 50_000
    assert watched.errors == []
    target = REPO / "docs" / "map-season.png"
    if os.environ.get("TRUCE_UPDATE_SCREENSHOT") == "1" or not target.exists():
        shutil.copyfile(shot, target)


#: Holds each /map/data/cells answer back until `window.__release()` (installed in the page).
HOLD_CELLS = """() => {
    const real = window.fetch;
    const held = [];
    window.__release = () => { held.splice(0).forEach((go) => go()); };
    window.fetch = function (url, init) {
        const answer = real.call(this, url, init);
        if (!String(url).includes("/map/data/cells")) return answer;
        return answer.then((r) => new Promise((resolve) => held.push(() => resolve(r))));
    };
}"""


def test_a_zoom_keeps_the_counts_on_screen_until_the_new_ones_are_drawn(
    watched: Watched, season_server: LiveServer
) -> None:
    page = open_map(watched, f"{season_server.url}/map")
    move(page, 40.0, 46.7, 8)
    before = page.evaluate("window.truce.counts()")
    assert before["mode"] == "cells" and before["tracks"] > 0
    drawn = cell_total(page)
    page.evaluate(HOLD_CELLS)
    asked = len(data_requests(watched, "cells"))
    page.evaluate("() => { window.truce.map.setZoom(10, {animate: false}); }")
    # The new view's counts are asked for; the old ones stay on screen meanwhile.
    for _ in range(250):
        if len(data_requests(watched, "cells")) > asked:
            break
        page.wait_for_timeout(20)
    assert len(data_requests(watched, "cells")) > asked
    page.wait_for_timeout(300)
    assert page.evaluate("window.truce.loading()") is True
    assert cell_total(page) == drawn
    assert page.evaluate("window.truce.counts()")["cells"] == before["cells"]
    page.evaluate("window.__release()")
    settle(page)
    after = page.evaluate("window.truce.counts()")
    assert after["cells"] > before["cells"]
    assert cell_total(page) == after["shown"]
    # The overview's tracks: on a canvas of their own, in a pane under the counts.
    panes = page.evaluate(
        """() => {
            const tracks = document.querySelector('.leaflet-truceThinTracks-pane');
            const overlay = document.querySelector('.leaflet-overlay-pane');
            return [tracks.querySelectorAll('canvas').length,
                    Number(getComputedStyle(tracks).zIndex),
                    Number(getComputedStyle(overlay).zIndex)];
        }"""
    )
    assert panes[0] == 1 and panes[1] < panes[2]
    assert after["tracks"] > 0
    # The basemap (zone outlines, reference lines) is still drawn after the zoom.
    assert count(page, ".leaflet-overlay-pane svg path") > 0
    assert watched.errors == []


def test_a_view_seen_before_is_drawn_from_the_answers_kept(
    watched: Watched, season_server: LiveServer
) -> None:
    page = open_map(watched, f"{season_server.url}/map")
    move(page, 40.0, 46.7, 9)
    first = page.evaluate("window.truce.counts()")
    move(page, 40.0, 46.7, 11)
    seen = len(watched.requests)
    move(page, 40.0, 46.7, 9)
    # Back at the first view: no request, the same counts, cells and tracks drawn again.
    assert len(watched.requests) == seen
    back = page.evaluate("window.truce.counts()")
    assert {k: back[k] for k in ("reports", "shown", "cells", "tracks")} == {
        k: first[k] for k in ("reports", "shown", "cells", "tracks")
    }
    assert cell_total(page) == back["shown"]
    assert watched.errors == []
