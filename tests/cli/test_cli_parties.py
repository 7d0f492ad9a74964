"""`truce parties` and the party matching of `truce import reports` and `truce check --zones db`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.service import Service
from app.store import open_store

ROOT = Path(__file__).resolve().parents[2]
ACLED = ROOT / "tests" / "data" / "acled_sample.csv"

runner = CliRunner()


def truce(*args: str, ok: bool = True) -> Result:
    result = runner.invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def scenario_db(store_url: str) -> str:
    """A database of each store with the founding scenario: its zones, reports and parties."""
    with open_store(store_url) as store:
        assert Service(store).load_scenario()
    return store_url


def stored_parties(url: str) -> dict[str, tuple[str, ...]]:
    with open_store(url) as store:
        return {p.code: p.aliases for p in store.list_parties()}


def stored_report_parties(url: str, ids: list[str]) -> dict[str, str]:
    with open_store(url) as store:
        reports, _ = store.list_reports(limit=10_000)
    return {r.id: r.party for r in reports if r.id in ids}


def test_parties_list_shows_the_scenario_parties(scenario_db: str) -> None:
    out = truce("parties", "list", "--database-url", scenario_db).output
    for code in ("AZE", "ARM", "NK", "RU-PK", "TR"):
        assert code in out
    assert "Russian peacekeepers" in out


def test_parties_set_registers_and_changes_a_party(scenario_db: str) -> None:
    truce(
        "parties", "set", "OSCE", "--name", "OSCE monitors", "--colour", "#123456",
        "--alias", "OSCE SMM*", "--database-url", scenario_db, "--actor", "tester",
    )  # fmt: skip
    assert stored_parties(scenario_db)["OSCE"] == ("OSCE SMM*",)
    truce("parties", "set", "OSCE", "--alias", "Monitors", "--database-url", scenario_db)
    assert stored_parties(scenario_db)["OSCE"] == ("OSCE SMM*", "Monitors")
    bad = truce(
        "parties", "set", "OSCE", "--colour", "blue", "--database-url", scenario_db, ok=False
    )
    assert bad.exit_code == 2
    assert "color" in bad.output and "#rrggbb" in bad.output
    with open_store(scenario_db) as store:
        entries = store.audit_log(limit=1000)
    assert [(e.action, e.target, e.actor) for e in entries if e.target == "OSCE"][0] == (
        "party.create",
        "OSCE",
        "tester",
    )


def test_an_acled_actor_unknown_to_the_registry_refuses_the_import(scenario_db: str) -> None:
    result = truce(
        "import", "reports", str(ACLED), "--database-url", scenario_db, "--no-progress", ok=False
    )
    assert result.exit_code == 2
    # The protesters are no registered party: named with their row, the value and the codes.
    assert "row 9" in result.output
    assert "'Protesters (Azerbaijan)'" in result.output
    assert "RU-PK" in result.output
    assert stored_report_parties(scenario_db, ["TRC90001", "TRC90005"]) == {}


def test_a_saved_party_map_lets_the_acled_import_through(scenario_db: str) -> None:
    truce("parties", "set", "CIV", "--name", "Civilians", "--database-url", scenario_db)
    truce("parties", "import-map", "Protesters (*)=CIV", "--database-url", scenario_db)
    assert stored_parties(scenario_db)["CIV"] == ("Protesters (*)",)
    truce("import", "reports", str(ACLED), "--database-url", scenario_db, "--no-progress")
    # Matched through the scenario's aliases (the ACLED actor names) and the saved map.
    parties = stored_report_parties(scenario_db, ["TRC90001", "TRC90005", "TRC90008"])
    assert parties == {"TRC90001": "AZE", "TRC90005": "RU-PK", "TRC90008": "CIV"}


def test_import_map_refuses_an_unregistered_code(scenario_db: str) -> None:
    result = truce(
        "parties", "import-map", "Somebody*=NOPE", "--database-url", scenario_db, ok=False
    )
    assert result.exit_code == 2
    assert "'NOPE'" in result.output and "AZE" in result.output
    assert "NOPE" not in stored_parties(scenario_db)


def test_check_against_the_database_matches_its_parties(scenario_db: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports.csv"
    reports.write_text(
        "id,lon,lat,observed_at,party\n"
        "pk,46.808,40.012,2022-03-24T06:00:00+04:00,russian peacekeepers\n"
        "az,46.808,40.012,2022-03-24T06:00:00+04:00,aze\n",
        encoding="utf-8",
    )
    out = tmp_path / "findings.csv"
    truce(
        "check", str(reports), "--zones", "db", "--database-url", scenario_db,
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    lines = out.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]
    in_zone = {r["report_id"]: r for r in rows if r["zone_id"] == "nk-pk-zone"}
    assert in_zone["pk"]["party"] == "RU-PK"
    assert in_zone["pk"]["violation"].lower() in ("false", "0")
    assert in_zone["az"]["party"] == "AZE"
    assert in_zone["az"]["violation"].lower() in ("true", "1")
    reports.write_text(
        "id,lon,lat,observed_at,party\nx,46.808,40.012,2022-03-24T06:00:00+04:00,Nobody\n",
        encoding="utf-8",
    )
    refused = truce(
        "check", str(reports), "--zones", "db", "--database-url", scenario_db, "--no-progress",
        ok=False,
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "row 2" in refused.output and "'Nobody'" in refused.output
