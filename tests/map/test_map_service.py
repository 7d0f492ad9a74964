"""`/map` and `truce map` draw from the service: its zone index, rebuilt only when zones change."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.engine import ZoneIndex
from app.errors import InvalidParameter
from app.mapview import MapData, map_data_from_service, prepare
from app.scenario import Scenario
from app.service import Service
from app.settings import Settings
from app.store import Store, open_store
from tests.map.support import load_into, map_app
from tests.map.test_map_build import NOW, page_payload


@pytest.fixture(params=["sqlite", "postgis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, scenario: Scenario) -> Iterator[Store]:
    """The scenario in each store: the zone token that tells the service to rebuild its index
    is each store's own (a counter in SQLite, LISTEN/NOTIFY in PostGIS)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'truce.sqlite'}"
    else:
        url = request.getfixturevalue("postgis_url")
    store = open_store(url)
    load_into(store, scenario)
    yield store
    store.close()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[ZoneIndex]:
    """Every `ZoneIndex` built from now on."""
    built: list[ZoneIndex] = []
    init = ZoneIndex.__init__

    def counting(self: ZoneIndex, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(ZoneIndex, "__init__", counting)
    return built


@pytest.mark.map_assets
def test_two_maps_with_no_zone_change_reuse_the_services_index(
    store: Store, builds: list[ZoneIndex]
) -> None:
    app = map_app(store)
    service: Service = app.state.service
    with TestClient(app) as client:
        first = client.get("/map", params={"at": "2022-03-25T12:00:00+04:00"})
        second = client.get("/map", params={"party": "AZE"})
        assert first.status_code == second.status_code == 200
        assert len(builds) == 1
        assert service.index() is builds[0]
        # A new zone version moves the zone token: the next map judges with a new index.
        zone = store.get_zone("nk-1994-line")
        store.new_zone_version(replace(zone, name="Line of contact (corrected)"), "test")
        third = client.get("/map")
        assert third.status_code == 200
        assert len(builds) == 2 and service.index() is builds[1]
        assert "Line of contact (corrected)" in {z.name for z in builds[1].zones}
    assert page_payload(first.text)["counts"]["reports"] == 13


def test_the_map_data_carries_the_services_index(store: Store, builds: list[ZoneIndex]) -> None:
    service = Service(store)
    data, truncated = map_data_from_service(service)
    assert not truncated and len(data.reports) == 13
    assert data.index is service.index() and tuple(data.zones) == data.index.zones
    assert len(builds) == 1
    with_index = prepare(data, now=NOW)
    assert len(builds) == 1  # prepare judged with the service's index
    without = prepare(MapData(data.zones, data.reports, data.parties, data.layers), now=NOW)
    assert len(builds) == 2  # with no index given, prepare builds one
    assert with_index.findings.equals(without.findings)


@pytest.mark.map_assets
def test_the_map_reads_since_and_until_as_every_route_does(store: Store) -> None:
    with TestClient(map_app(store)) as client:
        with pytest.raises(InvalidParameter) as bad:
            client.get("/map", params={"since": "soon"})
        assert bad.value.field == "since"
        with pytest.raises(InvalidParameter, match="must be after since") as reversed_:
            client.get("/map", params={"since": "2022-03-27T00:00Z", "until": "2022-03-26T00:00Z"})
        assert reversed_.value.field == "until"
    document = create_app(Settings(_env_file=None)).openapi()

    def parameters(path: str) -> dict[str, Any]:
        return {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}

    on_map, on_reports = parameters("/map"), parameters("/reports")
    assert set(on_map) == {"at", "since", "until", "zone", "party"}
    assert on_map["since"] == on_reports["since"] and on_map["until"] == on_reports["until"]
