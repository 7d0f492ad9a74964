"""`ReportBatch`: reports as columns, the one form in which every path hands reports on.

Request bodies (`app.api.parsing`), files (`app.io`), stored reports read back (incursions and
tracks) and the frames given to `ZoneIndex.check` all become a `ReportBatch`: ids, positions, times
as UTC nanoseconds, uncertainties, parties and units as parallel arrays, plus the other report
fields when a file gave them as columns. Domain `Report` objects are made only when a batch is
stored, so checking 1e5 positions never builds 1e5 Python objects beyond the parsed input.

A batch knows where its reports came from (its `origin`), so a bad report is named the way its
sender sees it: a JSON pointer such as `features/3/properties/party` for a request body (`Shape`),
a row or feature of a file for files (`app.io.rows.FileRows`). Times and uncertainties are held to
`app.limits` by `app.limits.check_batch_limits`, whatever the origin.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.domain import Confidence, Report, ReportKind
from app.errors import InvalidReport, TruceError
from app.limits import NS_PER_US, check_batch_limits, iso_utc, to_us
from app.validate import join_path

__all__ = ["Origin", "ReportBatch", "Shape", "utc_index"]

Float = npt.NDArray[np.float64]

_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def utc_index(time_ns: np.ndarray) -> pd.DatetimeIndex:
    """UTC nanoseconds as timezone-aware times (a view, with no parsing or conversion)."""
    return pd.DatetimeIndex(np.asarray(time_ns, dtype=np.int64).view("M8[ns]"), dtype=_UTC_NS)


class Origin(Protocol):
    """Where the reports of a batch came from, to name a bad one as its sender wrote it."""

    def where(self, i: int) -> str:
        """Where report `i` is: "features/3/geometry/coordinates", "row 7", "feature 3"..."""
        ...

    def fail(self, i: int, message: str, field: str | None = None) -> TruceError:
        """The error for report `i`, or for its `field` (raise it)."""
        ...

    def default_ids(self, rows: np.ndarray) -> np.ndarray:
        """Ids for reports `rows` of a batch that has none ("7", "row-7", "feature-3")."""
        ...


class Shape(StrEnum):
    """What the reports of a request came as, which decides how fields are named in messages."""

    COLLECTION = "collection"  # features/3/properties/party
    FEATURE = "feature"  # properties/party
    OBJECT = "object"  # party (a bare {"lon", "lat", ...} object)
    STORED = "stored"  # reports read back from the store, or a frame given to the engine

    def feature_index(self, i: int) -> int | None:
        """The feature index to put in an error, if the batch has one."""
        return i if self is Shape.COLLECTION else None

    def property_path(self, i: int, name: str) -> str:
        """Where property `name` of report `i` is in the request body."""
        if self is Shape.COLLECTION:
            return join_path("features", i, "properties", name)
        if self is Shape.FEATURE:
            return join_path("properties", name)
        return name

    def position_path(self, i: int) -> str:
        """Where the position of report `i` is in the request body."""
        if self is Shape.COLLECTION:
            return join_path("features", i, "geometry", "coordinates")
        if self is Shape.FEATURE:
            return "geometry/coordinates"
        return "lon"

    def where(self, i: int) -> str:
        """The position's JSON pointer (see `Origin`)."""
        return self.position_path(i)

    def fail(self, i: int, message: str, field: str | None = None) -> TruceError:
        """`InvalidReport` naming the property's (or position's) JSON pointer and feature index."""
        path = self.position_path(i) if field is None else self.property_path(i, field)
        return InvalidReport(message, field=path, index=self.feature_index(i))

    def default_ids(self, rows: np.ndarray) -> np.ndarray:
        """Row positions as text."""
        return np.asarray(rows).astype(str).astype(object)


