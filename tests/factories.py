"""Builders of zones, reports and points for every test: domain objects, engine frames, GeoJSON.

One place for them, so a change to `Zone` or `Report` is one edit here. Defaults sit in the
founding scenario's region (Karabakh, March 2022); each builder takes keywords for what a test
needs to differ. Nothing here imports the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from shapely import Polygon, box
from shapely.geometry.base import BaseGeometry

from app.domain import DEFAULT_WARNING_DISTANCE_M, Confidence, Report, ReportKind, Zone, ZoneKind

#: Zones built here are in force from this date unless told otherwise.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: The default time of a report (domain objects and engine frames).
AT = datetime(2022, 3, 25, 12, 0, tzinfo=UTC)
#: The default time of a report feature: 24 March 2022, 06:00 in Baku, when the scenario's zone
#: of responsibility (v2) and the Lachin corridor (v1) are in force.
T = "2022-03-24T06:00:00+04:00"
#: Inside the scenario's zone of responsibility, 4 km from its edge.
PARUKH = (46.808, 40.012)
#: Yerevan: far from every zone of the scenario.
FAR = (44.5, 40.18)


# -- geometry ----------------------------------------------------------------------------------


def square(lon: float = 46.0, lat: float = 39.0, size: float = 0.1) -> Polygon:
    """A lon/lat square with its south-west corner at (lon, lat), `size` degrees a side."""
    return box(lon, lat, lon + size, lat + size)


# -- domain objects ----------------------------------------------------------------------------


def make_zone(
    geometry: BaseGeometry | None = None,
    zone_id: str = "z",
    *,
    name: str | None = None,
    kind: ZoneKind = ZoneKind.BUFFER,
    valid_from: datetime = EPOCH,
    valid_to: datetime | None = None,
    authorized: Iterable[str] = frozenset({"RU-PK"}),
    warning_m: float = DEFAULT_WARNING_DISTANCE_M,
    version: int = 1,
    **fields: Any,
) -> Zone:
    """A zone (by default a buffer over `square()`, in force from 2000, RU-PK authorized)."""
    return Zone(
        id=zone_id,
        name=name or f"zone {zone_id}",
        kind=kind,
        geometry=geometry if geometry is not None else square(),
        valid_from=valid_from,
        valid_to=valid_to,
        authorized_parties=frozenset(authorized),
        warning_distance_m=warning_m,
        version=version,
        **fields,
    )


def make_report(
    report_id: str = "r",
    lon: float = 46.7,
    lat: float = 39.8,
    *,
    party: str = "AZE",
    observed_at: datetime = AT,
    **fields: Any,
) -> Report:
    """A report of `party` at (lon, lat) and `observed_at`; other `Report` fields as keywords."""
    return Report(id=report_id, party=party, observed_at=observed_at, lon=lon, lat=lat, **fields)


def random_reports(
    n: int,
    *,
    seed: int,
    parties: Sequence[str] = ("AZE", "ARM", "NK", "RU-PK"),
    prefix: str = "r",
    start: datetime = datetime(2022, 3, 20, tzinfo=UTC),
    span: timedelta = timedelta(days=8),
    lon: tuple[float, float] = (46.3, 47.3),
    lat: tuple[float, float] = (39.5, 40.3),
    uncertainties_m: Sequence[float] = (0.0, 500.0, 3000.0),
    **fields: Any,
) -> list[Report]:
    """`n` reports spread at random (reproducibly, by `seed`) over a box and a time span."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, int(span.total_seconds()), n)
    lons, lats = rng.uniform(*lon, n), rng.uniform(*lat, n)
    party = rng.integers(len(parties), size=n)
    uncertainty = rng.choice(np.asarray(uncertainties_m, dtype=float), n)
    return [
        Report(
            id=f"{prefix}{i}",
            party=parties[int(party[i])],
            observed_at=start + timedelta(seconds=int(seconds[i])),
            lon=float(lons[i]),
            lat=float(lats[i]),
            uncertainty_m=float(uncertainty[i]),
            **fields,
        )
        for i in range(n)
    ]


