"""The column-wise fast path for report collections agrees with the per-feature parser."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import app.api.parsing as parsing
from app.api.parsing import _fast_collection, parse_reports
from app.batch import ReportBatch, Shape
from app.errors import TruceError
from app.geojson import reports_from_geojson
from tests.factories import collection, point_feature

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


def slow(obj: Any, default: datetime | None = NOW) -> ReportBatch:
    reports = reports_from_geojson(obj, default_observed_at=default)
    return ReportBatch.from_reports(reports, Shape.COLLECTION)


def same(a: ReportBatch, b: ReportBatch) -> None:
    assert a.ids.tolist() == b.ids.tolist()
    for column in ("lon", "lat", "time_ns", "uncertainty_m"):
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column))
    assert a.party.tolist() == b.party.tolist()
    assert a.unit.tolist() == b.unit.tolist()
    assert a.reports() == b.reports()
    assert [r.extra for r in a.reports()] == [r.extra for r in b.reports()]


reports = st.builds(
    lambda lon, lat, fid, party, when, u, kind, unit, conf, extra: {
        "type": "Feature",
        **({} if fid is None else {"id": fid}),
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "party": party,
            **({} if when is None else {"observed_at": when}),
            **({} if u is None else {"uncertainty_m": u}),
            **({} if kind is None else {"kind": kind}),
            "unit": unit,
            **({} if conf is None else {"confidence": conf}),
            **extra,
        },
    },
    st.one_of(st.floats(-180, 180), st.integers(-180, 180)),
    st.floats(-90, 90),
    # Ids of any script, without the control characters that ids may not hold.
    st.one_of(
        st.none(),
        st.text(
            st.characters(exclude_categories=("Cc", "Zl", "Zp", "Cs")), min_size=1, max_size=40
        ).filter(str.strip),
    ),
    st.sampled_from(["AZE", "ARM", "RU-PK", " NK "]),
    st.one_of(
        st.none(),
        st.sampled_from(
            ["2022-03-24T06:00:00+04:00", "2022-03-24T02:00:00Z", " 2021-01-01T00:00:00.5-03:30"]
        ),
    ),
    st.one_of(st.none(), st.floats(0, 1e6), st.integers(0, 5000)),
    st.one_of(st.none(), st.sampled_from(["troops", "Vehicle", "DRONE"])),
    # Free text of any characters but U+0000, which both stores refuse (a 422 of its own).
    st.one_of(
        st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=5)
    ),
    st.one_of(st.none(), st.sampled_from(["low", "HIGH"])),
    st.dictionaries(
        st.sampled_from(["placement", "n", "tags"]),
        st.integers(-(2**63), 2**63 - 1) | st.text(),  # what can be kept (64-bit integers)
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(reports, max_size=12))
def test_the_fast_path_parses_what_the_careful_parser_parses(features: list[Any]) -> None:
    obj = collection(*features)
    fast = _fast_collection(copy.deepcopy(obj)["features"], NOW, parsing.index_ids)
    assert fast is not None  # every generated collection is plainly valid
    same(fast, slow(obj))


MUTATIONS: dict[str, Any] = {
    "missing party": lambda f: f["properties"].pop("party"),
    "blank party": lambda f: f["properties"].update(party=" "),
    "numeric party": lambda f: f["properties"].update(party=7),
    "naive time": lambda f: f["properties"].update(observed_at="2022-03-24T06:00:00"),
    "bad time": lambda f: f["properties"].update(observed_at="yesterday"),
    "ancient time": lambda f: f["properties"].update(observed_at="1000-01-01T00:00:00Z"),
    "list time": lambda f: f["properties"].update(observed_at=["2022"]),
    "negative uncertainty": lambda f: f["properties"].update(uncertainty_m=-1),
    "string uncertainty": lambda f: f["properties"].update(uncertainty_m="5"),
    "huge uncertainty": lambda f: f["properties"].update(uncertainty_m=1e20),
    "bool uncertainty": lambda f: f["properties"].update(uncertainty_m=True),
    "bad kind": lambda f: f["properties"].update(kind="tank"),
    "dict kind": lambda f: f["properties"].update(kind={}),
    "bad confidence": lambda f: f["properties"].update(confidence="certain"),
    "numeric unit": lambda f: f["properties"].update(unit=5),
    "string lon": lambda f: f["geometry"].update(coordinates=["46.8", 40.0]),
    "bool lat": lambda f: f["geometry"].update(coordinates=[46.8, False]),
    "lon out of range": lambda f: f["geometry"].update(coordinates=[180.5, 40.0]),
    "lat out of range": lambda f: f["geometry"].update(coordinates=[46.8, -90.5]),
    "one coordinate": lambda f: f["geometry"].update(coordinates=[46.8]),
    "nested coordinates": lambda f: f["geometry"].update(coordinates=[[46.8, 40.0]]),
    "string coordinates": lambda f: f["geometry"].update(coordinates="46.8,40"),
    "polygon": lambda f: f["geometry"].update(type="Polygon"),
    "no geometry": lambda f: f.pop("geometry"),
    "null properties": lambda f: f.update(properties=None),
    "list properties": lambda f: f.update(properties=[]),
    "not a feature": lambda f: f.update(type="Point"),
    "empty id": lambda f: f.update(id=""),
    "list id": lambda f: f.update(id=[1]),
    "bool id": lambda f: f.update(id=True),
    "float id": lambda f: f.update(id=1.5),
    "control character in id": lambda f: f.update(id="a\r\nb"),
    "long id": lambda f: f.update(id="i" * 257),
    "long party": lambda f: f["properties"].update(party="P" * 65),
    "long unit": lambda f: f["properties"].update(unit="U" * 65),
    "long notes": lambda f: f["properties"].update(notes="N" * 4097),
    "long source": lambda f: f["properties"].update(source="S" * 1025),
    "big extra": lambda f: f["properties"].update(comment="c" * 20_000),
}
# Valid, and read the same whichever path reads them (most go to the careful parser).
UNUSUAL: dict[str, Any] = {
    "numeric id": lambda f: f.update(id=17),
    "id in properties": lambda f: (f.pop("id"), f["properties"].update(id="p-1")),
    "altitude": lambda f: f["geometry"].update(coordinates=[46.8, 40.0, 250.0]),
    "integer coordinates": lambda f: f["geometry"].update(coordinates=[46, 40]),
}


def batch(mutate: Any, where: int = 3) -> dict[str, Any]:
    features = [
        point_feature(46.0 + i / 10, 40.0, id=f"r{i}", unit="u", kind="troops") for i in range(6)
    ]
    mutate(features[where])
    return collection(*features)


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_bad_feature_gets_the_careful_parsers_error(name: str) -> None:
    obj = batch(MUTATIONS[name])
    assert _fast_collection(copy.deepcopy(obj)["features"], None, parsing.index_ids) is None
    with pytest.raises(TruceError) as careful:
        slow(obj, default=None)
    with pytest.raises(TruceError) as answered:
        parse_reports(obj, default_observed_at=None)
    assert answered.value.field == careful.value.field
    assert answered.value.field is not None and answered.value.field.startswith("features/3")
    assert answered.value.index == 3
    assert answered.value.detail == careful.value.detail


@pytest.mark.parametrize("name", UNUSUAL)
def test_unusual_but_valid_features_are_parsed_by_the_careful_parser(name: str) -> None:
    obj = batch(UNUSUAL[name])
    same(parse_reports(copy.deepcopy(obj), default_observed_at=NOW), slow(obj))


def test_a_clean_collection_never_reaches_the_careful_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the careful parser was used")

    monkeypatch.setattr(parsing, "reports_from_geojson", refuse)
    obj = collection(*(point_feature(46 + i / 1e4, 40.0, unit=f"u{i % 7}") for i in range(10_000)))
    result = parse_reports(obj, default_observed_at=None)
    assert len(result) == 10_000
    assert result.ids.tolist()[:2] == ["0", "1"]


def test_missing_times_take_the_default_only_when_one_is_given() -> None:
    obj = collection(point_feature(46.0, 40.0, observed_at=None), point_feature(46.0, 40.0))
    assert parse_reports(obj, default_observed_at=NOW).reports()[0].observed_at == NOW
    with pytest.raises(TruceError) as refused:
        parse_reports(obj, default_observed_at=None)
    assert refused.value.field == "features/0/properties/observed_at"
