"""`ReportTable`: validated reports as columns, in file order, with where each came from."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.domain import Confidence, Report, ReportKind
from app.findings import iso_utc
from app.io.times import _NS_PER_US
from app.service import (
    to_us,
)

Float = npt.NDArray[np.float64]


@dataclasses.dataclass(eq=False)
class ReportTable:
    """Validated reports as columns, in file order, with where each came from (for messages).

    `frame()` is what `ZoneIndex.check` takes; `reports()` builds domain reports for storing.
    """

    path: Path
    lon: Float
    lat: Float
    time_ns: npt.NDArray[np.int64]
    uncertainty_m: Float
    party: np.ndarray
    unit: np.ndarray
    ids: np.ndarray | None
    labels: np.ndarray
    label: str
    kind: np.ndarray | None = None
    source: np.ndarray | None = None
    confidence: np.ndarray | None = None
    notes: np.ndarray | None = None
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    parsed: list[Report] | None = None
    messages: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lon)

    def where(self, i: int) -> str:
        """Where report `i` is in its file: "row 7", "feature 3" or "features/3"."""
        if self.label == "features/":
            return f"features/{self.labels[i]}"
        return f"{self.label} {self.labels[i]}"

    def report_ids(self, idx: np.ndarray) -> np.ndarray:
        """The ids of reports `idx` (for a file without ids: "row-7", "feature-3")."""
        if self.ids is not None:
            return np.asarray(self.ids[idx], dtype=object)
        prefix = "row-" if self.label == "row" else "feature-"
        return np.array([f"{prefix}{n}" for n in self.labels[idx].tolist()], dtype=object)

    def frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Reports `start:stop` as the input frame of `ZoneIndex.check` (without ids)."""
        window = slice(start, stop)
        ns = self.time_ns[window]
        return pd.DataFrame(
            {
                "lon": self.lon[window],
                "lat": self.lat[window],
                "observed_at": pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC"),
                "uncertainty_m": self.uncertainty_m[window],
                "party": self.party[window],
                "unit": self.unit[window],
            }
        )

    def ensure_content_ids(self) -> None:
        """Give reports without an id one derived from their content ("h-" and 20 hex digits)."""
        if self.ids is not None and not any(v is None for v in self.ids.tolist()):
            return
        iso = np.array(iso_utc(self.time_ns), dtype=object)
        made = np.empty(len(self), dtype=object)
        columns = [self.party, iso, self.lon, self.lat, self.uncertainty_m, self.unit]
        for extra in (self.kind, self.source, self.notes):
            if extra is not None:
                columns.append(extra)
        for i, row in enumerate(zip(*(c.tolist() for c in columns), strict=True)):
            digest = hashlib.sha256(repr(row).encode("utf-8")).hexdigest()
            made[i] = f"h-{digest[:20]}"
        if self.ids is None:
            self.ids = made
        else:
            given = np.asarray(self.ids, dtype=object)
            missing = np.array([v is None for v in given.tolist()], dtype=bool)
            self.ids = np.where(missing, made, given)

    def reports(self, start: int = 0, stop: int | None = None) -> list[Report]:
        """Reports `start:stop` as domain reports (ids must be set: see `ensure_content_ids`)."""
        if self.parsed is not None:
            return self.parsed[start:stop]
        window = slice(start, stop)
        n = len(self.lon[window])
        ids = self.report_ids(np.arange(len(self))[window])
        stamps = pd.DatetimeIndex(self.time_ns[window].view("M8[ns]")).tz_localize("UTC")

        def column(values: np.ndarray | None) -> list[Any]:
            return [None] * n if values is None else values[window].tolist()

        extras = {name: values[window].tolist() for name, values in self.extra.items()}
        kinds, confidences = column(self.kind), column(self.confidence)
        out = []
        for i, (rid, party, when, lon, lat, u, unit, source, notes) in enumerate(
            zip(
                ids.tolist(),
                self.party[window].tolist(),
                stamps.to_pydatetime().tolist(),
                self.lon[window].tolist(),
                self.lat[window].tolist(),
                self.uncertainty_m[window].tolist(),
                self.unit[window].tolist(),
                column(self.source),
                column(self.notes),
                strict=True,
            )
        ):
            extra = {k: v[i] for k, v in extras.items() if v[i] is not None}
            out.append(
                Report(
                    id=rid,
                    party=party,
                    observed_at=when,
                    lon=lon,
                    lat=lat,
                    uncertainty_m=u,
                    kind=ReportKind.OTHER if kinds[i] is None else ReportKind(kinds[i]),
                    unit=unit,
                    source=source,
                    confidence=None if confidences[i] is None else Confidence(confidences[i]),
                    notes=notes,
                    extra=extra,
                )
            )
        return out

    @classmethod
    def from_reports(cls, path: Path, reports: Sequence[Report]) -> ReportTable:
        """A table over reports already parsed (GeoJSON), labelled by feature index."""
        us = np.array([to_us(r.observed_at) for r in reports], dtype=np.int64)
        return cls(
            path=path,
            lon=np.array([r.lon for r in reports], dtype=np.float64),
            lat=np.array([r.lat for r in reports], dtype=np.float64),
            time_ns=us * _NS_PER_US,
            uncertainty_m=np.array([r.uncertainty_m for r in reports], dtype=np.float64),
            party=np.array([r.party for r in reports], dtype=object),
            unit=np.array([r.unit for r in reports], dtype=object),
            ids=np.array([r.id for r in reports], dtype=object),
            labels=np.arange(len(reports)),
            label="features/",
            parsed=list(reports),
        )
