"""Migration 4: zones carry `boundary_uncertainty_m`; a database from before it reads them as 0."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from app.store import SQLiteStore
from app.store.sqlite import MIGRATIONS
from tests.factories import make_zone


def test_a_zone_keeps_its_boundary_uncertainty_through_versions_and_retirement(
    tmp_path: Path,
) -> None:
    with SQLiteStore(tmp_path / "t.sqlite") as store:
        (zone,) = store.add_zones([make_zone(boundary_uncertainty_m=2000.0)], "test")
        later = zone.valid_from.replace(year=zone.valid_from.year + 10)
        store.new_zone_version(
            replace(zone, boundary_uncertainty_m=150.5, valid_from=later), "test"
        )
        retired = store.retire_zone(zone.id, later.replace(year=later.year + 10), "test")
        assert retired.boundary_uncertainty_m == 150.5  # copied with the retired version
        history = store.zone_history(zone.id)
        assert [z.boundary_uncertainty_m for z in history] == [2000.0, 150.5, 150.5]
        assert {z.boundary_uncertainty_m for z in store.zones_for_index()} == {2000.0, 150.5}
        at = later.replace(year=later.year + 1)
        assert [z.boundary_uncertainty_m for z in store.list_zones(at=at)] == [150.5]


def test_a_database_of_schema_3_is_upgraded_and_its_zones_read_as_exact(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with SQLiteStore(path) as store:
        store.add_zones([make_zone()], "test")
    raw = sqlite3.connect(path)
    try:  # back to schema 3: the column dropped, the version forgotten
        raw.execute("ALTER TABLE zones DROP COLUMN boundary_uncertainty_m")
        # The tables of later migrations go too (events, incidents, ...).
        schema_3 = {"meta", "audit", "zones", "reports", "api_keys", "report_versions"}
        schema_3 |= {"parties", "schema_version", "sqlite_sequence"}
        listed = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        tables = [name for (name,) in listed]
        for name in set(tables) - schema_3:
            raw.execute(f"DROP TABLE {name}")
        raw.execute("DELETE FROM schema_version WHERE version > 3")
        raw.commit()
    finally:
        raw.close()
    assert len(MIGRATIONS) >= 4
    with SQLiteStore(path) as store:
        (zone,) = store.list_zones()
        assert zone.boundary_uncertainty_m == 0.0
    raw = sqlite3.connect(path)
    try:
        versions = [v for (v,) in raw.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        raw.close()
