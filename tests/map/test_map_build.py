"""The map built without a browser: layers, styles, popups, the slider's data, offline assets."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import folium
import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app import assets
from app.domain import Party, Report, ReportKind, Zone, ZoneKind
from app.errors import InvalidParameter, UnknownZone
from app.mapview import (
    REPORT_SHAPES,
    VIOLATION,
    VIOLATION_COLOR,
    WARNING,
    ZONE_STYLES,
    MapData,
    MapQuery,
    build_map,
    map_html,
    marker_svg,
    place_label,
    prepare,
    write_map_html,
)
from app.mapview.embed import _ids
from app.scenario import Scenario
from tests.factories import square, varied_reports
from tests.map.support import map_app
from tests.oracle import oracle_depth, oracle_verdict

NOW = datetime(2024, 1, 1, tzinfo=UTC)
MAP_JS = (assets.STATIC_DIR / "truce" / "map.js").read_text(encoding="utf-8")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def layer_names(m: folium.Map) -> list[str]:
    return [
        child.layer_name
        for child in m._children.values()
        if getattr(child, "layer_name", None) and getattr(child, "control", False)
    ]


def page_payload(page: str) -> dict[str, Any]:
    """The JSON that the page hands to TruceMap.init."""
    match = re.search(r"\}, (\{\"start\".*?\}), (\{\"title\".*?\})\);", page, re.DOTALL)
    assert match, "TruceMap.init(...) not found in the page"
    data: dict[str, Any] = orjson.loads(match.group(1))
    return data


@pytest.fixture(scope="module")
def model(scenario_data: MapData) -> Any:
    return prepare(scenario_data, now=NOW)


@pytest.fixture(scope="module")
def page(model: Any) -> str:
    return map_html(model)


# --- layers and controls ----------------------------------------------------------------------


def test_the_map_has_every_layer_in_the_layer_control(model: Any) -> None:
    names = layer_names(build_map(model))
    for expected in [
        "Outlines (geodata)",
        "Zones: peacekeeping",
        "Zones: corridor",
        "Line of contact",
        "Observation posts",
        "Places (both names)",
        "Reports",
        "Violations",
        "Warnings (approaching)",
        "Uncertainty (possible)",
        "Tracks",
    ]:
        assert expected in names


def test_the_page_has_the_controls_the_issue_asks_for(page: str) -> None:
    for control in [
        "L.control.layers",
        "L.control.fullscreen",
        "L.Control.Measure",
        "L.Control.MiniMap",
        "L.Control.MousePosition",
        "L.markerClusterGroup",
        "truce-legend",
        "TruceMap.init",
    ]:
        assert control in page, control


def test_the_default_basemap_is_offline_outlines_with_no_tile_layer(page: str, model: Any) -> None:
    assert "L.tileLayer" not in page
    assert len(model.outlines["features"]) >= 8  # every zone boundary and both lines


def test_a_tile_source_adds_a_tile_layer(model: Any) -> None:
    online = map_html(model, tiles="https://tiles.example.org/{z}/{x}/{y}.png")
    assert "L.tileLayer" in online and "tiles.example.org" in online


# --- zones -------------------------------------------------------------------------------------


def test_every_zone_kind_is_told_apart_by_colour_and_by_dash() -> None:
    assert set(ZONE_STYLES) == set(ZoneKind)
    assert len({s.color for s in ZONE_STYLES.values()}) == len(ZoneKind)
    assert len({s.dash for s in ZONE_STYLES.values()}) >= 5
    assert VIOLATION_COLOR not in {s.color for s in ZONE_STYLES.values()}


def test_each_zone_is_drawn_in_the_style_of_its_kind() -> None:
    zones = [
        Zone(
            id=f"z-{kind.value}",
            name=f"{kind.value} zone",
            kind=kind,
            geometry=square(46 + i * 0.1, 40, size=0.05),
            valid_from=datetime(2020, 1, 1, tzinfo=UTC),
        )
        for i, kind in enumerate(ZoneKind)
    ]
    model = prepare(MapData(zones, []), now=NOW)
    assert set(model.zones) == set(ZoneKind)
    for kind, collection in model.zones.items():
        (feature,) = collection["features"]
        assert feature["properties"]["style"] == ZONE_STYLES[kind].leaflet()
    names = layer_names(build_map(model))
    assert [n for n in names if n.startswith("Zones: ")] == [f"Zones: {k.value}" for k in ZoneKind]


def test_a_zone_popup_has_every_field_an_analyst_asks_about(model: Any) -> None:
    (feature,) = model.zones[ZoneKind.CORRIDOR]["features"]
    popup = feature["properties"]["_popup"]
    for text in [
        "Lachin corridor",
        "corridor",
        "nk-lachin-corridor (version 1)",
        "RU-PK (Russian peacekeeping contingent)",
        "Valid from",
        "2020-11-30 20:00 UTC",
        "2022-08-25 20:00 UTC",
        "Agreement",
        "Source and accuracy",
        "Warning distance",
    ]:
        assert text in popup, text


def test_popups_escape_what_users_typed(scenario_data: MapData) -> None:
    zone = replace(scenario_data.zones[2], name="<script>alert(1)</script>")
    report = replace(scenario_data.reports[0], id="x", notes="<img src=x onerror=alert(1)>")
    model = prepare(MapData([zone], [report], scenario_data.parties), now=NOW)
    page = map_html(model)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert (
        "&lt;script&gt;alert(1)"
        in next(iter(model.zones.values()))["features"][0]["properties"]["_popup"]
    )
    properties = next(iter(model.zones.values()))["features"][0]["properties"]
    assert properties["_label"].startswith("&lt;script&gt;")  # the tooltip is HTML too
    assert page_payload(page)["reports"]["notes"] == ["<img src=x onerror=alert(1)>"]


# --- times -------------------------------------------------------------------------------------


def test_at_opens_the_map_on_the_zones_in_force_then(scenario_data: MapData) -> None:
    handover = prepare(scenario_data, MapQuery(at=at("2020-11-15T00:00:00+04:00")), now=NOW)
    assert sorted(handover.zones_at_opening) == [
        ("nk-handover-aghdam", 1),
        ("nk-handover-kalbajar", 1),
        ("nk-handover-lachin", 1),
        ("nk-pk-zone", 1),
    ]
    incident = prepare(scenario_data, MapQuery(at=at("2022-03-25T12:00:00+04:00")), now=NOW)
    assert sorted(incident.zones_at_opening) == [("nk-lachin-corridor", 1), ("nk-pk-zone", 2)]
    assert incident.opening == int(at("2022-03-25T12:00:00+04:00").timestamp())


def test_since_and_until_choose_the_reports_and_the_sliders_range(scenario_data: MapData) -> None:
    query = MapQuery(since=at("2022-03-26T00:00:00+04:00"), until=at("2022-03-27T00:00:00+04:00"))
    model = prepare(scenario_data, query, now=NOW)
    expected = {
        r.id
        for r in scenario_data.reports
        if query.since <= r.observed_at < query.until  # type: ignore[operator]
    }
    assert set(model.reports["id"]) == expected and len(expected) >= 2
    assert model.start == int(query.since.timestamp())  # type: ignore[union-attr]
    assert model.end == int(query.until.timestamp()) - 1  # type: ignore[union-attr]


def test_the_slider_stops_at_every_report_and_zone_change(model: Any, page: str) -> None:
    times = set(model.reports["t"].tolist())
    assert times <= set(model.steps.tolist())
    assert model.opening == model.end == max(times)
    data = page_payload(page)
    assert data["steps"] == model.steps.tolist()
    assert [w[0] for w in data["windows"]][:2] == [0, 3600]


def test_party_and_zone_filters(scenario_data: MapData) -> None:
    ru = prepare(scenario_data, MapQuery(party="RU-PK"), now=NOW)
    assert ru.reports["party"].unique().tolist() == ["RU-PK"]
    corridor = prepare(scenario_data, MapQuery(zone="nk-lachin-corridor"), now=NOW)
    assert corridor.counts["reports"] == 0
    assert {z for z, _ in corridor.zones_at_opening} == {"nk-lachin-corridor"}
    pk = prepare(scenario_data, MapQuery(zone="nk-pk-zone"), now=NOW)
    assert set(pk.findings["zone_id"]) == {"nk-pk-zone"}
    # The whole track of the unit that entered stays, its outside reports included.
    assert (pk.reports["unit"] == "parukh-group").sum() == 7


# --- reports and findings ----------------------------------------------------------------------


def test_reports_are_coloured_by_party_and_shaped_by_kind(page: str, scenario: Scenario) -> None:
    data = page_payload(page)
    colors = {p["code"]: p["color"] for p in data["parties"]}
    assert colors == {p.code: p.color for p in scenario.parties}
    assert data["shapes"] == [REPORT_SHAPES[ReportKind(k)] for k in data["kinds"]]
    assert len(set(data["shapes"])) == len(ReportKind)
    assert set(data["sources"]) == {"Armenian side", "Russian MoD", "Azerbaijani MoD"}
    assert len(set(data["dashes"])) == 3
    assert all("__FILL__" in t and "__DASH__" in t for t in data["templates"])


def test_an_unknown_party_gets_a_colour_of_its_own(scenario_data: MapData) -> None:
    report = replace(scenario_data.reports[0], party="XYZ")
    model = prepare(MapData(scenario_data.zones, [report], scenario_data.parties), now=NOW)
    assert model.parties[-1] == Party("XYZ", "XYZ", model.parties[-1].color)
    assert model.parties[-1].color not in {p.color for p in scenario_data.parties}


def test_violations_stand_out_by_colour_and_size() -> None:
    plain = marker_svg("M0 0Z", "#000", "1", "", 0)
    violation = marker_svg("M0 0Z", "#000", "1", "", VIOLATION)
    warning = marker_svg("M0 0Z", "#000", "1", "", WARNING)
    size = re.compile(r'width="(\d+)"')
    assert VIOLATION_COLOR in violation and VIOLATION_COLOR not in plain
    assert (
        int(size.search(violation)[1])
        > int(size.search(warning)[1])
        > int(  # type: ignore[index]
            size.search(plain)[1]  # type: ignore[index]
        )
    )


def test_findings_carry_verdict_and_depth_for_the_popup(page: str, model: Any) -> None:
    data = page_payload(page)
    reports, findings = data["reports"], data["findings"]
    i = reports["id"].index("2022-03-25-arm-side-1")  # on the Karaglukh heights
    first, last = findings["offsets"][i], findings["offsets"][i + 1]
    assert last - first == 1
    assert data["verdicts"][findings["verdict"][first]] == "inside"
    assert findings["violation"][first] == 1
    assert findings["depth"][first] > 3000
    assert "nk-pk-zone v2" in data["zones"][findings["zone"][first]]
    assert reports["status"][i] == VIOLATION
    for label in ["Verdict", "Depth", "VIOLATION", "Party", "Observed", "Kind", "Source"]:
        assert label in MAP_JS
    for label in ["Confidence", "Uncertainty", "Unit", "Notes", "m inside", "m outside"]:
        assert label in MAP_JS


def test_possible_findings_get_their_uncertainty_circle(page: str, scenario: Scenario) -> None:
    data = page_payload(page)
    reports = data["reports"]
    possible = {reports["id"][k] for k, p in enumerate(reports["possible"]) if p}
    # The reference's verdicts with u = the report's uncertainty + the zone's boundary accuracy.
    expected = set()
    for r in scenario.reports:
        for z in scenario.zones:
            if z.in_force(r.observed_at) and r.party not in z.authorized_parties:
                depth = oracle_depth(r.lon, r.lat, z.geometry)
                u = r.uncertainty_m + z.boundary_uncertainty_m
                if oracle_verdict(depth, u, z.warning_distance_m) == "possible":
                    expected.add(r.id)
    assert possible == expected and "2022-03-27-ru-mod-2" in possible
    i = reports["id"].index("2022-03-27-ru-mod-2")
    assert reports["u"][i] == 5000
    assert "L.circle(latlng" in MAP_JS and "radius: R.u[i]" in MAP_JS


def test_approaching_reports_are_warnings_not_violations(scenario_data: MapData) -> None:
    when = at("2022-03-25T10:00:00+04:00")
    (zone,) = [z for z in scenario_data.zones if z.id == "nk-pk-zone" and z.in_force(when)]
    # The scenario's zone may be 2 km off, more than its 1 km warning distance: nothing is ever
    # `approaching` it, only `possible`. With an exact line, 500 m out from a vertex of the
    # zone, away from its centre (within the 1 km warning).
    vertex = np.array(zone.geometry.exterior.coords[0])
    centre = np.array(zone.geometry.centroid.coords[0])
    away = (vertex - centre) / np.linalg.norm(vertex - centre)
    lon, lat = vertex + away * 500 / 111_000
    near = Report(
        id="near",
        party="AZE",
        observed_at=when,
        lon=float(lon),
        lat=float(lat),
        kind=ReportKind.VEHICLE,
    )
    exact = [replace(z, boundary_uncertainty_m=0.0) for z in scenario_data.zones]
    model = prepare(MapData(exact, [near]), now=NOW)
    assert model.findings["verdict"].tolist() == ["approaching"]
    assert model.counts == model.counts | {"warnings": 1, "violations": 0}


def test_tracks_carry_each_units_path_and_its_events(page: str) -> None:
    data = page_payload(page)
    (track,) = data["tracks"]
    assert data["units"][track["unit"]] == "parukh-group"
    times = [data["reports"]["t"][r] for r in track["rows"]]
    assert times == sorted(times) and len(times) == 7
    kinds = ["exited" if k else "entered" for k in data["events"]["kind"]]
    # With the zone's line +-2 km off near Parukh, the 27 March report 1.9 km out is `possible`,
    # which keeps the unit in (tests/test_scenario.py works it out from the reference).
    assert kinds == ["entered"]
    (summary,) = track["summary"]
    assert summary["withdrawn"] is False and summary["distance"] > 0


def test_places_are_labelled_with_both_names_in_alphabetical_order() -> None:
    assert place_label({"name_hy": "Stepanakert", "name_az": "Khankendi"}) == (
        "Khankendi / Stepanakert"
    )
    assert place_label({"name_hy": "Parukh", "name_az": "Farrukh"}) == "Farrukh / Parukh"
    assert place_label({"name_hy": "Hadrut", "name_az": "Hadrut"}) == "Hadrut"


def test_the_legend_names_kinds_parties_and_findings(page: str) -> None:
    for text in ["Peacekeeping zone", "Corridor", "AZE: Azerbaijan Armed Forces", "drone"]:
        assert text in page
    assert "Violation: inside or possible" in page and "Approaching (warning)" in page


# --- offline -----------------------------------------------------------------------------------


def test_the_served_page_links_only_local_assets(page: str) -> None:
    assert assets.external_references(page) == []
    links = re.findall(r'<script src="([^"]+)"|<link rel="stylesheet" href="([^"]+)"', page)
    urls = [a or b for a, b in links]
    assert urls and all(u.startswith("/static/") for u in urls)
    assert "/static/vendor/leaflet/dist/leaflet.js" in urls
    for name in ["jquery", "bootstrap", "font-awesome", "fontawesome", "cdn", "unpkg"]:
        assert not any(name in u for u in urls), name


@pytest.mark.map_assets
def test_every_linked_asset_is_installed() -> None:
    for asset in assets.all_assets():
        assert asset.file.is_file(), asset.path


@pytest.mark.map_assets
def test_a_standalone_file_carries_every_asset_inline(
    tmp_path: Any, scenario_data: MapData
) -> None:
    path = write_map_html(tmp_path / "map.html", scenario_data, now=NOW)
    page = path.read_text(encoding="utf-8")
    assert "<script src=" not in page and '<link rel="stylesheet"' not in page
    assert assets.external_references(page) == []
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "data:image/png;base64," in page  # leaflet's layer-control icon, from its CSS
    assert "sourceMappingURL" not in page


def test_an_element_with_no_local_copy_of_its_script_is_refused(model: Any) -> None:
    m = build_map(model)
    folium.plugins.Draw().add_to(m)
    with pytest.raises(assets.UnknownAsset, match="leaflet.draw"):
        assets.localize(m)


# --- scale -------------------------------------------------------------------------------------


def test_100000_reports_make_one_page(scenario_data: MapData) -> None:
    reports = varied_reports(100_000, [p.code for p in scenario_data.parties])
    data = MapData(scenario_data.zones, reports, scenario_data.parties, scenario_data.layers)
    page = map_html(prepare(data, now=NOW))
    assert len(page) < 15_000_000
    counts = page_payload(page)["counts"]
    assert counts["reports"] == 100_000 and counts["violations"] > 3000  # so they cluster too


# --- the route ---------------------------------------------------------------------------------


@pytest.mark.map_assets
def test_get_map_serves_the_page_with_a_policy_that_keeps_it_offline(scenario_store: Any) -> None:
    with TestClient(map_app(scenario_store)) as client:
        response = client.get("/map", params={"at": "2022-03-25T12:00:00+04:00"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:;" in policy
        assert "TruceMap.init" in response.text
        assert page_payload(response.text)["counts"]["reports"] == 13
        leaflet = client.get("/static/vendor/leaflet/dist/leaflet.js")
        assert leaflet.status_code == 200 and "Leaflet" in leaflet.text[:500]
        assert client.get("/static/truce/map.js").status_code == 200


@pytest.mark.map_assets
def test_get_map_filters_and_refuses_bad_parameters(
    scenario_store: Any, scenario: Scenario
) -> None:
    since = at("2022-03-26T00:00:00+04:00")
    with TestClient(map_app(scenario_store)) as client:
        page = client.get("/map", params={"party": "RU-PK", "zone": "nk-pk-zone"}).text
        assert page_payload(page)["counts"]["reports"] == 1
        # An unencoded "+" arrives as a space; it is read as the offset it was meant to be.
        spaced = client.get("/map?since=2022-03-26T00:00:00+04:00").text
        expected = sum(r.observed_at >= since for r in scenario.reports)
        assert page_payload(spaced)["counts"]["reports"] == expected
        with pytest.raises(UnknownZone):
            client.get("/map", params={"zone": "no-such-zone"})
        with pytest.raises(InvalidParameter, match="UTC offset|RFC 3339"):
            client.get("/map", params={"at": "2022-03-25T12:00:00"})
        with pytest.raises(InvalidParameter):
            client.get("/map", params={"since": "2022-03-27T00:00Z", "until": "2022-03-26T00:00Z"})


def test_popup_depths_are_rounded_to_fit_the_verdicts_uncertainty(
    page: str, scenario: Scenario
) -> None:
    data = page_payload(page)
    reports, found = data["reports"], data["findings"]
    by_id = {r.id: r for r in scenario.reports}
    (zone,) = [z for z in scenario.zones if z.id == "nk-pk-zone" and z.version == 2]
    offsets = found["offsets"]
    checked = 0
    for i, report_id in enumerate(reports["id"]):
        report = by_id[report_id]
        for j in range(offsets[i], offsets[i + 1]):
            u = found["u"][j]
            assert u == report.uncertainty_m + zone.boundary_uncertainty_m
            step = {True: 1000.0}.get(u >= 1000, 100.0 if u >= 100 else 10.0 if u >= 10 else 1.0)
            reference = oracle_depth(report.lon, report.lat, zone.geometry)
            assert found["depth"][j] % step == 0
            assert abs(found["depth"][j] - reference) <= step / 2 + 1
            checked += 1
    assert checked == len(reports["id"])
    assert "(± " in MAP_JS and "depthText(F.depth[j], F.u[j])" in MAP_JS


def test_the_header_and_legend_count_inside_apart_from_possible(
    page: str, model: Any, scenario: Scenario
) -> None:
    from tests.scenario_facts import scenario_facts

    facts = scenario_facts(scenario)
    inside, possible = len(facts.inside), len(facts.violations - facts.inside)
    assert model.counts["violations_inside"] == inside
    assert model.counts["violations_possible"] == possible
    assert model.counts["violations"] == inside + possible
    from app.mapview.legend import legend_html

    legend = legend_html(model)
    assert f"{inside:,} inside</span> (certain)" in legend
    assert f"{possible:,} only possible</span>" in legend
    certain = page_payload(page)["reports"]["certain"]
    assert {r for r, c in zip(page_payload(page)["reports"]["id"], certain, strict=True) if c} == (
        facts.inside
    )
    assert "violationsInside" in MAP_JS and 'violations: " + c.violationsInside' in MAP_JS


def test_the_standalone_files_ids_are_a_prefix_and_numbers_when_they_allow_it() -> None:
    compact = _ids(pd.Series(["s9", "s10", "s0", "s123456789"]))
    numbers = np.frombuffer(base64.b64decode(compact["number"]["b64"]), "<i4")
    assert compact["number"]["type"] == "Int32Array"
    assert [compact["prefix"] + str(k) for k in numbers] == ["s9", "s10", "s0", "s123456789"]
    # A leading zero, a sign, a number past int32 or no number: kept as text.
    for ids in (["r01", "r2"], ["a-1", "a2"], ["x9999999999"], ["alpha", "beta"], [""]):
        assert _ids(pd.Series(ids)) == {"text": ids}
