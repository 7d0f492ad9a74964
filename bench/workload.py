"""A seeded, synthetic workload for the engine benchmark: zones and report positions.

Everything is generated in memory from a seed, vectorised with numpy; nothing is cached on disk.

Zones: 200 non-convex star-shaped polygons of 500-5,000 vertices each (radius = a few random
harmonics plus per-vertex noise), about a quarter with a round hole, about a fifth multipolygons of
two or three parts, spread over about 300 x 300 km around 40 N 46.5 E (Karabakh and the Kura
valley). The region runs from about 44.74 E to 48.26 E, so it crosses the UTM 38/39 border at 48 E;
three zones are centred on that meridian so that they straddle it. Validity periods, kinds and
authorized parties vary; `warning_distance_m` is 1,000 m everywhere.

Reports: `n` positions, 12 % drawn from the zones' interiors (a zone part chosen with probability
proportional to the square root of its area, then a uniform angle and an area-uniform radius inside
the star's inscribed radius at that angle, outside the hole) and 88 % uniform over the region's
lon/lat box, of which about 9 % land in some zone: about 20 % of the positions lie in at least one
zone. Timestamps are tz-aware (UTC) and uniform over 2021-2023, so most zones are in force at any
report; parties come from a small set; `uncertainty_m` is 0 for a fifth of the reports and uniform
on 0-500 m for the rest.

Geometry is built in a local kilometre frame at each part's centre and mapped to lon/lat by an
affine map (km per degree at the part's latitude), which keeps each part star-shaped, so every
polygon is valid by construction and interior sampling needs no point-in-polygon test.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

if __package__ in (None, ""):  # run as a script or imported from bench/: make `app` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain import Zone, ZoneKind

CENTRE_LON = 46.5
CENTRE_LAT = 40.0
HALF_SIZE_KM = 150.0
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320
UTM_EPSG = 32638  # UTM zone 38N (42-48 E): the zone of the workload's centre
UTM_BORDER_LON = 48.0

N_ZONES = 200
MIN_VERTICES = 500
MAX_VERTICES = 5000
HOLE_VERTICES = 64
MIN_PART_VERTICES = 100
WARNING_DISTANCE_M = 1000.0
INTERIOR_FRACTION = 0.12

PARTIES = np.array(["AZE", "ARM", "NK", "RU-PK", "TR"], dtype=object)
PARTY_WEIGHTS = np.array([0.35, 0.30, 0.15, 0.15, 0.05])
OBSERVED_FROM = pd.Timestamp("2021-01-01T00:00:00Z")
OBSERVED_TO = pd.Timestamp("2024-01-01T00:00:00Z")
CEASEFIRE = pd.Timestamp("2020-11-10T00:00:00Z")

_KINDS = list(ZoneKind)
_AUTHORIZED: dict[ZoneKind, list[frozenset[str]]] = {
    ZoneKind.PEACEKEEPING: [frozenset({"RU-PK"})],
    ZoneKind.BUFFER: [frozenset()],
    ZoneKind.DEMILITARIZED: [frozenset()],
    ZoneKind.CORRIDOR: [frozenset({"RU-PK"}), frozenset({"RU-PK", "ARM"})],
    ZoneKind.CONTROL: [frozenset({"AZE"}), frozenset({"ARM", "NK"})],
    ZoneKind.EXCLUSION: [frozenset(), frozenset({"RU-PK"})],
}


def region_bounds() -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of the 300 x 300 km region."""
    dlon = HALF_SIZE_KM / (KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(CENTRE_LAT)))
    dlat = HALF_SIZE_KM / KM_PER_DEG_LAT
    return CENTRE_LON - dlon, CENTRE_LAT - dlat, CENTRE_LON + dlon, CENTRE_LAT + dlat


