"""`report_columns` and `reports_token` in both stores: the map of a season reads every report of
a window at once, as columns, and knows cheaply whether anything changed since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from app.domain import Confidence, ReportKind
from app.store import ReportColumns, Store
from tests.factories import make_report

T0 = datetime(2022, 3, 24, 6, tzinfo=UTC)


def _store_reports(store: Store) -> None:
    store.add_reports(
        [
            make_report("b", 46.70, 39.80, observed_at=T0 + timedelta(hours=2), unit="bn-1"),
            make_report(
                "a",
                46.71,
                39.81,
                party="ARM",
                observed_at=T0 + timedelta(hours=1, microseconds=7),
                uncertainty_m=250.0,
                kind=ReportKind.ARTILLERY,
                source="drone",
                confidence=Confidence.HIGH,
            ),
            make_report("c", 46.72, 39.82, observed_at=T0 + timedelta(days=2)),
        ],
        "op",
    )


def test_report_columns_match_the_listed_reports_in_time_order(store: Store) -> None:
    _store_reports(store)
    columns = store.report_columns()
    listed, _ = store.list_reports(limit=100)
    assert len(columns) == 3
    assert columns.id.tolist() == [r.id for r in listed] == ["a", "b", "c"]
    first = listed[0]
    micro = timedelta(microseconds=1)
    assert columns.t_us[0] == (first.observed_at - datetime(1970, 1, 1, tzinfo=UTC)) // micro
    assert columns.lon[0] == first.lon and columns.lat[0] == first.lat
    assert columns.uncertainty_m.tolist() == [r.uncertainty_m for r in listed]
    assert columns.party.tolist() == ["ARM", "AZE", "AZE"]
    assert columns.kind[0] == "artillery" and columns.source[0] == "drone"
    assert columns.confidence[0] == "high" and columns.confidence[1] is None
    assert columns.unit.tolist() == [None, "bn-1", None]
    assert columns.t_us.dtype == np.int64 and columns.lon.dtype == np.float64


def test_report_columns_filter_as_list_reports_does(store: Store) -> None:
    _store_reports(store)
    window = store.report_columns(
        since=T0 + timedelta(hours=1, microseconds=8), until=T0 + timedelta(days=2)
    )
    assert window.id.tolist() == ["b"]  # since inclusive to the microsecond, until exclusive
    assert store.report_columns(party="ARM").id.tolist() == ["a"]
    assert len(store.report_columns(party="XYZ")) == 0


def test_report_columns_read_latest_versions_and_leave_retracted_out(store: Store) -> None:
    _store_reports(store)
    store.correct_report(make_report("b", 45.0, 39.0, observed_at=T0 + timedelta(hours=2)), "op")
    store.retract_report("c", "duplicate", "op")
    columns = store.report_columns()
    assert columns.id.tolist() == ["a", "b"]
    assert columns.lon[1] == 45.0 and columns.unit[1] is None


def test_the_reports_token_changes_with_every_report_write_and_only_then(store: Store) -> None:
    empty = store.reports_token()
    assert store.reports_token() == empty
    _store_reports(store)
    added = store.reports_token()
    assert added != empty
    store.add_zones([], "op")
    assert store.reports_token() == added
    store.correct_report(make_report("b", 45.0, 39.0, observed_at=T0 + timedelta(hours=2)), "op")
    corrected = store.reports_token()
    assert corrected != added
    store.retract_report("a", "mistake", "op")
    assert store.reports_token() not in (empty, added, corrected)


def test_report_columns_share_each_repeated_text(store: Store) -> None:
    _store_reports(store)
    columns = store.report_columns()
    # One string object for every "AZE" (a million rows' copies cost megabytes).
    assert columns.party[1] is columns.party[2]
    assert columns.kind[1] is columns.kind[2]


def test_columns_read_in_chunks_are_those_read_whole() -> None:
    rows = [
        (f"r{k}", "AZE" if k % 2 else "ARM", k, 46.0 + k, 39.0, 0.0, "other", None, "OP", None)
        for k in range(5)
    ]
    whole = ReportColumns.from_rows(rows)
    chunked = ReportColumns.from_chunks([rows[:2], rows[2:4], rows[4:]])
    for name in ("id", "party", "t_us", "lon", "kind", "unit", "source", "confidence"):
        assert getattr(chunked, name).tolist() == getattr(whole, name).tolist(), name
    assert chunked.party[1] is chunked.party[3]  # shared across chunks too
    assert len(ReportColumns.from_chunks([])) == 0
