"""`truce db migrate` and `truce db copy`: a whole SQLite store moved into PostGIS, resumably."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest
from psycopg import sql
from shapely import box
from typer.testing import CliRunner

from app.cli import cli
from app.domain import Party, ZoneKind
from app.store import IncidentFilter, SQLiteStore, Store, hash_key
from app.store.copy import copy_sqlite_to_postgis
from app.store.postgis import MIGRATIONS, PostGISStore
from tests.factories import make_report, make_zone

runner = CliRunner()
T0 = datetime(2020, 11, 10, tzinfo=UTC)


def _fill(path: Path) -> None:
    """A store with something of everything: versions, retirements, corrections, keys..."""
    with SQLiteStore(path) as store:
        store.add_zones(
            [
                make_zone(box(46.5, 39.6, 47.0, 40.0), "pk", valid_from=T0),
                make_zone(
                    box(46.4, 39.5, 46.6, 39.7), "lachin", kind=ZoneKind.CORRIDOR, valid_from=T0
                ),
            ],
            "admin",
        )
        store.new_zone_version(
            make_zone(box(46.6, 39.7, 46.9, 39.9), "pk", valid_from=T0 + timedelta(days=10)),
            "admin",
        )
        store.retire_zone("lachin", datetime(2024, 6, 12, tzinfo=UTC), "admin")
        store.put_party(Party("AZE", "Azerbaijan", "#0000ff", ("Azerbaijan*",)), "admin")
        # Reports over three months (three partitions), with extras, corrections, a retraction.
        reports = [
            make_report(
                f"r{i:03d}",
                observed_at=T0 + timedelta(days=i),
                unit=f"u{i % 3}",
                extra={"n": i} if i % 2 else {},
            )
            for i in range(75)
        ]
        store.add_reports(reports[:40], "observer")
        store.add_reports(reports[40:], "observer-2")
        store.correct_report(replace(reports[3], lon=46.8), "observer")
        store.retract_report("r007", "double count", "admin")
        store.add_reports([make_report("late", observed_at=T0)], "observer")
        store.add_key(hash_key("secret-1"), "admin", "ops", "cli")
        revoked = store.add_key(hash_key("secret-2"), "viewer", "old", "cli")
        store.revoke_key(revoked.id, "cli")
        store.add_audit_entry("api", "auth.throttle", "10.0.0.1")


def _everything(store: Store) -> dict[str, Any]:
    reports, cursor = store.list_reports(limit=10_000)
    assert cursor is None
    return {
        "zones": store.list_zones(all_versions=True),
        "index": store.zones_for_index(),
        "at": store.list_zones(at=T0 + timedelta(days=20)),
        "reports": [(r, r.extra) for r in reports],
        "histories": [store.report_history(r) for r in ("r003", "r007", "late")],
        "feed": store.reports_after(0, 10_000),
        "count": store.count_reports(),
        "audit": store.audit_log(limit=10_000),
        "keys": store.list_keys(),
        "parties": store.list_parties(),
        "events": store.events_after(0, 10_000),
        "incidents": store.list_incidents(IncidentFilter(), limit=10_000)[0],
    }


def test_db_copy_moves_a_whole_store_and_every_read_answers_the_same(
    tmp_path: Path, postgis_url: str
) -> None:
    path = tmp_path / "truce.sqlite"
    _fill(path)
    result = runner.invoke(
        cli, ["db", "copy", "--from", f"sqlite:///{path}", "--to", postgis_url, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "76 reports" in result.output and "2 report_versions" in result.output
    # A second run finds everything there and copies nothing.
    again = runner.invoke(
        cli, ["db", "copy", "--from", f"sqlite:///{path}", "--to", postgis_url, "--no-progress"]
    )
    assert again.exit_code == 0, again.output
    assert "nothing new" in again.output
    with SQLiteStore(path) as sqlite, PostGISStore(postgis_url) as postgis:
        assert _everything(postgis) == _everything(sqlite)
        assert postgis.find_key(hash_key("secret-1")) is not None
        assert postgis.find_key(hash_key("secret-2")) is None
        # Both go on alike: new ids after the copied ones, and the next feed position.
        key = postgis.add_key(hash_key("secret-3"), "viewer", "new", "cli")
        assert key.id == 3
        postgis.add_reports([make_report("after", observed_at=T0)], "observer")
        feed, position = postgis.reports_after(_everything(sqlite)["feed"][1], 10)
        assert [v.report.id for v in feed] == ["after"]
        assert postgis.audit_log(limit=10_000)[-1].id == len(sqlite.audit_log(limit=10_000)) + 2
        # The event log and the incidents came along, and go on after the copied ids.
        copied = _everything(sqlite)
        assert copied["events"] and copied["incidents"]
        postgis.add_reports([make_report("after-2", observed_at=T0, unit="new-unit")], "obs")
        later = postgis.events_after(copied["events"][-1].id)
        assert later[-1].type == "incident.opened" and later[-1].data["unit"] == "new-unit"
        assert later[0].id == copied["events"][-1].id + 1
        assert later[-1].data["incident_id"] > max(i.id for i in copied["incidents"])


class Interrupted(Exception):
    pass


def test_an_interrupted_copy_goes_on_where_it_stopped(tmp_path: Path, postgis_url: str) -> None:
    path = tmp_path / "truce.sqlite"
    _fill(path)
    seen: list[tuple[str, int]] = []
    _drop_partitions(postgis_url)

    def stop_midway(table: str, done: int, total: int) -> None:
        seen.append((table, done))
        if table == "reports" and done >= 30:
            raise Interrupted

    with PostGISStore(postgis_url) as target, pytest.raises(Interrupted):
        copy_sqlite_to_postgis(path, target, chunk=10, progress=stop_midway)
    with PostGISStore(postgis_url) as target:
        # Whole chunks only, waiting in the months of reports_loading (30 days from 10
        # November: two), not yet partitions of reports, so not yet visible.
        with psycopg.connect(postgis_url.split("?")[0]) as pg:
            assert pg.execute("SELECT count(*) FROM reports_loading").fetchone() == (30,)
            assert _partitions(pg) == {"loading": 2}
        assert target.count_reports() == 0
        resumed = copy_sqlite_to_postgis(path, target, chunk=10)
        assert resumed.resumed and resumed.rows["reports"] == 46
        assert "audit" not in resumed.rows and "zones" not in resumed.rows
    with psycopg.connect(postgis_url.split("?")[0]) as pg:
        # Attached at the end, each with the parent's six indexes and its immutability.
        assert _partitions(pg) == {"attached": 3}
        assert pg.execute("SELECT to_regclass('reports_loading')").fetchone() == (None,)
        indexes = pg.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relname = 'reports_p202012'"
        ).fetchone()
        assert indexes == (6,)
        with pytest.raises(psycopg.errors.RaiseException, match="never overwritten"):
            pg.execute("UPDATE reports SET lon = 0 WHERE id = 'r030'")
    with SQLiteStore(path) as sqlite, PostGISStore(postgis_url) as postgis:
        assert _everything(postgis) == _everything(sqlite)


@pytest.mark.parametrize("step", ["report month indexes", "report months attached"])
def test_a_copy_stopped_while_indexing_or_attaching_goes_on(
    tmp_path: Path, postgis_url: str, step: str
) -> None:
    path = tmp_path / "truce.sqlite"
    _fill(path)
    _drop_partitions(postgis_url)

    def stop_there(table: str, done: int, total: int) -> None:
        if table == step and done >= 2:  # of 18 indexes, or of 3 months
            raise Interrupted

    with PostGISStore(postgis_url) as target, pytest.raises(Interrupted):
        copy_sqlite_to_postgis(path, target, progress=stop_there)
    with PostGISStore(postgis_url) as target:
        assert target.count_reports() == 0  # nothing visible before every month is attached
        resumed = copy_sqlite_to_postgis(path, target)
        assert resumed.resumed and "reports" not in resumed.rows
    with psycopg.connect(postgis_url.split("?")[0]) as pg:
        assert _partitions(pg) == {"attached": 3}
        # Indexes built before the stop are kept, none twice: the parent's six per month.
        counts = pg.execute(
            "SELECT c.relname, count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relname LIKE 'reports\\_p%' GROUP BY 1"
        ).fetchall()
        assert sorted(count for _, count in counts) == [6, 6, 6]
    with SQLiteStore(path) as sqlite, PostGISStore(postgis_url) as postgis:
        assert _everything(postgis) == _everything(sqlite)


def test_months_the_target_has_already_take_their_rows_as_a_batch_does(
    tmp_path: Path, postgis_url: str
) -> None:
    path = tmp_path / "truce.sqlite"
    _fill(path)
    _drop_partitions(postgis_url)
    with PostGISStore(postgis_url) as target:
        target._ensure_months({(2020, 12)})  # December is a partition already, empty
        copy_sqlite_to_postgis(path, target, chunk=20)
    with psycopg.connect(postgis_url.split("?")[0]) as pg:
        assert _partitions(pg) == {"attached": 3}
        december = pg.execute("SELECT count(*) FROM reports_p202012").fetchone()
        assert december == (31,)  # days 21 to 51 after 10 November
    with SQLiteStore(path) as sqlite, PostGISStore(postgis_url) as postgis:
        assert _everything(postgis) == _everything(sqlite)


def _drop_partitions(url: str) -> None:
    """The test database is emptied between tests but keeps the month partitions earlier tests
    made: drop them, so that a copy goes into months with no partition yet."""
    with psycopg.connect(url.split("?")[0], autocommit=True) as pg:
        for (name,) in pg.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'reports\\_p%'"
        ).fetchall():
            pg.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


def _partitions(pg: psycopg.Connection[Any]) -> dict[str, int]:
    rows = pg.execute(
        "SELECT CASE WHEN p.relname = 'reports' THEN 'attached' ELSE 'loading' END, count(*) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE c.relkind = 'r' AND c.relname LIKE 'reports\\_p%' GROUP BY 1"
    ).fetchall()
    return {str(state): int(count) for state, count in rows}


def test_db_copy_refuses_a_target_holding_another_store(tmp_path: Path, postgis_url: str) -> None:
    path = tmp_path / "truce.sqlite"
    _fill(path)
    with PostGISStore(postgis_url) as other:
        other.add_audit_entry("someone", "auth.throttle", "10.0.0.9")
    result = runner.invoke(
        cli, ["db", "copy", "--from", f"sqlite:///{path}", "--to", postgis_url, "--no-progress"]
    )
    assert result.exit_code == 2
    assert "not this store's" in result.output
    refused = runner.invoke(
        cli, ["db", "copy", "--from", postgis_url, "--to", postgis_url, "--no-progress"]
    )
    assert refused.exit_code == 2 and "--from must be a SQLite URL" in refused.output


def test_db_migrate_creates_then_finds_nothing_to_run(tmp_path: Path) -> None:
    from tests.postgis import create_database, drop_database, worker_database_name

    name = worker_database_name("truce_migrate")
    url = create_database(name)
    try:
        first = runner.invoke(cli, ["db", "migrate", "--database-url", url])
        assert first.exit_code == 0, first.output
        assert f"schema version {len(MIGRATIONS)} (ran 1" in first.output
        second = runner.invoke(cli, ["db", "migrate", "--database-url", url])
        assert second.exit_code == 0 and "nothing to run" in second.output
        with PostGISStore(url, migrate=False) as store:
            assert store.schema_version() == len(MIGRATIONS)
    finally:
        drop_database(name)
    sqlite_url = f"sqlite:///{tmp_path / 'new' / 'truce.sqlite'}"
    made = runner.invoke(cli, ["db", "migrate", "--database-url", sqlite_url])
    assert made.exit_code == 0 and (tmp_path / "new" / "truce.sqlite").is_file()


def _claim(store: Store, actor: str, key: str, fingerprint: str = "f") -> Any:
    return store.claim_idempotency_key(actor, key, fingerprint, datetime(2000, 1, 1, tzinfo=UTC))


def test_db_copy_takes_the_idempotency_answers_resumably(tmp_path: Path, postgis_url: str) -> None:
    path = tmp_path / "truce.sqlite"
    _fill(path)
    answers = {
        ("observer", f"k{n}"): (201, f'{{"n": {n}}}'.encode(), [("Location", f"/reports/{n}")])
        for n in range(5)
    }
    with SQLiteStore(path) as sqlite:
        for (actor, key), (status, body, headers) in answers.items():
            assert _claim(sqlite, actor, key, f"fp-{key}") is None
            sqlite.finish_idempotency_key(actor, key, status, body, headers)
        assert _claim(sqlite, "observer", "running") is None  # a claim with no answer yet
        kept = {key: _claim(sqlite, *key) for key in answers}

    def stop_midway(table: str, done: int, total: int) -> None:
        if table == "idempotency" and done >= 2:
            raise Interrupted

    with PostGISStore(postgis_url) as target, pytest.raises(Interrupted):
        copy_sqlite_to_postgis(path, target, chunk=2, progress=stop_midway)
    with PostGISStore(postgis_url) as target:
        resumed = copy_sqlite_to_postgis(path, target, chunk=2)
        # The two answers of the first run are not sent again; the tables after them (the
        # event log, incidents) are copied now, everything before them was copied already.
        assert resumed.rows["idempotency"] == 3
        assert set(resumed.rows) <= {"idempotency", "events", "incidents", "subscriptions"}
    with PostGISStore(postgis_url) as postgis:
        for key, answer in kept.items():
            # The same answer, fingerprint and time: a retry after the move is answered alike.
            assert _claim(postgis, *key) == answer
            assert answer.fingerprint == f"fp-{key[1]}" and answer.status == 201
        # The unanswered claim was a request cut short by the stop: claimed anew, not waited on.
        assert _claim(postgis, "observer", "running") is None