@dataclasses.dataclass(eq=False, slots=True)
class ReportBatch:
    """Validated reports as columns, in input order (see the module docstring).

    `frame()` is what `ZoneIndex.check` takes; `reports()` builds domain reports for storing.
    `ids` is None for a file without an id column until `ensure_content_ids` (messages then use
    `origin.default_ids`). `kind`, `source`, `confidence`, `notes` and `extra` are set when the
    reports came as columns of a file; otherwise `build_reports` makes the domain reports.
    """

    lon: Float
    lat: Float
    time_ns: npt.NDArray[np.int64]  # UTC nanoseconds
    uncertainty_m: Float
    party: np.ndarray  # object array of str
    unit: np.ndarray  # object array of str or None
    ids: np.ndarray | None = None  # str (object or numpy strings), None where not given
    origin: Origin = Shape.STORED
    kind: np.ndarray | None = None
    source: np.ndarray | None = None
    confidence: np.ndarray | None = None
    notes: np.ndarray | None = None
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    build_reports: Callable[[], list[Report]] | None = dataclasses.field(default=None, repr=False)
    #: Notes for the user on how the input was read (e.g. a column taken for another).
    messages: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lon)

    def where(self, i: int) -> str:
        """Where report `i` came from (see `Origin.where`)."""
        return self.origin.where(i)

    def report_ids(self, rows: np.ndarray) -> np.ndarray:
        """The ids of reports `rows`, as an object array (see `Origin.default_ids`)."""
        if self.ids is not None:
            return np.asarray(self.ids[rows], dtype=object)
        return self.origin.default_ids(rows)

    def frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Reports `start:stop` as the input frame of `ZoneIndex.check`, with `unit` for tracks.

        `id` is left out when the batch has no ids (`check` then numbers the rows).
        """
        window = slice(start, stop)
        columns: dict[str, Any] = {}
        if self.ids is not None:
            columns["id"] = np.asarray(self.ids[window], dtype=object)
        columns |= {
            "lon": self.lon[window],
            "lat": self.lat[window],
            "observed_at": utc_index(self.time_ns[window]),
            "uncertainty_m": self.uncertainty_m[window],
            "party": self.party[window],
            "unit": self.unit[window],
        }
        return pd.DataFrame(columns)

    def take(self, rows: np.ndarray) -> ReportBatch:
        """The positions, times, uncertainties and parties of reports `rows` (for the engine)."""
        return ReportBatch(
            self.lon[rows],
            self.lat[rows],
            self.time_ns[rows],
            self.uncertainty_m[rows],
            self.party[rows],
            self.unit[rows],
        )

    def swapped(self) -> ReportBatch:
        """The same reports with longitude and latitude exchanged (a batch of columns only)."""
        return ReportBatch(
            self.lat, self.lon, self.time_ns, self.uncertainty_m, self.party, self.unit
        )

    def reports(self, start: int = 0, stop: int | None = None) -> list[Report]:
        """Reports `start:stop` as domain reports (ids must be set: see `ensure_content_ids`)."""
        if self.build_reports is not None:
            return self.build_reports()[start:stop]
        window = slice(start, stop)
        n = len(self.lon[window])
        ids = self.report_ids(np.arange(len(self))[window])
        stamps = utc_index(self.time_ns[window])

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

    @classmethod
    def from_reports(cls, reports: Sequence[Report], origin: Origin = Shape.STORED) -> ReportBatch:
        """A batch of parsed reports; refuses times and uncertainties `app.limits` cannot hold."""
        reports = list(reports)
        us = np.array([to_us(r.observed_at) for r in reports], dtype=np.int64)
        uncertainty = np.array([r.uncertainty_m for r in reports], dtype=np.float64)
        check_batch_limits(us, uncertainty, origin.fail)  # before nanoseconds can overflow
        return cls(
            lon=np.array([r.lon for r in reports], dtype=np.float64),
            lat=np.array([r.lat for r in reports], dtype=np.float64),
            time_ns=us * NS_PER_US,
            uncertainty_m=uncertainty,
            party=np.array([r.party for r in reports], dtype=object),
            unit=np.array([r.unit for r in reports], dtype=object),
            ids=np.array([r.id for r in reports], dtype=object),
            origin=origin,
            build_reports=lambda: reports,
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ReportBatch:
        """The input frame of `ZoneIndex.check` as a batch (see `ZoneIndex.check` for columns)."""
        observed = pd.to_datetime(frame["observed_at"])
        if observed.dt.tz is None:
            raise ValueError("observed_at must be timezone-aware")
        n = len(frame)
        return cls(
            lon=frame["lon"].to_numpy(np.float64),
            lat=frame["lat"].to_numpy(np.float64),
            time_ns=pd.DatetimeIndex(observed).as_unit("ns").asi8,
            uncertainty_m=frame["uncertainty_m"].to_numpy(np.float64)
            if "uncertainty_m" in frame
            else np.zeros(n),
            party=frame["party"].to_numpy(object),
            unit=frame["unit"].to_numpy(object) if "unit" in frame else np.full(n, None, object),
            ids=frame["id"].to_numpy(object) if "id" in frame else None,
        )
