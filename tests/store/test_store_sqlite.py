"""Both stores in one process: zones and their versions, reports, pagination, keys, audit.

`store` is each store in turn (tests/store/conftest.py); `sqlite_store` is for what only the
SQLite file has.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import shapely
from shapely import Polygon, box

from app.domain import Confidence, Party, Report, ReportKind, Zone, ZoneKind
from app.store import (
    AuditEntry,
    BadCursor,
    Busy,
    Conflict,
    SQLiteStore,
    Store,
    UnknownKey,
    UnknownZone,
    UnsupportedDatabase,
    open_store,
)
from app.store.sqlite import MIGRATIONS
from tests.factories import make_report, make_zone
from tests.store.conftest import RAW_ERRORS

# A NOT NULL column refused by the database itself, in each store.
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)

T0 = datetime(2020, 11, 10, tzinfo=UTC)  # the trilateral statement
AGDAM = datetime(2020, 11, 20, tzinfo=UTC)
LACHIN = datetime(2020, 12, 1, tzinfo=UTC)
WITHDRAWAL = datetime(2024, 6, 12, tzinfo=UTC)
BAKU = timezone(timedelta(hours=4))


def zone(zone_id: str = "pk", geometry: Polygon | None = None, **kw: Any) -> Zone:
    """A peacekeeping zone in force from the trilateral statement."""
    kw = {"kind": ZoneKind.PEACEKEEPING, "valid_from": T0, **kw}
    return make_zone(geometry or box(46.5, 39.6, 47.0, 40.0), zone_id, **kw)


def report(report_id: str, at: datetime = T0, **kw: Any) -> Report:
    """A report of AZE at the trilateral statement, inside `zone()`."""
    return make_report(report_id, observed_at=at, **kw)


# -- zones ------------------------------------------------------------------------------------


def test_each_store_satisfies_the_store_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_created_zone_reads_back_as_version_1_with_times_in_utc(store: Store) -> None:
    local_from = datetime(2020, 11, 10, 4, 0, tzinfo=BAKU)
    geometry = Polygon([(46.5, 39.6), (47.0, 39.6), (46.8, 40.0), (46.5, 39.6)])
    created = store.add_zones(
        [zone(geometry=geometry, valid_from=local_from, agreement="10 Nov 2020", source="OSM")],
        "admin-1",
    )
    assert created[0].version == 1

    got = store.get_zone("pk")
    assert got.version == 1
    assert shapely.equals_exact(got.geometry, geometry, tolerance=0)
    assert got.valid_from == local_from and got.valid_from.utcoffset() == timedelta(0)
    assert got.valid_to is None
    assert got.authorized_parties == frozenset({"RU-PK"})
    assert (got.kind, got.agreement, got.source) == (ZoneKind.PEACEKEEPING, "10 Nov 2020", "OSM")
    assert got.warning_distance_m == 1000.0


def test_existing_zone_id_is_a_conflict_and_the_batch_stores_nothing(store: Store) -> None:
    store.add_zones([zone("pk")], "admin")
    token = store.zones_changed_token()
    with pytest.raises(Conflict) as caught:
        store.add_zones([zone("lachin"), zone("pk")], "admin")
    assert caught.value.index == 1
    with pytest.raises(UnknownZone):
        store.get_zone("lachin")
    assert store.zones_changed_token() == token
    assert [e.action for e in store.audit_log()] == ["zone.create"]


def test_zone_id_repeated_in_one_batch_is_a_conflict(store: Store) -> None:
    with pytest.raises(Conflict):
        store.add_zones([zone("pk"), zone("pk")], "admin")
    assert store.list_zones() == []


def test_new_version_numbers_up_and_leaves_the_old_version_as_filed(store: Store) -> None:
    store.add_zones([zone()], "admin")
    smaller = box(46.6, 39.7, 46.9, 39.9)
    v2 = store.new_zone_version(zone(geometry=smaller, valid_from=AGDAM, version=99), "admin")
    assert v2.version == 2

    history = store.zone_history("pk")
    assert [z.version for z in history] == [1, 2]
    assert history[0].valid_from == T0 and history[0].valid_to is None
    assert shapely.equals(history[0].geometry, box(46.5, 39.6, 47.0, 40.0))
    assert shapely.equals(history[1].geometry, smaller)
    assert store.get_zone("pk").version == 2


def test_new_version_of_an_unknown_zone_raises_unknown_zone(store: Store) -> None:
    with pytest.raises(UnknownZone):
        store.new_zone_version(zone("nowhere"), "admin")
    with pytest.raises(UnknownZone):
        store.zone_history("nowhere")
    with pytest.raises(UnknownZone):
        store.retire_zone("nowhere", WITHDRAWAL, "admin")


def test_retiring_adds_a_version_ending_at_the_retirement(store: Store) -> None:
    store.add_zones([zone()], "admin")
    retired = store.retire_zone("pk", WITHDRAWAL, "admin")
    assert (retired.version, retired.valid_from, retired.valid_to) == (2, T0, WITHDRAWAL)
    history = store.zone_history("pk")
    assert [(z.version, z.valid_to) for z in history] == [(1, None), (2, WITHDRAWAL)]
    assert shapely.equals(history[0].geometry, history[1].geometry)
    assert history[1].authorized_parties == history[0].authorized_parties


def test_a_zone_is_retired_once_and_never_before_it_starts(store: Store) -> None:
    store.add_zones([zone()], "admin")
    with pytest.raises(Conflict):
        store.retire_zone("pk", T0 - timedelta(days=1), "admin")
    with pytest.raises(Conflict):
        store.retire_zone("pk", T0, "admin")
    store.retire_zone("pk", WITHDRAWAL, "admin")
    with pytest.raises(Conflict):
        store.retire_zone("pk", WITHDRAWAL + timedelta(days=1), "admin")
    # An earlier end is still a retirement (it shortens, never extends).
    assert store.retire_zone("pk", LACHIN, "admin").valid_to == LACHIN
    assert len(store.zone_history("pk")) == 3


@pytest.fixture
def handed_over(store: Store) -> Store:
    """A zone reshaped at the Agdam handover and retired at the withdrawal, and a corridor."""
    store.add_zones(
        [zone("pk"), zone("lachin", box(46.4, 39.5, 46.6, 39.7), kind=ZoneKind.CORRIDOR)], "admin"
    )
    store.new_zone_version(zone("pk", box(46.6, 39.7, 46.9, 39.9), valid_from=AGDAM), "admin")
    store.retire_zone("pk", WITHDRAWAL, "admin")
    return store


def test_list_zones_at_a_time_gives_the_version_in_force(handed_over: Store) -> None:
    before = handed_over.list_zones(at=T0 - timedelta(seconds=1))
    assert before == []

    first_week = {z.id: z for z in handed_over.list_zones(at=T0 + timedelta(days=5))}
    assert set(first_week) == {"pk", "lachin"}
    assert first_week["pk"].version == 1
    assert first_week["pk"].valid_to == AGDAM  # cut where version 2 begins

    at_handover = {z.id: z.version for z in handed_over.list_zones(at=AGDAM)}
    assert at_handover == {"pk": 3, "lachin": 1}  # v2 is superseded by its retirement copy v3

    after = handed_over.list_zones(at=WITHDRAWAL)
    assert [z.id for z in after] == ["lachin"]


def test_list_zones_without_a_time_gives_latest_or_all_versions(handed_over: Store) -> None:
    latest = handed_over.list_zones()
    assert [(z.id, z.version, z.valid_to) for z in latest] == [
        ("lachin", 1, None),
        ("pk", 3, WITHDRAWAL),
    ]
    every = handed_over.list_zones(all_versions=True)
    assert [(z.id, z.version) for z in every] == [("lachin", 1), ("pk", 1), ("pk", 2), ("pk", 3)]
    # As filed: version 1 keeps its open end.
    assert every[1].valid_to is None


def test_zones_for_index_never_outlive_a_retirement(handed_over: Store) -> None:
    indexed = handed_over.zones_for_index()
    pk = [z for z in indexed if z.id == "pk"]
    # v2 is wholly superseded by v3 (same start, earlier end) and left out.
    assert [(z.version, z.valid_from, z.valid_to) for z in pk] == [
        (1, T0, AGDAM),
        (3, AGDAM, WITHDRAWAL),
    ]
    for day in range(-2, 1400, 3):
        at = T0 + timedelta(days=day)
        in_force = [z for z in pk if z.in_force(at)]
        assert len(in_force) == (1 if T0 <= at < WITHDRAWAL else 0)


def test_a_backdated_version_supersedes_every_earlier_one(store: Store) -> None:
    store.add_zones([zone()], "admin")
    store.new_zone_version(zone(valid_from=AGDAM), "admin")
    corrected = box(46.55, 39.65, 46.95, 39.95)
    store.new_zone_version(zone(geometry=corrected, valid_from=T0), "admin")
    indexed = store.zones_for_index()
    assert [z.version for z in indexed] == [3]
    assert [z.version for z in store.list_zones(at=LACHIN)] == [3]


def test_bbox_keeps_zones_whose_envelope_intersects(store: Store) -> None:
    store.add_zones(
        [
            zone("west", box(10, 10, 11, 11)),
            zone("east", box(20, 10, 21, 11)),
            zone("pacific", box(179, -17, 179.9, -16)),
        ],
        "admin",
    )
    assert [z.id for z in store.list_zones(bbox=(10.5, 10.5, 12, 12))] == ["west"]
    assert [z.id for z in store.list_zones(bbox=(11, 11, 20, 12))] == ["east", "west"]  # touching
    assert store.list_zones(bbox=(12, 12, 19, 19)) == []
    # A box across the antimeridian: from 178 east round to -179.
    assert [z.id for z in store.list_zones(bbox=(178, -20, -179, -10))] == ["pacific"]
    assert [z.id for z in store.list_zones(at=T0, bbox=(19, 9, 22, 12))] == ["east"]


def test_kind_filter(store: Store) -> None:
    store.add_zones([zone("pk"), zone("lachin", kind=ZoneKind.CORRIDOR)], "admin")
    assert [z.id for z in store.list_zones(kind="corridor")] == ["lachin"]
    assert [z.id for z in store.list_zones(kind=ZoneKind.PEACEKEEPING, at=T0)] == ["pk"]
    with pytest.raises(ValueError):
        store.list_zones(kind="nonsense")


def _moved(other: Store, before: int) -> int:
    """`other`'s token once it moved from `before`: at once in SQLite (read from the file); in
    PostGIS as soon as its listener hears the NOTIFY (the server sends it at the commit)."""
    deadline = time.monotonic() + 2.0
    token = other.zones_changed_token()
    while token == before and time.monotonic() < deadline:
        time.sleep(0.001)
        token = other.zones_changed_token()
    return token


def test_zones_changed_token_moves_on_every_zone_write_and_other_stores_see_it(
    store: Store, reopen: Callable[[], Store]
) -> None:
    other = reopen()
    seen = [other.zones_changed_token()]
    store.add_zones([zone("pk"), zone("lachin")], "admin")
    seen.append(_moved(other, seen[-1]))
    store.new_zone_version(zone("pk", valid_from=AGDAM), "admin")
    seen.append(_moved(other, seen[-1]))
    store.retire_zone("lachin", WITHDRAWAL, "admin")
    seen.append(_moved(other, seen[-1]))
    store.add_reports([report("r1")], "observer")  # not a zone write
    time.sleep(0.05)
    seen.append(other.zones_changed_token())
    assert len(set(seen[:4])) == 4
    assert seen[4] == seen[3]
    # The writer's own store knows its write at once.
    before = store.zones_changed_token()
    store.new_zone_version(zone("lachin", valid_from=AGDAM), "admin")
    assert store.zones_changed_token() != before


def test_stored_zones_and_reports_cannot_be_overwritten(
    store: Store, raw_execute: Callable[[str], None]
) -> None:
    store.add_zones([zone()], "admin")
    store.add_reports([report("r1")], "observer")
    for statement in (
        "UPDATE zones SET name = 'x'",
        "DELETE FROM zones",
        "UPDATE reports SET party = 'ARM'",
        "DELETE FROM reports",
        "DELETE FROM audit",
    ):
        with pytest.raises(RAW_ERRORS, match="never"):
            raw_execute(statement)
    assert store.get_zone("pk").name == "zone pk"
    assert store.list_reports()[0][0].party == "AZE"


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.add_zones([zone(valid_from=datetime(2020, 11, 10))], "admin")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.add_reports([report("r1", at=datetime(2022, 3, 24))], "observer")
    assert store.count_reports() == 0


def test_a_zone_that_ends_before_it_starts_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="valid_to"):
        store.add_zones([zone(valid_to=T0)], "admin")
    assert store.list_zones() == []


# -- reports ----------------------------------------------------------------------------------


def test_report_reads_back_with_every_field(store: Store) -> None:
    at = datetime(2022, 3, 24, 9, 30, 15, 123456, tzinfo=BAKU)
    sent = Report(
        id="farukh-1",
        party="AZE",
        observed_at=at,
        lon=46.79,
        lat=39.95,
        uncertainty_m=250.0,
        kind=ReportKind.TROOPS,
        unit="bn-3",
        source="RU MoD",
        confidence=Confidence.MEDIUM,
        notes="near Karaglukh",
        extra={"acled_id": 123, "tags": ["a", "b"]},
    )
    stored, duplicates = store.add_reports([sent], "observer")
    assert (stored, duplicates) == ([sent], [])
    page, cursor = store.list_reports()
    assert cursor is None
    assert page == [sent]
    got = page[0]
    assert got.observed_at.utcoffset() == timedelta(0)
    assert got.observed_at == at
    assert got.extra == {"acled_id": 123, "tags": ["a", "b"]}
    assert got.kind is ReportKind.TROOPS and got.confidence is Confidence.MEDIUM


def test_a_resent_report_is_a_duplicate_only_with_the_same_content(store: Store) -> None:
    store.add_reports([report("r1"), report("r2")], "observer")
    stored, duplicates = store.add_reports([report("r3"), report("r1")], "observer")
    assert ([r.id for r in stored], duplicates) == (["r3"], ["r1"])
    changed = replace(report("r1"), party="ARM")
    with pytest.raises(Conflict, match=r"PUT /reports/r1") as refused:
        store.add_reports([report("r4"), changed], "observer")
    assert (refused.value.field, refused.value.index) == ("id", 1)
    assert store.count_reports() == 3  # all or nothing: r4 was not stored either
    page, _ = store.list_reports()
    assert {r.id: r.party for r in page}["r1"] == "AZE"


def test_ids_repeated_within_a_batch_are_stored_once(store: Store) -> None:
    batch = [report("a"), report("b"), report("a"), report("c"), report("a")]
    stored, duplicates = store.add_reports(batch, "observer")
    assert [r.id for r in stored] == ["a", "b", "c"]
    assert duplicates == ["a", "a"]
    assert store.count_reports() == 3
    with pytest.raises(Conflict, match="twice") as refused:
        store.add_reports([report("d"), report("d", party="ARM")], "observer")
    assert refused.value.index == 1
    assert store.count_reports() == 3


def test_a_batch_that_fails_midway_stores_nothing(store: Store) -> None:
    good = [report(f"r{i:04d}") for i in range(1000)]
    # Sorts last, so the insert fails after the other 1000 rows went in: NOT NULL on party.
    bad = replace(report("zzz"), party=None)  # type: ignore[arg-type]
    with pytest.raises(INTEGRITY_ERRORS):
        store.add_reports([*good, bad], "observer")
    assert store.count_reports() == 0
    assert store.audit_log() == []
    # The connection is usable and the ids were not taken.
    stored, duplicates = store.add_reports(good, "observer")
    assert (len(stored), duplicates) == (1000, [])


def test_empty_batch_stores_nothing_and_writes_no_audit(store: Store) -> None:
    assert store.add_reports([], "observer") == ([], [])
    assert store.audit_log() == []


def _sorted(reports: list[Report]) -> list[str]:
    return [r.id for r in sorted(reports, key=lambda r: (r.observed_at, r.id))]


def test_pagination_covers_every_report_exactly_once(store: Store) -> None:
    # Many reports share a time, so the cursor must break ties by id.
    reports = [
        report(uuid.UUID(int=i * 7919 % 10007).hex, at=T0 + timedelta(minutes=i % 37))
        for i in range(1000)
    ]
    store.add_reports(reports, "observer")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.list_reports(limit=7, after=cursor)
        seen += [r.id for r in page]
        pages += 1
        if cursor is None:
            break
    assert seen == _sorted(reports)
    assert pages == 143  # 1000 / 7 rounded up: no empty trailing page


def test_pagination_with_filters_and_writes_in_between(store: Store) -> None:
    reports = [
        report(f"r{i:03d}", at=T0 + timedelta(hours=i % 50), party="AZE" if i % 3 else "ARM")
        for i in range(300)
    ]
    store.add_reports(reports, "observer")
    seen: list[str] = []
    page, cursor = store.list_reports(party="AZE", limit=50)
    seen += [r.id for r in page]
    # Reports filed while paging: one before the cursor, one after it.
    store.add_reports(
        [report("early", at=T0 - timedelta(days=1)), report("late", at=T0 + timedelta(days=9))],
        "observer",
    )
    while cursor is not None:
        page, cursor = store.list_reports(party="AZE", limit=50, after=cursor)
        seen += [r.id for r in page]
    expected = _sorted([r for r in reports if r.party == "AZE"]) + ["late"]
    assert seen == expected


def test_list_reports_filters(store: Store) -> None:
    store.add_reports(
        [
            report("t0", at=T0),
            report("t1", at=T0 + timedelta(hours=1), unit="bn-1"),
            report("t2", at=T0 + timedelta(hours=2), party="ARM", unit="bn-1"),
            report("far", at=T0 + timedelta(hours=1), lon=10.0, lat=10.0),
            report("fiji", at=T0, lon=179.5, lat=-17.0),
        ],
        "observer",
    )

    def ids(**kw: Any) -> list[str]:
        page, _ = store.list_reports(**kw)
        return [r.id for r in page]

    # since inclusive, until exclusive, like zone validity.
    assert ids(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)) == ["far", "t1"]
    assert ids(party="ARM") == ["t2"]
    assert ids(unit="bn-1") == ["t1", "t2"]
    assert ids(party="AZE", unit="bn-1") == ["t1"]
    assert ids(bbox=(46, 39, 47, 40)) == ["t0", "t1", "t2"]
    assert ids(bbox=(178, -20, -178, -10)) == ["fiji"]
    with pytest.raises(ValueError):
        store.list_reports(bbox=(0, 10, 1, 5))


@pytest.mark.parametrize("cursor", ["garbage!", "", "W10", "WyJhIiwxXQ"])
def test_a_cursor_the_store_did_not_make_is_refused(store: Store, cursor: str) -> None:
    with pytest.raises(BadCursor) as caught:
        store.list_reports(after=cursor)
    assert caught.value.field == "after"


def test_reports_after_gives_each_report_once_in_the_order_stored(store: Store) -> None:
    assert store.reports_after(0, 10) == ([], 0)
    store.add_reports([report("m", at=T0 + timedelta(days=1)), report("a")], "observer")
    first, position = store.reports_after(0, 10)
    assert [v.report.id for v in first] == ["a", "m"]  # one batch goes in id order
    assert store.reports_after(position, 10) == ([], position)
    store.add_reports([report("a"), report("b", at=T0 - timedelta(days=1))], "observer")
    later, last = store.reports_after(position, 10)
    assert [v.report.id for v in later] == ["b"] and last > position  # a duplicate is no report
    assert later[0].report == report("b", at=T0 - timedelta(days=1))
    assert later[0].version == 1 and not later[0].retracted
    one, after_one = store.reports_after(0, 1)
    assert [v.report.id for v in one] == ["a"]
    rest, _ = store.reports_after(after_one, 10)
    assert [v.report.id for v in rest] == ["m", "b"]


def test_track_reports_come_in_time_order(store: Store) -> None:
    store.add_reports(
        [
            report("c", at=T0 + timedelta(hours=2), unit="bn-1"),
            report("a", at=T0, unit="bn-1"),
            report("b", at=T0 + timedelta(hours=1), unit="bn-1"),
            report("other-unit", at=T0, unit="bn-2"),
            report("other-party", at=T0, unit="bn-1", party="ARM"),
        ],
        "observer",
    )
    assert [r.id for r in store.get_reports_for_track("AZE", "bn-1")] == ["a", "b", "c"]
    assert store.get_reports_for_track("AZE", "nobody") == []


def test_threads_sharing_one_store_lose_nothing(store: Store) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for batch in range(10):
                store.add_reports(
                    [report(f"w{worker}-{batch}-{i}") for i in range(50)], f"thread-{worker}"
                )
                store.list_reports(limit=10)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count_reports() == 4 * 10 * 50


def test_a_writer_kept_waiting_too_long_gets_busy_and_nothing_is_stored(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "truce.db", busy_timeout_s=0.2) as store:
        holder = sqlite3.connect(store.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(Busy):
                store.add_reports([report("r1")], "observer")
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert store.count_reports() == 0
        assert store.add_reports([report("r1")], "observer") == ([report("r1")], [])


def test_writers_in_one_process_queue_on_its_lock_and_a_long_wait_is_busy(
    tmp_path: Path,
) -> None:
    # The store's own lock, not SQLite's, is what a writer of this process waits on first: held
    # (with the database itself unlocked), it alone makes a writer wait, and refuse in the end.
    with SQLiteStore(tmp_path / "truce.db", busy_timeout_s=0.3) as store:
        assert store._writer_lock().acquire()
        try:
            with pytest.raises(Busy):
                store.add_reports([report("r1")], "observer")
        finally:
            store._writer_lock().release()
        assert store.count_reports() == 0
    # Writers that find the lock held queue behind it and all get through once it is released.
    # The timeout is generous so that a slow or loaded machine cannot turn waiting into Busy; the
    # barrier makes every thread start its write while the lock is still held.
    with SQLiteStore(tmp_path / "truce.db", busy_timeout_s=120.0) as store:
        started = threading.Barrier(17)
        done: list[int] = []

        def write(i: int) -> None:
            started.wait()
            done.append(len(store.add_reports([report(f"t{i}")], "o")[0]))

        threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
        assert store._writer_lock().acquire()
        try:
            for thread in threads:
                thread.start()
            started.wait()
            assert store.count_reports() == 0  # reads do not wait on the writers' lock
        finally:
            store._writer_lock().release()
        for thread in threads:
            thread.join()
        assert done == [1] * 16 and store.count_reports() == 16


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_a_busy_timeout_must_be_finite_seconds(tmp_path: Path, seconds: float) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        SQLiteStore(tmp_path / "truce.db", busy_timeout_s=seconds)
    with pytest.raises(UnsupportedDatabase, match="busy_timeout"):
        open_store(f"sqlite:///{tmp_path}/truce.db?busy_timeout={seconds}")


def test_1e5_reports_in_one_batch_are_all_stored(store: Store, reopen: Callable[[], Store]) -> None:
    # The big-batch path (a larger page cache while it writes); its speed is bench_http's.
    reports = [
        report(str(uuid.uuid4()), at=T0 + timedelta(seconds=i), unit=f"u{i % 40}")
        for i in range(100_000)
    ]
    stored, _ = store.add_reports(reports, "bulk")
    assert len(stored) == 100_000
    store.close()
    assert reopen().count_reports() == 100_000


# -- seeding ----------------------------------------------------------------------------------


def test_seed_fills_an_empty_store_numbering_versions_in_order(store: Store) -> None:
    token = store.zones_changed_token()
    later = zone("pk", box(46.6, 39.7, 46.9, 39.9), valid_from=AGDAM, version=7)
    first = zone("pk", version=3)
    assert store.seed([later, zone("lachin"), first], [report("r1"), report("r2")], "scenario")
    assert [(z.id, z.version) for z in store.list_zones(all_versions=True)] == [
        ("lachin", 1),
        ("pk", 1),
        ("pk", 2),
    ]
    assert store.zone_history("pk")[1].valid_from == AGDAM
    assert store.count_reports() == 2
    assert store.zones_changed_token() != token
    actions = [(e.actor, e.action, e.target) for e in store.audit_log()]
    assert ("scenario", "zone.version", "pk") in actions
    assert ("scenario", "reports.add", "reports") in actions


@pytest.mark.parametrize("filled_with", ["zone", "report"])
def test_seed_leaves_a_store_that_holds_anything_alone(store: Store, filled_with: str) -> None:
    if filled_with == "zone":
        store.add_zones([zone("other")], "admin")
    else:
        store.add_reports([report("other")], "observer")
    audit = store.audit_log()
    assert not store.seed([zone("pk")], [report("r1")], "scenario")
    assert store.audit_log() == audit
    assert len(store.list_zones()) + store.count_reports() == 1


def test_a_seed_that_fails_midway_leaves_the_store_empty(store: Store) -> None:
    bad = replace(report("zzz"), party=None)  # type: ignore[arg-type]  # NOT NULL on party
    with pytest.raises(INTEGRITY_ERRORS):
        store.seed([zone("pk"), zone("lachin")], [report("r1"), bad], "scenario")
    assert store.list_zones() == [] and store.count_reports() == 0 and store.audit_log() == []
    assert store.seed([zone("pk")], [report("r1")], "scenario")  # and it can be seeded after


def test_of_stores_seeding_one_database_at_once_exactly_one_does(store_url: str) -> None:
    open_store(store_url).close()  # schema in place
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def seed() -> None:
        own = open_store(store_url)  # each its own connections, as separate processes have
        try:
            barrier.wait()
            results.append(own.seed([zone("pk")], [report("r1")], "scenario"))
        finally:
            own.close()

    threads = [threading.Thread(target=seed) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    check = open_store(store_url)
    try:
        assert len(check.list_zones()) == 1 and check.count_reports() == 1
    finally:
        check.close()


# -- audit and keys ---------------------------------------------------------------------------


def test_every_write_leaves_an_audit_entry_with_its_actor(store: Store) -> None:
    before = datetime.now(UTC)
    store.add_zones([zone("pk"), zone("lachin")], "admin-1")
    store.new_zone_version(zone("pk", valid_from=AGDAM), "admin-2")
    store.retire_zone("lachin", WITHDRAWAL, "admin-1")
    store.add_reports([report("r1"), report("r2")], "observer-7")
    store.add_reports([report("r1")], "observer-8")
    key = store.add_key("h" * 64, "viewer", "analyst laptop", "admin-1")
    store.revoke_key(key.id, "admin-2")

    log = store.audit_log()
    assert [(e.actor, e.action, e.target) for e in log] == [
        ("admin-1", "zone.create", "pk"),
        ("admin-1", "zone.create", "lachin"),
        ("admin-2", "zone.version", "pk"),
        ("admin-1", "zone.retire", "lachin"),
        ("observer-7", "reports.add", "reports"),
        ("observer-8", "reports.add", "reports"),
        ("admin-1", "key.create", str(key.id)),
        ("admin-2", "key.revoke", str(key.id)),
    ]
    assert log[4].detail == "stored 2, duplicates 0"
    assert log[5].detail == "stored 0, duplicates 1"
    assert all(before <= e.at <= datetime.now(UTC) for e in log)
    assert [e.id for e in log] == sorted(e.id for e in log)


def test_audit_log_pages_with_after(store: Store) -> None:
    store.add_zones([zone(f"z{i}") for i in range(5)], "admin")
    first = store.audit_log(limit=2)
    rest = store.audit_log(limit=10, after=first[-1].id)
    assert [e.target for e in first + rest] == [f"z{i}" for i in range(5)]
    assert isinstance(first[0], AuditEntry)


def test_keys_are_found_by_hash_until_revoked(store: Store) -> None:
    viewer = store.add_key("a" * 64, "viewer", "map wall", "cli")
    admin = store.add_key("b" * 64, "admin", "ops", "cli")
    assert store.find_key("a" * 64) == viewer
    assert store.find_key("c" * 64) is None
    assert viewer.active and viewer.created_by == "cli"

    revoked = store.revoke_key(viewer.id, "cli")
    assert not revoked.active and revoked.revoked_by == "cli"
    assert store.find_key("a" * 64) is None
    assert store.revoke_key(viewer.id, "someone else") == revoked  # once only
    assert [(k.id, k.active) for k in store.list_keys()] == [(viewer.id, False), (admin.id, True)]


def test_key_errors(store: Store) -> None:
    store.add_key("a" * 64, "viewer", "map wall", "cli")
    with pytest.raises(Conflict):
        store.add_key("a" * 64, "admin", "again", "cli")
    with pytest.raises(ValueError, match="role"):
        store.add_key("b" * 64, "superuser", "x", "cli")
    with pytest.raises(UnknownKey):
        store.revoke_key(999, "cli")


# -- the file ---------------------------------------------------------------------------------


def test_the_database_is_in_wal_mode(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    raw = sqlite3.connect(store.path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "truce.db"
    with SQLiteStore(path) as first:
        first.add_zones([zone()], "admin")
        first.add_reports([report("r1")], "observer")
    with SQLiteStore(path) as second:
        assert second.get_zone("pk").version == 1
        assert second.count_reports() == 1
    raw = sqlite3.connect(path)
    try:
        versions = raw.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(n,) for n in range(1, len(MIGRATIONS) + 1)]
        raw.execute("INSERT INTO schema_version (version) VALUES (99)")
        raw.commit()
    finally:
        raw.close()
    with pytest.raises(Exception, match="newer"):
        SQLiteStore(path)


def test_parties_token_moves_on_every_party_write_and_other_stores_see_it(
    store: Store, reopen: Callable[[], Store]
) -> None:
    other = reopen()
    before = other.parties_token()
    party, created = store.put_party(Party("AZE", "Azerbaijan"), "admin")
    assert created and store.parties_token() != before  # the writer's own store, at once
    deadline = time.monotonic() + 2.0
    while other.parties_token() == before and time.monotonic() < deadline:
        time.sleep(0.001)
    moved = other.parties_token()
    assert moved != before
    assert [p.code for p in other.list_parties()] == ["AZE"]
    _, created = store.put_party(Party("AZE", "Azerbaijan", "#00ff00"), "admin")
    assert not created
    deadline = time.monotonic() + 2.0
    while other.parties_token() == moved and time.monotonic() < deadline:
        time.sleep(0.001)
    assert other.parties_token() != moved
    assert other.list_parties()[0].color == "#00ff00"
