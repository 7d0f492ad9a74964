"""The command line and the HTTP API go through the same `Service`: what one writes or finds,
the other sees the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from app.api.main import create_app
from app.cli import cli
from app.scenario import GEODATA
from app.service import Service
from app.settings import Settings
from tests.api.support import API_KEYS, auth
from tests.factories import zone_feature

ZONES = GEODATA / "zones.geojson"
REPORTS = GEODATA / "reports.geojson"

runner = CliRunner()


def truce(*args: str) -> Result:
    result = runner.invoke(cli, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def url(store_url: str) -> str:
    """An empty database of each store (see tests/cli/conftest.py)."""
    return store_url


@pytest.fixture
def client(url: str) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, database_url=url, api_keys=API_KEYS)
    with TestClient(create_app(settings)) as client:
        yield client


def history(client: TestClient, zone_id: str) -> list[tuple[int, str, str | None]]:
    response = client.get(f"/zones/{zone_id}/history", headers=auth("viewer"))
    assert response.status_code == 200, response.text
    return [
        (f["properties"]["version"], f["properties"]["name"], f["properties"]["valid_to"])
        for f in response.json()["features"]
    ]


def test_zones_imported_by_the_cli_are_the_versions_the_api_serves(
    url: str, client: TestClient, tmp_path: Path
) -> None:
    truce("import", "zones", str(ZONES), "--database-url", url)
    features = json.loads(ZONES.read_text())["features"]
    by_id: dict[str, list[tuple[int, str]]] = {}
    for feature in features:
        props = feature["properties"]
        by_id.setdefault(feature["id"], []).append((props.get("version", 1), props["name"]))
    for zone_id, versions in by_id.items():
        assert [(v, name) for v, name, _ in history(client, zone_id)] == sorted(versions)

    # A new version filed over HTTP is the stored latest that the CLI's rule compares with.
    current = client.get("/zones/nk-1994-line", headers=auth("viewer")).json()
    current["properties"]["name"] = "Line of contact (corrected)"
    response = client.put("/zones/nk-1994-line", json=current, headers=auth("admin"))
    assert response.status_code == 200, response.text
    again = truce("import", "zones", str(ZONES), "--database-url", url)
    assert "0 zone(s) created, 0 new version(s), 8 duplicate(s)" in again.stdout
    assert [v for v, _, _ in history(client, "nk-1994-line")] == [1, 2]

    # The file's next version of that zone is numbered after the HTTP one.
    changed = json.loads(ZONES.read_text())
    [line] = [f for f in changed["features"] if f["id"] == "nk-1994-line"]
    line["properties"].update(name="Line of contact (third)", version=3)
    path = tmp_path / "changed.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [line]}))
    assert "1 new version(s)" in truce("import", "zones", str(path), "--database-url", url).stdout
    names = [name for _, name, _ in history(client, "nk-1994-line")]
    assert names[1:] == ["Line of contact (corrected)", "Line of contact (third)"]


def finding_rows(features: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (*f["geometry"]["coordinates"], *(f["properties"][k] for k in sorted(f["properties"])))
        for f in features
    ]


def test_export_incursions_answers_as_get_incursions(
    url: str, client: TestClient, tmp_path: Path
) -> None:
    truce("import", "zones", str(ZONES), "--database-url", url)
    truce("import", "reports", str(REPORTS), "--database-url", url)
    # A zone added over HTTP, around Parukh, gives incursions by several parties.
    buffer = zone_feature("parukh-buffer", 46.78, 39.99, 0.05, authorized=[])
    response = client.post("/zones", json=buffer, headers=auth("admin"))
    assert response.status_code == 201, response.text
    for options in (
        {},
        {"party": "NK"},
        {"zone": "parukh-buffer", "since": "2022-03-25T00:00:00+04:00"},
        {"until": "2022-03-26T00:00:00+00:00"},
    ):
        out = tmp_path / "incursions.geojson"
        args = [f"--{name}={value}" for name, value in options.items()]
        truce("export", "incursions", "--out", str(out), "--database-url", url, *args)
        exported = json.loads(out.read_text())["features"]
        answer = client.get(
            "/incursions", params={**options, "limit": 10_000}, headers=auth("viewer")
        )
        assert answer.status_code == 200, answer.text
        served = answer.json()["features"]
        assert finding_rows(exported) == finding_rows(served), options
    every = finding_rows(json.loads(out.read_text())["features"])
    assert every  # the last filter keeps some, so the comparison above compared something
    truce("export", "incursions", "--out", str(out), "--database-url", url)
    parties = {f["properties"]["party"] for f in json.loads(out.read_text())["features"]}
    assert parties == {"AZE", "NK", "RU-PK"}


def test_the_zone_and_incursion_commands_call_the_service(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for name in ("import_zones", "incursions"):
        method = getattr(Service, name)

        def spy(
            self: Service, *args: Any, _method: Any = method, _name: str = name, **kw: Any
        ) -> Any:
            calls.append(_name)
            return _method(self, *args, **kw)

        monkeypatch.setattr(Service, name, spy)
    truce("import", "zones", str(ZONES), "--database-url", url)
    truce("export", "incursions", "--out", str(tmp_path / "i.csv"), "--database-url", url)
    assert calls == ["import_zones", "incursions"]
