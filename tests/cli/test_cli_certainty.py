"""The command line keeps certain apart from possible: the summary line, the tables, the import
and export lines, `export incursions --verdict`; depths rounded to fit the uncertainty."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.precision import depth_step
from app.scenario import load_scenario
from tests.cli.test_cli_files import REPORTS, ZONES, invoke
from tests.oracle import oracle_depth
from tests.scenario_facts import ScenarioFacts, scenario_facts


@pytest.fixture(scope="module")
def facts() -> ScenarioFacts:
    return scenario_facts(load_scenario())


def _table(stdout: str, title: str) -> list[list[str]]:
    """The body rows of the rich table titled `title`, as lists of cells."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_the_summary_counts_violations_inside_apart_from_possible(facts: ScenarioFacts) -> None:
    result = invoke("check", str(REPORTS))
    assert result.exit_code == 0, result.output
    inside, possible = len(facts.inside), len(facts.violations - facts.inside)
    assert inside and possible, "the sample has both, with the zones' boundary accuracy"
    assert f"violations: {inside} inside (certain), {possible} possible" in result.stdout
    row = _table(result.stdout, "Violations by zone and party")[0]  # the zone's name wraps
    assert row[1:4] == ["AZE", str(inside), str(possible)]


def test_the_deepest_incursions_table_holds_only_reports_inside(facts: ScenarioFacts) -> None:
    result = invoke("check", str(REPORTS), "--top", "20")
    assert result.exit_code == 0, result.output
    rows = _table(result.stdout, "Deepest incursions (inside")
    assert {r[0] for r in rows} == facts.inside
    assert not {r[0] for r in rows} & (facts.violations - facts.inside)
    scenario = load_scenario()
    reports = {r.id: r for r in scenario.reports}
    (zone,) = [z for z in scenario.zones if z.id == "nk-pk-zone" and z.version == 2]
    for row in rows:
        report = reports[row[0]]
        depth, u = float(row[5].replace(",", "")), float(row[6].replace(",", ""))
        assert u == report.uncertainty_m + zone.boundary_uncertainty_m
        # Rounded to the step that fits u, and within half a step of the reference depth.
        step = float(depth_step(u))
        assert depth % step == 0
        assert abs(depth - oracle_depth(report.lon, report.lat, zone.geometry)) <= step / 2 + 1
    depths = [float(r[5].replace(",", "")) for r in rows]
    assert depths == sorted(depths, reverse=True)


def test_no_deepest_table_when_nothing_is_inside(tmp_path: Path) -> None:
    # One report whose disc straddles the zone's line: possible, never a "deepest incursion".
    obj = json.loads(REPORTS.read_text())
    obj["features"] = [f for f in obj["features"] if f["id"] == "2022-03-27-ru-mod-2"]
    path = tmp_path / "one.geojson"
    path.write_text(json.dumps(obj))
    result = invoke("check", str(path))
    assert result.exit_code == 0, result.output
    assert "violations: 0 inside (certain), 1 possible" in result.stdout
    assert "Deepest incursions" not in result.stdout


def test_export_incursions_says_and_filters_by_certainty(
    tmp_path: Path, facts: ScenarioFacts, store_url: str
) -> None:
    url = store_url
    assert invoke("import", "zones", str(ZONES), "--database-url", url).exit_code == 0
    assert invoke("import", "reports", str(REPORTS), "--database-url", url).exit_code == 0
    inside, possible = len(facts.inside), len(facts.violations - facts.inside)
    out = tmp_path / "all.geojson"
    result = invoke("export", "incursions", "--out", str(out), "--database-url", url)
    assert result.exit_code == 0, result.output
    assert f"{inside} inside, {possible} possible" in result.stdout
    for verdict, expected in (
        ("inside", facts.inside),
        ("possible", facts.violations - facts.inside),
    ):
        out = tmp_path / f"{verdict}.geojson"
        result = invoke(
            "export", "incursions", "--out", str(out), "--database-url", url, "--verdict", verdict
        )
        assert result.exit_code == 0, result.output
        features = json.loads(out.read_text())["features"]
        assert {f["properties"]["report_id"] for f in features} == expected
        assert {f["properties"]["verdict"] for f in features} == {verdict}
    bad = invoke("export", "incursions", "--out", str(out), "--database-url", url, "--verdict", "x")
    assert bad.exit_code == 2 and re.search(r"verdict", bad.output)
