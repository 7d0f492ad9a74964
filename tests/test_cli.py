"""The `truce` command line, through typer's runner."""

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from app.scenario import GEODATA

runner = CliRunner()


def test_check_on_the_sample_scenario_writes_violations(tmp_path: Path) -> None:
    out = tmp_path / "findings.geojson"
    result = runner.invoke(cli, ["check", str(GEODATA / "reports.geojson"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    features = json.loads(out.read_text())["features"]
    assert any(f["properties"]["violation"] and f["properties"]["party"] == "AZE" for f in features)
    assert "parukh-group" in result.output


def test_fail_on_violation_exits_with_one() -> None:
    result = runner.invoke(cli, ["check", str(GEODATA / "reports.geojson"), "--fail-on-violation"])
    assert result.exit_code == 1


def test_a_bad_report_file_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        json.dumps(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [46.8, 95.0]},
                "properties": {"party": "AZE", "observed_at": "2022-03-25T10:00:00+04:00"},
            }
        )
    )
    result = runner.invoke(cli, ["check", str(bad)])
    assert result.exit_code == 2
    assert "latitude" in result.output and "Traceback" not in result.output


def test_map_writes_a_standalone_page_with_no_outside_reference(tmp_path: Path) -> None:
    from app.assets import external_references

    out = tmp_path / "map.html"
    result = runner.invoke(
        cli, ["map", "--scenario", "--out", str(out), "--at", "2022-03-26T00:00:00"]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Zone of responsibility" in page
    assert external_references(page) == []
    assert "map of 13 reports" in result.output


def test_map_reads_the_database_by_default(tmp_path: Path) -> None:
    """After an import the map shows what the database holds, not the sample scenario."""
    from app.scenario import load_scenario
    from app.service import Service
    from app.store import SQLiteStore
    from tests.factories import random_reports

    db = tmp_path / "truce.sqlite"
    with SQLiteStore(db) as store:
        assert Service(store).load_scenario()
        store.add_reports(random_reports(40, seed=3, prefix="mine-"), "test")
    out = tmp_path / "map.html"
    url = f"sqlite:///{db}"
    result = runner.invoke(cli, ["map", "--out", str(out), "--database-url", url])
    assert result.exit_code == 0, result.output
    total = len(load_scenario().reports) + 40
    assert f"map of {total} reports" in result.output
    page = out.read_text()
    assert '"n":' + str(total) in page and "mine-7" in page
    only = runner.invoke(
        cli, ["map", "--out", str(out), "--database-url", url, "--party", "NK", "--no-progress"]
    )
    assert only.exit_code == 0, only.output
    nk = sum(r.party == "NK" for r in load_scenario().reports)
    nk += sum(r.party == "NK" for r in random_reports(40, seed=3, prefix="mine-"))
    assert f"map of {nk} reports" in only.output


def test_map_of_a_missing_database_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.sqlite'}"
    result = runner.invoke(cli, ["map", "--out", str(tmp_path / "m.html"), "--database-url", url])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and not (tmp_path / "m.html").exists()