@dataclass(frozen=True)
class _Part:
    """One star-shaped polygon part, in a local km frame around (lon, lat)."""

    lon: float
    lat: float
    angles: np.ndarray  # closed: angles[0] == 0, angles[-1] == 2 pi
    radii_km: np.ndarray  # closed: radii[-1] == radii[0]
    hole_km: float  # radius of the round hole around the centre, 0 for none
    inner_km: np.ndarray  # inscribed radius on each edge's angular sector

    @property
    def km_per_deg_lon(self) -> float:
        return KM_PER_DEG_LON_EQUATOR * float(np.cos(np.radians(self.lat)))

    def to_lonlat(self, x_km: np.ndarray, y_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lon + x_km / self.km_per_deg_lon, self.lat + y_km / KM_PER_DEG_LAT

    def polygon(self) -> shapely.Polygon:
        r, a = self.radii_km, self.angles
        lon, lat = self.to_lonlat(r * np.cos(a), r * np.sin(a))
        shell = np.column_stack([lon, lat])
        if self.hole_km <= 0:
            return shapely.Polygon(shell)
        t = np.linspace(2 * np.pi, 0.0, HOLE_VERTICES + 1)  # clockwise, closed
        hlon, hlat = self.to_lonlat(self.hole_km * np.cos(t), self.hole_km * np.sin(t))
        return shapely.Polygon(shell, [np.column_stack([hlon, hlat])])

    @property
    def area_km2(self) -> float:
        r, d = self.radii_km, np.diff(self.angles)
        return float(0.5 * np.sum(r[:-1] * r[1:] * np.sin(d)) - np.pi * self.hole_km**2)


def _star_part(rng: np.random.Generator, lon: float, lat: float, r0_km: float, n: int) -> _Part:
    """A non-convex star of `n` vertices with mean radius about `r0_km`."""
    step = 2 * np.pi / n
    angles = step * np.arange(n + 1)
    angles[1:n] += rng.uniform(-0.35, 0.35, n - 1) * step  # stays strictly increasing
    theta = angles[:n]
    harmonics = np.arange(2, 8)
    amplitude = rng.uniform(0.0, 0.12, harmonics.size) / np.sqrt(harmonics - 1)
    phase = rng.uniform(0, 2 * np.pi, harmonics.size)
    shape = 1.0 + (amplitude * np.cos(np.outer(theta, harmonics) + phase)).sum(axis=1)
    # rough, correlated noise along the outline (a random walk pulled back to zero) plus jitter
    walk = np.cumsum(rng.normal(0.0, 0.02, n))
    walk -= np.linspace(0.0, walk[-1], n)
    noise = walk - walk.mean() + rng.uniform(-0.05, 0.05, n)
    radii = r0_km * np.clip(shape + noise, 0.35, None)
    radii = np.append(radii, radii[0])
    inner = np.minimum(radii[:-1], radii[1:]) * np.cos(np.diff(angles) / 2)
    return _Part(lon, lat, angles, radii, 0.0, inner)


def _zone_parts(rng: np.random.Generator, lon: float, lat: float, r0_km: float) -> list[_Part]:
    """One to three star parts whose vertex counts add up to 500-5,000; maybe a hole in each."""
    total = int(np.exp(rng.uniform(np.log(MIN_VERTICES + 3), np.log(MAX_VERTICES))))
    n_parts = 1 if rng.random() >= 0.2 else int(rng.integers(2, 4))
    has_hole = rng.random() < 0.25
    shares = rng.dirichlet(np.full(n_parts, 4.0))
    parts: list[_Part] = []
    direction = rng.uniform(0, 2 * np.pi)
    offset_km, previous_max = 0.0, 0.0
    ring_overhead = 1 + (HOLE_VERTICES + 1 if has_hole else 0)  # closing vertex, hole ring
    spare = total - n_parts * (ring_overhead + MIN_PART_VERTICES)
    for k in range(n_parts):
        n = MIN_PART_VERTICES + int(spare * shares[k])
        r_k = r0_km if n_parts == 1 else r0_km * rng.uniform(0.45, 0.8)
        probe = _star_part(rng, 0.0, 0.0, r_k, n)
        if k > 0:
            offset_km += 1.1 * (previous_max + probe.radii_km.max())
        previous_max = float(probe.radii_km.max())
        dx, dy = offset_km * np.cos(direction), offset_km * np.sin(direction)
        plat = lat + dy / KM_PER_DEG_LAT
        plon = lon + dx / (KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat)))
        hole = 0.0
        if has_hole:
            hole = float(rng.uniform(0.15, 0.35) * probe.inner_km.min())
        parts.append(_Part(plon, plat, probe.angles, probe.radii_km, hole, probe.inner_km))
    return parts


