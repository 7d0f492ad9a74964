"""`truce backup` and `truce restore` on a PostGIS URL: pg_dump's custom format, pg_restore in
one transaction, and clear errors when the tools are missing or the target is not empty."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.service import Service
from app.store import Store, hash_key
from app.store.postgis import PostGISStore
from app.store.postgis_backup import PgToolError, pg_backup
from tests.factories import make_report
from tests.postgis import create_database, drop_database, worker_database_name

runner = CliRunner()
T0 = datetime(2022, 3, 24, 6, tzinfo=UTC)


@pytest.fixture
def empty_url() -> Iterator[str]:
    """A new database with nothing in it (not even PostGIS), dropped at the end."""
    name = worker_database_name("truce_restore")
    url = create_database(name)
    yield url
    drop_database(name)


def _fill(url: str) -> None:
    with PostGISStore(url) as store:
        assert Service(store).load_scenario()
        reports = [
            make_report(f"b{i:03d}", observed_at=T0 + timedelta(days=40 * i)) for i in range(12)
        ]
        store.add_reports(reports, "observer")
        store.correct_report(replace(reports[2], lon=46.81), "observer")
        store.add_key(hash_key("secret-1"), "admin", "ops", "cli")


def _everything(store: Store) -> dict[str, Any]:
    reports, _ = store.list_reports(limit=10_000)
    return {
        "zones": store.list_zones(all_versions=True),
        "reports": reports,
        "history": store.report_history("b002"),
        "feed": store.reports_after(0, 10_000),
        "audit": store.audit_log(limit=10_000),
        "keys": store.list_keys(),
        "parties": store.list_parties(),
    }


def test_backup_then_restore_into_an_empty_database_gives_the_same_store(
    tmp_path: Path, postgis_url: str, empty_url: str
) -> None:
    _fill(postgis_url)
    archive = tmp_path / "truce.dump"
    made = runner.invoke(cli, ["backup", str(archive), "--database-url", postgis_url])
    assert made.exit_code == 0, made.output
    assert "pg_dump custom format" in made.output
    assert archive.read_bytes()[:5] == b"PGDMP"
    assert not (tmp_path / "truce.dump.partial").exists()
    again = runner.invoke(cli, ["backup", str(archive), "--database-url", postgis_url])
    assert again.exit_code == 2 and "--force" in again.output

    restored = runner.invoke(cli, ["restore", str(archive), "--database-url", empty_url])
    assert restored.exit_code == 0, restored.output
    with PostGISStore(postgis_url) as source, PostGISStore(empty_url) as copy:
        assert _everything(copy) == _everything(source)
        assert copy.find_key(hash_key("secret-1")) is not None
        # The restored store goes on as the original would: the next audit id and position.
        copy.add_reports([make_report("after", observed_at=T0)], "observer")
        feed, _ = copy.reports_after(_everything(source)["feed"][1], 10)
        assert [v.report.id for v in feed] == ["after"]
        assert copy.audit_log(limit=10_000)[-1].id == len(source.audit_log(limit=10_000)) + 1


def test_restore_refuses_a_database_holding_a_store_unless_forced(
    tmp_path: Path, postgis_url: str, empty_url: str
) -> None:
    _fill(postgis_url)
    archive = tmp_path / "truce.dump"
    pg_backup(postgis_url, archive)
    with PostGISStore(empty_url) as other:
        other.add_reports([make_report("someone-else", observed_at=T0)], "observer")
    refused = runner.invoke(cli, ["restore", str(archive), "--database-url", empty_url])
    assert refused.exit_code == 2 and "holds a Truce store already" in refused.output
    with PostGISStore(empty_url) as other:
        assert other.count_reports() == 1  # untouched
    forced = runner.invoke(
        cli, ["restore", str(archive), "--database-url", empty_url, "--force", "--no-progress"]
    )
    assert forced.exit_code == 0, forced.output
    with PostGISStore(postgis_url) as source, PostGISStore(empty_url) as copy:
        assert _everything(copy) == _everything(source)


def test_missing_tools_and_foreign_files_are_one_clear_error(
    tmp_path: Path, postgis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_backup = tmp_path / "not-a-dump.sqlite"
    sqlite_backup.write_bytes(b"SQLite format 3\x00" + bytes(100))
    wrong = runner.invoke(cli, ["restore", str(sqlite_backup), "--database-url", postgis_url])
    assert wrong.exit_code == 2 and "not a pg_dump archive" in wrong.output
    assert "truce db copy" in wrong.output

    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump, no pg_restore
    for args in (
        ["backup", str(tmp_path / "x.dump")],
        ["restore", str(sqlite_backup)],
    ):
        result = runner.invoke(cli, [*args, "--database-url", postgis_url])
        assert result.exit_code == 2, result.output
        assert "is not installed" in result.output and "docs/deployment.md" in result.output
        assert "Traceback" not in result.output
    with pytest.raises(PgToolError, match="pg_dump is not installed"):
        pg_backup(postgis_url, tmp_path / "y.dump")
    assert not (tmp_path / "x.dump").exists() and not (tmp_path / "y.dump").exists()
