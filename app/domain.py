"""The words of Truce as plain types: parties, zones, reports, findings, track events.

Nothing here does I/O. Geometry is shapely, in WGS84 lon/lat (RFC 7946).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shapely.geometry.base import BaseGeometry

DEFAULT_WARNING_DISTANCE_M = 1000.0


class ZoneKind(StrEnum):
    """What a zone is for; the map styles each kind differently."""

    PEACEKEEPING = "peacekeeping"
    BUFFER = "buffer"
    DEMILITARIZED = "demilitarized"
    CORRIDOR = "corridor"
    CONTROL = "control"
    EXCLUSION = "exclusion"


class ReportKind(StrEnum):
    """What was seen."""

    TROOPS = "troops"
    VEHICLE = "vehicle"
    STRIKE = "strike"
    DRONE = "drone"
    ARTILLERY = "artillery"
    FORTIFICATION = "fortification"
    OTHER = "other"


class Confidence(StrEnum):
    """How far the source trusts its own report."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Verdict(StrEnum):
    """Where a report's uncertainty disc lies with respect to a zone (docs/rule.md)."""

    INSIDE = "inside"
    POSSIBLE = "possible"
    APPROACHING = "approaching"
    OUTSIDE = "outside"


class TrackEventKind(StrEnum):
    """Something a unit's track shows about a zone (docs/rule.md, "Tracks")."""

    ENTERED = "entered"
    EXITED = "exited"
    CROSSED = "crossed"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Party:
    """An armed force or mission, by a short code, with its map colour (#rrggbb) and aliases.

    Aliases are other names of the party, exact ("Azerbaijan") or fnmatch patterns ("Military
    Forces of Azerbaijan*"); `app.parties` matches report parties through them.
    """

    code: str
    name: str
    color: str = "#666666"
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Zone:
    """One version of a zone: a (multi)polygon in force from `valid_from` until `valid_to`."""

    id: str
    name: str
    kind: ZoneKind
    geometry: BaseGeometry
    valid_from: datetime
    valid_to: datetime | None = None
    authorized_parties: frozenset[str] = frozenset()
    warning_distance_m: float = DEFAULT_WARNING_DISTANCE_M
    #: How far the drawn line may be from the agreed one (m): added to each report's uncertainty.
    boundary_uncertainty_m: float = 0.0
    agreement: str | None = None
    source: str | None = None
    version: int = 1

    def in_force(self, at: datetime) -> bool:
        """Whether this version applies at `at` (`valid_from <= at < valid_to`)."""
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


@dataclass(frozen=True, slots=True)
class Report:
    """A point observation: who was seen where and when, and how precisely."""

    id: str
    party: str
    observed_at: datetime
    lon: float
    lat: float
    uncertainty_m: float = 0.0
    kind: ReportKind = ReportKind.OTHER
    unit: str | None = None
    source: str | None = None
    confidence: Confidence | None = None
    notes: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Finding:
    """The answer for one (report, zone) pair, one object each.

    Python API, for scripts and notebooks: `ZoneIndex.findings` gives these and
    `app.geojson.finding_to_feature` writes them. The service, the HTTP API and the command line
    keep findings as columns instead (`app.findings.FindingColumns`, `ZoneIndex.check` frames).
    """

    report_id: str
    zone_id: str
    zone_name: str
    verdict: Verdict
    violation: bool
    depth_m: float
    party: str
    observed_at: datetime
    lon: float
    lat: float
