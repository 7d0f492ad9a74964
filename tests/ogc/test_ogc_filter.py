"""CQL2 text into predicates (app.cql), and the two backends that apply them: the SQLite store's
SQL (app.store.sqlite_filter) and the in-memory evaluator (app.predicate) must keep the same
reports for every filter, null semantics included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely

from app.cql import MAX_FILTER_CHARS, FilterError, Queryable, parse_filter
from app.domain import Report
from app.predicate import And, Compare, Or, PropertyType, evaluate
from app.store import SQLiteStore
from tests.factories import varied_reports

Q = {
    "party": Queryable(PropertyType.STRING, "party"),
    "kind": Queryable(
        PropertyType.STRING,
        "kind",
        ("troops", "vehicle", "strike", "drone", "artillery", "fortification", "other"),
    ),
    "unit": Queryable(PropertyType.STRING, "unit"),
    "source": Queryable(PropertyType.STRING, "source"),
    "uncertainty_m": Queryable(PropertyType.NUMBER, "metres"),
    "observed_at": Queryable(PropertyType.DATETIME, "time"),
    "violation": Queryable(PropertyType.BOOLEAN, "flag"),
}


def test_and_binds_tighter_than_or() -> None:
    # The CQL2 grammar: a OR b AND c is a OR (b AND c) (pygeofilter 0.4 reads it the other way).
    got = parse_filter("party = 'A' OR party = 'B' AND kind = 'troops'", Q)
    assert got == Or(
        (
            Compare("party", "=", "A"),
            And((Compare("party", "=", "B"), Compare("kind", "=", "troops"))),
        )
    )


def test_a_doubled_quote_is_one_quote_in_the_value() -> None:
    assert parse_filter("party = 'x'' OR 1=1 --'", Q) == Compare("party", "=", "x' OR 1=1 --")


def test_literal_on_the_left_is_turned_around() -> None:
    assert parse_filter("10 < uncertainty_m", Q) == Compare("uncertainty_m", ">", 10.0)


def test_times_are_read_with_their_offset() -> None:
    got = parse_filter("observed_at >= TIMESTAMP('2022-03-24T04:00:00+04:00')", Q)
    assert isinstance(got, Compare)
    assert got.value == datetime(2022, 3, 24, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("partyy = 'AZE'", "partyy"),
        ("party = 5", "party is a string"),
        ("uncertainty_m = 'far'", "uncertainty_m is a number"),
        ("kind = 'tank'", "'tank'"),
        ("violation > TRUE", "violation is a boolean"),
        ("T_AFTER(observed_at, TIMESTAMP('2022-01-01T00:00:00Z'))", "T_AFTER"),
        ("party = ", "character 9"),
        ("observed_at > TIMESTAMP('2022-13-45T00:00:00Z')", "2022-13-45"),
        ("observed_at > 'yesterday'", "observed_at is a time"),
        ("party = unit", "comparing two properties"),
        ("uncertainty_m > 1e400", "finite"),
        ("party = NULL", "IS NULL"),
        ("S_INTERSECTS(geometry, POLYGON((500 0, 501 0, 501 1, 500 0)))", "lon/lat"),
        ("S_INTERSECTS(party, BBOX(0,0,1,1))", "S_INTERSECTS"),
        ("CASEI(party) = 'x'", "CASEI"),
        ("uncertainty_m + 1 > 2", "+"),
    ],
)
def test_refusals_name_the_bad_part(text: str, named: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text, Q)
    assert caught.value.field == "filter"
    assert named in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000 + "party = 'x'" + ")" * 5000,
        "NOT " * 3000 + "party = 'x'",
        "uncertainty_m > " + "-" * 6000 + "1",
        "party = '" + "a" * (MAX_FILTER_CHARS + 1) + "'",
        "party = 'a\x00'",
    ],
    ids=["parentheses", "nots", "minus", "huge", "control"],
)
def test_hostile_filters_are_refused_before_the_parser(text: str) -> None:
    # cql2-rs recurses: a few thousand nested parentheses would overflow its stack and end the
    # process. They must be refused as a FilterError first.
    with pytest.raises(FilterError):
        parse_filter(text, Q)


def test_a_long_flat_filter_is_taken() -> None:
    text = " OR ".join(f"party = 'p{i}'" for i in range(400))
    got = parse_filter(text, Q)
    assert isinstance(got, Or) and len(got.parts) == 400


# -- the backends agree -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[SQLiteStore, list[Report]]:
    store = SQLiteStore(Path(tmp_path_factory.mktemp("filter")) / "t.sqlite")
    reports = varied_reports(2000, ["AZE", "ARM", "RU-PK"], seed=3)
    store.add_reports(reports, "test")
    return store, reports


FILTERS = [
    "party = 'AZE'",
    "party <> 'AZE' AND kind IN ('troops', 'drone')",
    "NOT (unit = 'unit-0')",
    "unit IS NULL OR source = 'press'",
    "NOT (unit IS NOT NULL AND uncertainty_m >= 1000)",
    "uncertainty_m BETWEEN 400 AND 1200 AND observed_at < TIMESTAMP('2022-03-15T00:00:00Z')",
    "party LIKE 'A%' AND NOT party LIKE '_RM'",
    "source LIKE 'd_o%'",
    "S_INTERSECTS(geometry, BBOX(46.5, 39.8, 46.9, 40.1))",
    "S_INTERSECTS(geometry, POLYGON((46.3 39.6, 47.1 39.7, 46.7 40.4, 46.3 39.6)))",
    "S_INTERSECTS(geometry, BBOX(46.5, 39.8, 46.9, 40.1)) OR party = 'ARM'",
    "observed_at >= DATE('2022-03-20') AND NOT (kind = 'other' OR unit = 'unit-5')",
]


@pytest.mark.parametrize("text", FILTERS)
def test_sqlite_and_memory_keep_the_same_reports(
    filled: tuple[SQLiteStore, list[Report]], text: str
) -> None:
    store, reports = filled
    predicate = parse_filter(text, Q)
    in_sql = store.select_reports(predicate, limit=10_000).reports
    assert store.count_reports_where(predicate) == len(in_sql)
    columns = {
        "party": [r.party for r in reports],
        "kind": [r.kind.value for r in reports],
        "unit": [r.unit for r in reports],
        "source": [r.source for r in reports],
        "uncertainty_m": [r.uncertainty_m for r in reports],
        "observed_at": [r.observed_at for r in reports],
    }
    keep = evaluate(predicate, columns, [shapely.Point(r.lon, r.lat) for r in reports])
    in_memory = {r.id for r, kept in zip(reports, keep, strict=True) if kept}
    assert {r.id for r in in_sql} == in_memory
    assert 0 < len(in_memory) < len(reports)  # the filter decides something


def test_unknown_is_neither_true_nor_false(filled: tuple[SQLiteStore, list[Report]]) -> None:
    store, reports = filled
    without_unit = sum(r.unit is None for r in reports)
    assert without_unit > 0
    either = parse_filter("unit = 'unit-0' OR NOT (unit = 'unit-0')", Q)
    # Reports without a unit are in neither half: SQL's NULL, in memory as in the store.
    assert store.count_reports_where(either) == len(reports) - without_unit


def test_counts_leave_out_retracted_reports_and_follow_corrections(tmp_path: Path) -> None:
    from dataclasses import replace

    store = SQLiteStore(tmp_path / "t.sqlite")
    reports = varied_reports(50, ["AZE", "ARM"], seed=5)
    store.add_reports(reports, "test")
    store.retract_report(reports[0].id, "wrong place", "test")
    moved = replace(reports[1], party="ARM" if reports[1].party == "AZE" else "AZE")
    store.correct_report(moved, "test")
    listed = store.select_reports(None, limit=1000).reports
    assert store.count_reports_where(None) == len(listed) == 49
    assert reports[0].id not in {r.id for r in listed}
    aze = parse_filter("party = 'AZE'", Q)
    kept = store.select_reports(aze, limit=1000).reports
    assert store.count_reports_where(aze) == len(kept)
    assert (moved.party == "AZE") == (moved.id in {r.id for r in kept})
    store.close()


def test_postgis_keeps_what_sqlite_keeps(
    filled: tuple[SQLiteStore, list[Report]], postgis_url: str
) -> None:
    """The PostGIS store's rendering of every filter keeps the same reports, in the same pages,
    with the same counts and extent, as the SQLite store's."""
    from app.store import open_store

    sqlite, reports = filled
    with open_store(postgis_url) as postgis:
        postgis.add_reports(reports, "test")
        assert postgis.reports_extent() == sqlite.reports_extent()
        for text in FILTERS:
            predicate = parse_filter(text, Q)
            want = [r.id for r in sqlite.select_reports(predicate, limit=10_000).reports]
            got = [r.id for r in postgis.select_reports(predicate, limit=10_000).reports]
            assert got == want, text
            assert postgis.count_reports_where(predicate) == len(want), text
        # Keyset pages forwards then backwards give back the same reports.
        aze = parse_filter("party = 'AZE'", Q)
        first = postgis.select_reports(aze, limit=50)
        second = postgis.select_reports(aze, limit=50, after=first.last)
        back = postgis.select_reports(aze, limit=50, before=second.first)
        assert [r.id for r in back.reports] == [r.id for r in first.reports]
        assert not {r.id for r in first.reports} & {r.id for r in second.reports}
