"""What the sample scenario must show, worked out from the reference (tests/oracle.py) alone:
the rule with u = the report's uncertainty + the zone's boundary uncertainty."""

from __future__ import annotations

from dataclasses import dataclass

from app.scenario import Scenario
from tests.oracle import oracle_depth, oracle_verdict


@dataclass(frozen=True)
class ScenarioFacts:
    """What the map must show of the sample scenario, worked out from the reference alone."""

    violations: frozenset[str]  # reports with a violation, inside or possible
    inside: frozenset[str]  # reports with a violation inside (certain)
    circles: frozenset[str]  # reports with a `possible` finding and an uncertainty radius


def scenario_facts(scenario: Scenario) -> ScenarioFacts:
    """The rule over the scenario with tests/oracle.py: u = report + zone boundary uncertainty."""
    violations, inside, circles = set(), set(), set()
    for r in scenario.reports:
        for z in scenario.zones:
            if not z.in_force(r.observed_at):
                continue
            u = r.uncertainty_m + z.boundary_uncertainty_m
            verdict = oracle_verdict(
                oracle_depth(r.lon, r.lat, z.geometry), u, z.warning_distance_m
            )
            violating = r.party not in z.authorized_parties
            if verdict in {"inside", "possible"} and violating:
                violations.add(r.id)
            if verdict == "inside" and violating:
                inside.add(r.id)
            if verdict == "possible" and r.uncertainty_m > 0:
                circles.add(r.id)
    return ScenarioFacts(frozenset(violations), frozenset(inside), frozenset(circles))
