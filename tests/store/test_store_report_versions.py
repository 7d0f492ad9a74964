"""Report versions in both stores: corrections, retractions, history, the feed; old SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain import Report
from app.store import Conflict, SQLiteStore, Store, UnknownReport
from app.store.sqlite import MIGRATIONS
from tests.factories import make_report
from tests.store.conftest import RAW_ERRORS

T0 = datetime(2022, 3, 24, 6, tzinfo=UTC)


def report(report_id: str, at: datetime = T0, **kw: Any) -> Report:
    return make_report(report_id, observed_at=at, **kw)


def _listed(store: Store, **kw: Any) -> dict[str, Report]:
    page, cursor = store.list_reports(limit=10_000, **kw)
    assert cursor is None
    return {r.id: r for r in page}


def test_a_correction_is_the_next_version_and_every_read_uses_it(store: Store) -> None:
    store.add_reports([report("a", unit="bn-1"), report("b", unit="bn-1")], "op")
    moved = report("a", lon=45.0, party="ARM", unit="bn-1", notes="party misread")
    version, changed = store.correct_report(moved, "op-2")
    assert changed and version.version == 2 and version.report == moved
    assert _listed(store)["a"] == moved
    assert _listed(store, party="AZE").keys() == {"b"}
    assert [r.id for r in store.get_reports_for_track("ARM", "bn-1")] == ["a"]
    assert [r.id for r in store.get_reports_for_track("AZE", "bn-1")] == ["b"]
    assert store.get_report("a").report == moved
    history = store.report_history("a")
    assert [(v.version, v.report.party, v.retracted) for v in history] == [
        (1, "AZE", False),
        (2, "ARM", False),
    ]
    assert history[0].filed_at <= history[1].filed_at
    assert store.count_reports() == 2
    # The same content again changes nothing and leaves no audit entry.
    entries = len(store.audit_log())
    again, changed = store.correct_report(moved, "op-2")
    assert not changed and again.version == 2
    assert len(store.audit_log()) == entries
    last = store.audit_log()[-1]
    assert (last.actor, last.action, last.target, last.detail) == (
        "op-2",
        "report.version",
        "a",
        "version 2",
    )


def test_a_retraction_hides_the_report_but_keeps_its_record(store: Store) -> None:
    store.add_reports([report("a", unit="bn-1"), report("b")], "op")
    done = store.retract_report("a", "double count of b", "op-3")
    assert done.retracted and done.version == 2 and done.reason == "double count of b"
    assert _listed(store).keys() == {"b"}
    assert store.get_reports_for_track("AZE", "bn-1") == []
    assert store.get_report("a").retracted
    assert store.report_history("a")[-1].report == report("a", unit="bn-1")
    last = store.audit_log()[-1]
    assert (last.action, last.target) == ("report.retract", "a")
    assert "double count of b" in (last.detail or "")
    with pytest.raises(Conflict, match="already retracted"):
        store.retract_report("a", "again", "op")
    with pytest.raises(Conflict, match="retracted"):
        store.correct_report(report("a", party="ARM"), "op")
    with pytest.raises(Conflict, match="retracted"):
        store.add_reports([report("a", party="ARM")], "op")
    # The content as filed is still a duplicate: a retry after a lost answer revives nothing.
    assert store.add_reports([report("a", unit="bn-1")], "op") == ([], ["a"])
    assert _listed(store).keys() == {"b"}


def test_latest_reports_reads_many_at_once_in_the_order_asked(store: Store) -> None:
    store.add_reports([report(i) for i in ("a", "b", "c", "d")], "op")
    store.correct_report(report("b", lon=45.0), "op")
    store.correct_report(report("b", lon=45.5), "op")
    store.retract_report("c", "a duplicate", "op")
    got = store.latest_reports(["d", "b", "nowhere", "c", "a", "b", "e\x00"])
    assert [v.report.id for v in got] == ["d", "b", "c", "a"]
    assert [v.version for v in got] == [1, 3, 2, 1]
    assert [v.retracted for v in got] == [False, False, True, False]
    assert got[1].report.lon == 45.5 and got[1] == store.get_report("b")
    assert got[2] == store.get_report("c")
    assert store.latest_reports([]) == []
    many = [report(f"m{i}") for i in range(1200)]  # beyond SQLite's parameter limit
    store.add_reports(many, "op")
    ids = [r.id for r in reversed(many)]
    assert [v.report.id for v in store.latest_reports(ids)] == ids


def test_unknown_reports_are_named(store: Store) -> None:
    for call in (
        lambda: store.get_report("nope"),
        lambda: store.report_history("nope"),
        lambda: store.correct_report(report("nope"), "op"),
        lambda: store.retract_report("nope", "why", "op"),
    ):
        with pytest.raises(UnknownReport, match="nope"):
            call()


def test_update_files_changed_reports_as_versions_and_any_version_is_a_duplicate(
    store: Store,
) -> None:
    store.add_reports([report("a"), report("b")], "op")
    stored, corrected, duplicates = store.update_reports(
        [report("a", party="ARM"), report("b"), report("c")], "import"
    )
    assert [r.id for r in stored] == ["c"]
    assert [(v.report.id, v.version) for v in corrected] == [("a", 2)]
    assert duplicates == ["b"]
    assert _listed(store)["a"].party == "ARM"
    assert store.audit_log()[-2].detail == "stored 1, duplicates 1, corrected 1"
    # Both the first and the latest content are the report's: neither is a change.
    assert store.add_reports([report("a")], "op") == ([], ["a"])
    assert store.add_reports([report("a", party="ARM")], "op") == ([], ["a"])
    assert store.get_report("a").version == 2


def test_the_feed_lists_versions_in_commit_order(store: Store) -> None:
    store.add_reports([report("a"), report("b")], "op")
    first, position = store.reports_after(0, 10)
    assert [(v.report.id, v.version) for v in first] == [("a", 1), ("b", 1)]
    store.correct_report(report("b", party="ARM"), "op")
    store.add_reports([report("c")], "op")
    store.retract_report("a", "mistake", "op")
    later, last = store.reports_after(position, 10)
    assert [(v.report.id, v.version, v.retracted) for v in later] == [
        ("b", 2, False),
        ("c", 1, False),
        ("a", 2, True),
    ]
    assert store.reports_after(last, 10) == ([], last)
    one, after_one = store.reports_after(position, 1)
    rest, _ = store.reports_after(after_one, 10)
    assert [v.report.id for v in one + rest] == ["b", "c", "a"]


def test_pages_give_each_latest_version_once_when_a_correction_moves_it_in_time(
    store: Store,
) -> None:
    store.add_reports([report(f"r{i:02d}", at=T0 + timedelta(hours=i)) for i in range(30)], "op")
    store.correct_report(report("r03", at=T0 + timedelta(hours=40)), "op")
    store.correct_report(report("r20", at=T0 - timedelta(hours=1)), "op")
    store.retract_report("r10", "duplicate", "op")
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.list_reports(limit=7, after=cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    expected = sorted({f"r{i:02d}" for i in range(30)} - {"r10"})
    assert sorted(seen) == expected and len(seen) == len(expected)
    assert seen[0] == "r20" and seen[-1] == "r03"


def test_a_database_of_the_first_schema_is_upgraded_and_its_reports_corrected(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    try:
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[0]:
            raw.execute(statement)
        raw.execute("INSERT INTO schema_version (version) VALUES (1)")
        raw.execute(
            "INSERT INTO audit (at, actor, action, target, detail) "
            "VALUES (0, 'old', 'reports.add', 'reports', 'stored 2, duplicates 0')"
        )
        us = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        for report_id in ("old-1", "old-2"):
            raw.execute(
                "INSERT INTO reports (id, party, observed_at, lon, lat, uncertainty_m, kind, "
                "audit_id) VALUES (?, 'AZE', ?, 46.7, 39.8, 0, 'other', 1)",
                (report_id, us),
            )
        raw.commit()
    finally:
        raw.close()
    with SQLiteStore(path) as store:
        assert _listed(store).keys() == {"old-1", "old-2"}
        version, changed = store.correct_report(report("old-1", party="ARM"), "op")
        assert changed and version.version == 2
        store.add_reports([report("new")], "op")
        assert {r.id: r.party for r in _listed(store).values()} == {
            "old-1": "ARM",
            "old-2": "AZE",
            "new": "AZE",
        }
        feed, _ = store.reports_after(0, 10)
        assert [(v.report.id, v.version) for v in feed] == [
            ("old-1", 1),
            ("old-2", 1),
            ("old-1", 2),
            ("new", 1),
        ]


def test_versions_are_never_overwritten(store: Store, raw_execute: Callable[[str], None]) -> None:
    store.add_reports([report("a")], "op")
    store.correct_report(replace(report("a"), party="ARM"), "op")
    for statement in ("UPDATE report_versions SET party = 'X'", "DELETE FROM report_versions"):
        with pytest.raises(RAW_ERRORS, match="never"):
            raw_execute(statement)
    assert [v.report.party for v in store.report_history("a")] == ["AZE", "ARM"]
