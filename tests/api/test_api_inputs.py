"""The request shapes in the OpenAPI document describe what the routes accept.

They are documentation (the parsers are the authority), so they must accept every body that the
routes accept in the common forms: the scenario's own files and the document's examples. And the
parsers must accept what the shapes promise for a plain example (schemathesis, in
test_api_schema.py, fuzzes the rest: whatever is sent, the answer is never a 5xx).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from app.api.inputs import (
    ReportCollectionIn,
    ReportFeatureIn,
    ReportObjectIn,
    ZoneCollectionIn,
    ZoneFeatureIn,
)
from app.scenario import GEODATA
from tests.api.support import auth

MODELS = {
    "ReportFeatureIn": ReportFeatureIn,
    "ReportCollectionIn": ReportCollectionIn,
    "ReportObjectIn": ReportObjectIn,
    "ZoneFeatureIn": ZoneFeatureIn,
    "ZoneCollectionIn": ZoneCollectionIn,
}


def test_the_scenario_files_fit_the_documented_shapes() -> None:
    ZoneCollectionIn.model_validate(json.loads((GEODATA / "zones.geojson").read_text()))
    ReportCollectionIn.model_validate(json.loads((GEODATA / "reports.geojson").read_text()))


def _body_schemas(spec: dict[str, Any], path: str, method: str) -> set[str]:
    schema = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    refs = [s["$ref"] for s in schema.get("anyOf", [schema])]
    return {ref.rsplit("/", 1)[1] for ref in refs}


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [
        ("/check", "post", {"ReportFeatureIn", "ReportCollectionIn", "ReportObjectIn"}),
        ("/reports", "post", {"ReportFeatureIn", "ReportCollectionIn"}),
        ("/zones", "post", {"ZoneFeatureIn", "ZoneCollectionIn"}),
        ("/zones/{zone_id}", "put", {"ZoneFeatureIn"}),
    ],
)
def test_each_body_is_documented_and_its_example_fits(
    client: TestClient, path: str, method: str, expected: set[str]
) -> None:
    spec = client.get("/openapi.json").json()
    names = _body_schemas(spec, path, method)
    assert names == expected
    for name in names:
        assert name in spec["components"]["schemas"]
    example = spec["paths"][path][method]["requestBody"]["content"]["application/geo+json"][
        "example"
    ]
    fits = []
    for name in names:
        try:
            MODELS[name].model_validate(example)
            fits.append(name)
        except ValidationError:
            pass
    assert fits, f"the example of {method.upper()} {path} fits none of {sorted(names)}"


def _valid(model: type[BaseModel], value: dict[str, Any]) -> bool:
    try:
        model.model_validate(value)
    except ValidationError:
        return False
    return True


def test_the_shapes_refuse_what_the_parsers_refuse(client: TestClient) -> None:
    swapped = {"lon": 46.8, "lat": 140.0, "party": "AZE"}  # latitude out of range
    assert not _valid(ReportObjectIn, swapped)
    response = client.post("/check", json=swapped, headers=auth("viewer"))
    assert response.status_code == 422
    no_party = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [46.8, 40.0]}}
    assert not _valid(ReportFeatureIn, {**no_party, "properties": {}})
    response = client.post("/check", json={**no_party, "properties": {}}, headers=auth("viewer"))
    assert response.status_code == 422
