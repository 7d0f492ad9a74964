"""Findings as columns, and as the GeoJSON features that the API and the files write.

The engine answers with positions into its inputs (`Judged`); `FindingColumns` resolves them into
the values a finding carries (report id, zone id and name, times, ...) as parallel arrays, which
can be filtered, sorted and joined with numpy before any Python object per finding is made.
`features()` then writes them in the shape of `app.geojson.finding_to_feature` (tested to be
identical), in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from app.batch import ReportBatch
from app.engine import Judged, ZoneIndex
from app.geodesy import Float
from app.limits import iso_utc

__all__ = ["FindingColumns"]


@dataclass(frozen=True, slots=True)
class FindingColumns:
    """One row per finding (report × zone); object arrays hold str."""

    report_id: np.ndarray
    lon: Float
    lat: Float
    time_ns: np.ndarray  # int64, UTC nanoseconds
    party: np.ndarray
    zone_id: np.ndarray
    zone_name: np.ndarray
    verdict: np.ndarray
    violation: np.ndarray
    depth_m: Float

    @classmethod
    def of(cls, judged: Judged, index: ZoneIndex, reports: ReportBatch) -> FindingColumns:
        """The findings of `index.judge(reports)`, as columns."""
        report, zone = judged.report, judged.zone
        return cls(
            report_id=reports.report_ids(report),
            lon=reports.lon[report],
            lat=reports.lat[report],
            time_ns=reports.time_ns[report],
            party=reports.party[report],
            zone_id=index.zone_ids[zone],
            zone_name=index.zone_names[zone],
            verdict=judged.verdict,
            violation=judged.violation,
            depth_m=judged.depth_m,
        )

    @classmethod
    def empty(cls) -> FindingColumns:
        """No findings."""
        text, none = np.empty(0, object), np.empty(0)
        times = np.empty(0, np.int64)
        return cls(text, none, none, times, text, text, text, text, np.empty(0, bool), none)

    @classmethod
    def concat(cls, parts: list[FindingColumns]) -> FindingColumns:
        """The rows of every part, in order."""
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def __len__(self) -> int:
        return len(self.report_id)

    def take(self, rows: np.ndarray | slice) -> FindingColumns:
        """The rows at `rows` (positions, a boolean mask or a slice)."""
        return FindingColumns(*(getattr(self, f.name)[rows] for f in fields(self)))

    def by_verdict(self) -> dict[str, int]:
        """How many findings are `inside` and how many `possible` (violations are one or the
        other): summaries never mix certainty."""
        inside = int(np.count_nonzero(self.verdict == "inside"))
        possible = int(np.count_nonzero(self.verdict == "possible"))
        return {"inside": inside, "possible": possible}

    def frame(self) -> pd.DataFrame:
        """The findings as the frame that `app.io.write_findings` writes."""
        return pd.DataFrame(
            {
                "report_id": self.report_id,
                "zone_id": self.zone_id,
                "zone_name": self.zone_name,
                "verdict": self.verdict,
                "violation": self.violation,
                "depth_m": self.depth_m,
                "party": self.party,
                "observed_at": pd.to_datetime(self.time_ns, utc=True),
                "lon": self.lon,
                "lat": self.lat,
            }
        )

    def features(self) -> list[dict[str, Any]]:
        """Point features with the properties of a finding (as `finding_to_feature`)."""
        columns = zip(
            self.lon.tolist(),
            self.lat.tolist(),
            self.report_id.tolist(),
            self.zone_id.tolist(),
            self.zone_name.tolist(),
            self.verdict.tolist(),
            self.violation.tolist(),
            self.depth_m.tolist(),
            self.party.tolist(),
            iso_utc(self.time_ns),
            strict=True,
        )
        return [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "report_id": report_id,
                    "zone_id": zone_id,
                    "zone_name": zone_name,
                    "verdict": verdict,
                    "violation": violation,
                    # As finding_to_feature: centimetres, the rule is good to 0.5 m.
                    "depth_m": round(depth, 2),
                    "party": party,
                    "observed_at": when,
                },
            }
            for lon, lat, report_id, zone_id, zone_name, verdict, violation, depth, party, when in (
                columns
            )
        ]
