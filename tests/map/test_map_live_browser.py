"""The served map shows new incidents live: `/map` in headless Chromium listens to `GET /events`,
and a violating report filed through the API meanwhile brings a notice (party, zone, verdict,
depth, time) and a refetch that counts the new report, with no console error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from shapely.geometry import shape

from tests.api.support import Server, auth, running_server
from tests.factories import collection, point_feature, zone_feature
from tests.map.browser import Watched, open_map, settle
from tests.map.test_map_browser import pytestmark  # noqa: F401 (chromium and the assets)
from tests.oracle import depth_tolerance, oracle_depth

WAIT_MS = 15_000
#: A zone away from the scenario's, and a report deep inside it, after the scenario's season.
ZONE = zone_feature("live", 45.0, 41.0, 0.1)
POINT = (45.05, 41.04)
OBSERVED = "2023-06-01T12:00:00Z"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("live")
    env = {
        "TRUCE_PUBLIC_READ": "true",  # an EventSource cannot send the X-API-Key header
        "TRUCE_EVENTS_POLL_S": "0.05",
        "TRUCE_EVENTS_HEARTBEAT_S": "1",
    }
    with running_server(directory / "truce.sqlite", directory / "uvicorn.log", env=env) as server:
        yield server


def test_a_violation_filed_while_the_map_is_open_shows_as_a_notice(
    watched: Watched, live: Server
) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        response = http.post("/zones", json=ZONE, headers=auth("admin"))
        assert response.status_code == 201, response.text
        # The scenario's violations are in the log already: the map must not replay them.
        logged = http.get(
            "/events?types=incident.opened&after=0&follow=false", headers=auth("viewer")
        )
        assert logged.status_code == 200 and "event: incident.opened" in logged.text
        page = open_map(watched, f"{live.url}/map")
        before = page.evaluate("window.truce.counts()")["reports"]
        # The stream starts after the log's last event: the zone's own event is not replayed.
        streams = [u for u in watched.requests if urlsplit(u).path == "/events"]
        assert len(streams) == 1
        query = parse_qs(urlsplit(streams[0]).query)
        assert query["types"] == ["incident.opened,incident.updated,incident.closed"]
        assert int(query["after"][0]) > 0
        page.wait_for_function("() => window.truce.live() === 1", timeout=WAIT_MS)  # OPEN
        assert page.locator(".truce-live-item").count() == 0

        report = point_feature(*POINT, id="live-1", unit="L1", observed_at=OBSERVED)
        response = http.post("/reports", json=collection(report), headers=auth("observer"))
        assert response.status_code in (200, 201), response.text

    notice = page.locator(".truce-live-item")
    notice.first.wait_for(timeout=WAIT_MS)
    assert notice.count() == 1  # this incident only, none of the log's older ones
    text = notice.first.inner_text()
    assert "New incident" in text
    assert "AZE" in text and "unit L1" in text and "Zone live" in text
    assert "inside" in text and "2023-06-01 12:00 UTC" in text
    depth = float(re.search(r"([\d,]+) m inside", text).group(1).replace(",", ""))  # type: ignore[union-attr]
    reference = oracle_depth(*POINT, shape(ZONE["geometry"]))
    assert abs(depth - reference) <= depth_tolerance(reference) + 0.5  # shown to the metre
    box = page.locator(".truce-live")
    assert box.get_attribute("role") == "log" and box.get_attribute("aria-live") == "polite"

    # The map refetched its view and follows the new report (the slider got a stop for it).
    page.wait_for_function(f"() => window.truce.counts().reports === {before + 1}", timeout=WAIT_MS)
    settle(page)
    assert page.evaluate("window.truce.time()") == datetime(2023, 6, 1, 12, tzinfo=UTC).timestamp()

    # Dismissed by its button.
    page.get_by_role("button", name="Dismiss").first.click()
    assert notice.count() == 0

    # A burst of six incidents (six units) leaves the last five notices.
    burst = [
        point_feature(*POINT, id=f"live-b{k}", unit=f"B{k}", observed_at=OBSERVED) for k in range(6)
    ]
    with httpx.Client(base_url=live.url, timeout=10) as http:
        response = http.post("/reports", json=collection(*burst), headers=auth("observer"))
        assert response.status_code in (200, 201), response.text
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.truce-live-what'))"
        ".some((e) => e.textContent.includes('unit B5'))",
        timeout=WAIT_MS,
    )
    units = [t.split(" · ")[0] for t in page.locator(".truce-live-what").all_inner_texts()]
    assert len(units) == 5 and all(u.endswith(("B1", "B2", "B3", "B4", "B5")) for u in units)
    assert watched.errors == []


def test_a_map_of_one_party_and_zone_listens_to_theirs_only(watched: Watched, live: Server) -> None:
    open_map(watched, f"{live.url}/map?party=ARM&zone=nk-pk-zone")
    streams = [u for u in watched.requests if urlsplit(u).path == "/events"]
    assert len(streams) == 1
    query = parse_qs(urlsplit(streams[0]).query)
    assert query["parties"] == ["ARM"] and query["zones"] == ["nk-pk-zone"]
    watched.page.wait_for_function("() => window.truce.live() === 1", timeout=WAIT_MS)
    assert watched.errors == []
