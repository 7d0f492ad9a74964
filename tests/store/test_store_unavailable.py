"""A full disk and a read-only database, for real: named errors, reads go on, writes come back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.domain import Report
from app.scenario import GEODATA
from app.service import Service
from app.store import SQLiteStore
from app.store.base import Busy, ReadOnlyStorage, StorageFull, Unavailable
from tests.storage_mounts import can_mount, fill, read_only_view, small_tmpfs

T0 = datetime(2022, 3, 24, 6, tzinfo=UTC)
NOTES = "observed from post 7; " * 50  # ~1 KiB: a full disk is reached in a few batches


def batch(prefix: str, n: int) -> list[Report]:
    return [
        Report(
            id=f"{prefix}-{i}",
            party="AZE",
            observed_at=T0 + timedelta(seconds=i),
            lon=46.8,
            lat=40.0,
            notes=NOTES,
        )
        for i in range(n)
    ]


@pytest.fixture
def full_disk_store(tmp_path: Path) -> Iterator[tuple[SQLiteStore, Path]]:
    with small_tmpfs(tmp_path / "fs") as fs, SQLiteStore(fs / "truce.sqlite") as store:
        yield store, fs


@can_mount
def test_a_full_disk_is_storage_full_and_writes_resume_when_space_returns(
    full_disk_store: tuple[SQLiteStore, Path],
) -> None:
    store, fs = full_disk_store
    acknowledged: set[str] = set()
    stored, _ = store.add_reports(batch("before", 200), "test")
    acknowledged.update(r.id for r in stored)
    store.check_writable()  # ready while there is room

    filler = fill(fs)
    with pytest.raises(StorageFull) as raised:
        # The WAL may still have room for a batch or two; a few more fill it for sure.
        for n in range(50):
            stored, _ = store.add_reports(batch(f"full{n}", 200), "test")
            acknowledged.update(r.id for r in stored)
    assert "disk is full" in raised.value.detail
    assert raised.value.cause == "disk-full" and raised.value.retry_after > 0
    with pytest.raises(StorageFull):
        store.check_writable()
    # Reads go on, and nothing acknowledged is missing.
    assert store.count_reports() == len(acknowledged)

    filler.unlink()
    store.check_writable()
    stored, _ = store.add_reports(batch("after", 50), "test")
    acknowledged.update(r.id for r in stored)
    assert len(stored) == 50
    ids = {r.id for page in _pages(store) for r in page}
    assert ids == acknowledged
    with sqlite3.connect(store.path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _pages(store: SQLiteStore) -> Iterator[list[Report]]:
    cursor: str | None = None
    while True:
        page, cursor = store.list_reports(limit=1000, after=cursor)
        yield page
        if cursor is None:
            return


@can_mount
def test_a_read_only_database_refuses_writes_by_name_and_still_reads(tmp_path: Path) -> None:
    source = tmp_path / "rw"
    source.mkdir()
    # The writer keeps the database open (its -wal and -shm exist), as a server elsewhere would.
    with SQLiteStore(source / "truce.sqlite") as writer:
        Service(writer).load_scenario(GEODATA)
        writer.add_reports(batch("rw", 10), "test")
        with (
            read_only_view(source, tmp_path / "ro") as ro,
            SQLiteStore(ro / "truce.sqlite") as store,
        ):
            assert store.count_reports() == writer.count_reports()
            # A filled store is not seeded again: no write needed to start.
            assert Service(store).load_scenario(GEODATA) is False
            with pytest.raises(ReadOnlyStorage) as raised:
                store.add_reports(batch("ro", 1), "test")
            assert raised.value.cause == "read-only"
            assert "read-only" in raised.value.detail
            with pytest.raises(ReadOnlyStorage):
                store.check_writable()
            # Reads see what the writer stores meanwhile.
            writer.add_reports(batch("later", 3), "test")
            assert store.count_reports() == writer.count_reports()
            assert store.get_reports_for_track("AZE", "nope") == []


def test_check_writable_commits_a_real_write(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "truce.sqlite") as store:
        store.check_writable()
        with sqlite3.connect(store.path) as conn:
            first = conn.execute("SELECT value FROM meta WHERE key = 'ready_probe'").fetchone()
        store.check_writable()
        with sqlite3.connect(store.path) as conn:
            second = conn.execute("SELECT value FROM meta WHERE key = 'ready_probe'").fetchone()
        assert first is not None and second is not None and second[0] >= first[0]


def test_check_writable_is_busy_quickly_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    with SQLiteStore(tmp_path / "truce.sqlite") as store:
        store.count_reports()
        other = sqlite3.connect(store.path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            started = datetime.now(UTC)
            with pytest.raises(Busy) as raised:
                store.check_writable(timeout_s=0.2)
            assert datetime.now(UTC) - started < timedelta(seconds=5)
            assert isinstance(raised.value, Unavailable) and raised.value.retry_after == 1
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.check_writable()