def varied_reports(n: int, parties: Sequence[str], *, seed: int = 7) -> list[Report]:
    """`n` reports over the scenario's region in March 2022, of every kind, from three sources,
    one in twenty with a unit (a season's load for the map)."""
    kinds = list(ReportKind)
    reports = random_reports(
        n,
        seed=seed,
        parties=parties,
        start=datetime(2022, 3, 1, tzinfo=UTC),
        span=timedelta(days=30),
        lon=(46.2, 47.2),
        lat=(39.5, 40.5),
        uncertainties_m=(0.0, 500.0, 1000.0, 1500.0),
        confidence=Confidence.MEDIUM,
    )
    return [
        replace(
            report,
            kind=kinds[i % len(kinds)],
            unit=f"unit-{i % 50}" if i % 20 == 0 else None,
            source=("OP", "drone", "press")[i % 3],
        )
        for i, report in enumerate(reports)
    ]


def reports_df(
    points: Iterable[tuple[float, float]],
    *,
    observed_at: datetime | list[datetime] = AT,
    party: str | list[str] = "AZE",
    uncertainty_m: float | list[float] = 0.0,
    ids: list[str] | None = None,
) -> pd.DataFrame:
    """The engine's input frame for a list of (lon, lat) points."""
    points = list(points)
    n = len(points)
    lon = np.array([p[0] for p in points], dtype=float)
    lat = np.array([p[1] for p in points], dtype=float)
    times = observed_at if isinstance(observed_at, list) else [observed_at] * n
    return pd.DataFrame(
        {
            "id": ids if ids is not None else [f"r{i}" for i in range(n)],
            "lon": lon,
            "lat": lat,
            "observed_at": pd.to_datetime(times, utc=True),
            "uncertainty_m": np.broadcast_to(np.asarray(uncertainty_m, dtype=float), (n,)).copy(),
            "party": party if isinstance(party, list) else [party] * n,
        }
    )


# -- GeoJSON -----------------------------------------------------------------------------------


def point_feature(
    lon: float,
    lat: float,
    *,
    party: Any = "AZE",
    observed_at: Any = T,
    id: str | int | None = None,
    **properties: Any,
) -> dict[str, Any]:
    """A report Feature; a property given as None (`party`, `observed_at`) or ... is left out."""
    props: dict[str, Any] = {"party": party, "observed_at": observed_at, **properties}
    if party is None:
        del props["party"]
    if observed_at is None:
        del props["observed_at"]
    feature: dict[str, Any] = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": _present(props),
    }
    if id is not None:
        feature["id"] = id
    return feature


def zone_feature(
    zone_id: str,
    lon: float = 46.0,
    lat: float = 39.0,
    size: float = 0.1,
    *,
    ring: list[list[float]] | None = None,
    valid_from: Any = "2020-01-01T00:00:00+00:00",
    authorized: list[str] | None = None,
    **properties: Any,
) -> dict[str, Any]:
    """A buffer zone Feature: a square with its south-west corner at (lon, lat), or `ring`.

    Keywords set (or, given as ..., leave out) any property.
    """
    if ring is None:
        ring = [
            [lon, lat],
            [lon + size, lat],
            [lon + size, lat + size],
            [lon, lat + size],
            [lon, lat],
        ]
    return {
        "type": "Feature",
        "id": zone_id,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": _present(
            {
                "name": f"Zone {zone_id}",
                "kind": "buffer",
                "valid_from": valid_from,
                "authorized_parties": authorized if authorized is not None else ["RU-PK"],
                **properties,
            }
        ),
    }


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    """A FeatureCollection of the features."""
    return {"type": "FeatureCollection", "features": list(features)}


def _present(properties: dict[str, Any]) -> dict[str, Any]:
    """The properties without those given as ... (for tests of a missing property)."""
    return {key: value for key, value in properties.items() if value is not ...}