@dataclass(frozen=True)
class Workload:
    """The zones of the benchmark and what is needed to draw report positions for them."""

    seed: int
    zones: list[Zone]
    parts: list[_Part]
    part_zone: np.ndarray  # the zone index of each part

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return region_bounds()

    @property
    def vertex_counts(self) -> np.ndarray:
        return np.array([shapely.get_num_coordinates(z.geometry) for z in self.zones])

    def reports(self, n: int, seed: int | None = None) -> pd.DataFrame:
        """`n` reports: id, lon, lat, observed_at (UTC), party, uncertainty_m."""
        rng = np.random.default_rng([self.seed if seed is None else seed, n, 1])
        n_in = int(round(INTERIOR_FRACTION * n))
        lon_in, lat_in = self._interior(rng, n_in)
        minx, miny, maxx, maxy = region_bounds()
        lon = np.concatenate([lon_in, rng.uniform(minx, maxx, n - n_in)])
        lat = np.concatenate([lat_in, rng.uniform(miny, maxy, n - n_in)])
        order = rng.permutation(n)
        t0, t1 = OBSERVED_FROM.value, OBSERVED_TO.value
        ns = rng.integers(t0, t1, n, dtype=np.int64)
        uncertainty = rng.uniform(0.0, 500.0, n)
        uncertainty[rng.random(n) < 0.2] = 0.0
        party = PARTIES[rng.choice(PARTIES.size, n, p=PARTY_WEIGHTS)]
        return pd.DataFrame(
            {
                "id": pd.RangeIndex(n).astype(str),
                "lon": lon[order],
                "lat": lat[order],
                "observed_at": pd.to_datetime(ns, utc=True),
                "party": party,
                "uncertainty_m": uncertainty,
            }
        )

    def _interior(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` points strictly inside zone parts, none in a hole (no geometry tests needed)."""
        weights = np.sqrt([p.area_km2 for p in self.parts])
        which = rng.choice(len(self.parts), n, p=weights / weights.sum())
        lon, lat = np.empty(n), np.empty(n)
        u_angle, u_radius = rng.uniform(0, 2 * np.pi, n), rng.random(n)
        for k in np.unique(which):
            part = self.parts[k]
            sel = np.flatnonzero(which == k)
            a = u_angle[sel]
            edge = np.searchsorted(part.angles, a, side="right") - 1
            inner = part.inner_km[edge] * 0.999
            hole = part.hole_km * 1.001
            r = np.sqrt(hole**2 + u_radius[sel] * (inner**2 - hole**2))
            lon[sel], lat[sel] = part.to_lonlat(r * np.cos(a), r * np.sin(a))
        return lon, lat


def _validity(rng: np.random.Generator) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """70 % from the ceasefire on, the rest from a date in 2021-mid 2023; a quarter end later."""
    if rng.random() < 0.7:
        start = CEASEFIRE
    else:
        span = (pd.Timestamp("2023-06-01T00:00:00Z") - OBSERVED_FROM).days
        start = OBSERVED_FROM + pd.Timedelta(days=int(rng.integers(0, span)))
    end = None
    if rng.random() < 0.25:
        end = start + pd.Timedelta(days=int(rng.integers(180, 900)))
    return start, end


def build_workload(seed: int = 20201110, n_zones: int = N_ZONES) -> Workload:
    """The seeded zones (and the parts to sample report positions from)."""
    rng = np.random.default_rng([seed, 0])
    minx, miny, maxx, maxy = region_bounds()
    zones: list[Zone] = []
    parts: list[_Part] = []
    part_zone: list[int] = []
    for i in range(n_zones):
        r0 = float(np.exp(rng.uniform(np.log(1.0), np.log(8.0))))
        if i < 3:  # straddle the UTM 38/39 border
            lon = UTM_BORDER_LON + rng.uniform(-0.02, 0.02)
            lat = rng.uniform(miny + 0.3, maxy - 0.3)
            r0 = max(r0, 3.0)
        else:
            lon, lat = rng.uniform(minx + 0.1, maxx - 0.1), rng.uniform(miny + 0.1, maxy - 0.1)
        zone_parts = _zone_parts(rng, float(lon), float(lat), r0)
        polygons = [p.polygon() for p in zone_parts]
        geometry = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
        kind = _KINDS[int(rng.integers(len(_KINDS)))]
        options = _AUTHORIZED[kind]
        start, end = _validity(rng)
        zones.append(
            Zone(
                id=f"Z{i:03d}",
                name=f"{kind.value.title()} zone {i}",
                kind=kind,
                geometry=geometry,
                valid_from=start.to_pydatetime(),
                valid_to=None if end is None else end.to_pydatetime(),
                authorized_parties=options[int(rng.integers(len(options)))],
                warning_distance_m=WARNING_DISTANCE_M,
                agreement="synthetic benchmark workload",
                source=f"bench/workload.py seed {seed}",
            )
        )
        parts.extend(zone_parts)
        part_zone.extend([i] * len(zone_parts))
    return Workload(seed, zones, parts, np.array(part_zone))


if __name__ == "__main__":
    import time

    t = time.perf_counter()
    w = build_workload()
    print(f"zones: {len(w.zones)} in {time.perf_counter() - t:.2f} s")
    counts = w.vertex_counts
    geoms = np.array([z.geometry for z in w.zones])
    print(f"  vertices: min {counts.min()} max {counts.max()} total {counts.sum()}")
    multi = sum(isinstance(g, shapely.MultiPolygon) for g in geoms)
    holes = int((shapely.get_num_interior_rings(shapely.get_parts(geoms)) > 0).sum())
    print(f"  valid: {shapely.is_valid(geoms).all()}  multipolygons: {multi}  holed parts: {holes}")
    b = shapely.bounds(geoms)
    print(f"  crossing 48E: {int(((b[:, 0] < 48) & (b[:, 2] > 48)).sum())}")
    for n in (10_000, 100_000, 1_000_000):
        t = time.perf_counter()
        df = w.reports(n)
        dt = time.perf_counter() - t
        tree = shapely.STRtree(geoms)
        pts = shapely.points(df["lon"].to_numpy(), df["lat"].to_numpy())
        idx = tree.query(pts, predicate="intersects")
        inside = np.unique(idx[0]).size / n
        print(f"reports {n}: {dt:.2f} s, in some zone {inside:.1%}, pairs {idx.shape[1]}")
