"""Benchmark: the engine's full verdicts against what an analyst does today with geopandas.

    .venv/bin/python bench/bench_engine.py [--sizes 1e4,1e5,1e6] [--repeat 3]

For each size, three workers run one after the other, each in a fresh subprocess (so that one
method's heap does not inflate another's memory figures, and no two compete for the 2 cores):

- engine: `ZoneIndex(zones)` (index build) then `index.check(df)` (every verdict rule);
- geopandas: GeoDataFrame construction from the arrays, `sjoin(..., predicate="intersects")`,
  `to_crs` of the hits and of the zones to UTM 38N, vectorised `shapely.distance` from each hit to
  its zone's boundary. It answers less (containment and depth of inside points only: no validity,
  parties, uncertainty or approaching) and less accurately (one fixed projection);
- shapely loop: `for p in points: for z in zones: z.covers(p)` plus the UTM distance of each hit,
  on a sample of 2,000 positions, extrapolated to positions/s.

Then, for a seeded sample of 500 (report, zone) pairs where the report lies in the zone, the
engine's depth and the geopandas UTM depth are compared with a geodesic reference computed here
(independent of app/): the minimum of `pyproj.Geod.inv` over densely sampled points of the nearest
few boundary edges, zooming in three times on the best sample.

Memory: "peak ΔRSS" is the highest resident set size reached during a stage minus the resident set
size at its start (Linux VmHWM, reset through /proc/self/clear_refs before each stage); a pipeline's
total is its highest point over all its stages minus the resident size before its first stage.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workload import UTM_EPSG, Workload, build_workload  # noqa: E402

DEFAULT_SEED = 20201110
LOOP_SAMPLE = 2000
ACCURACY_SAMPLE = 500
RESULT_PREFIX = "BENCH-RESULT "
MIB = 1024 * 1024
# thread pools of the native libraries (numpy's OpenBLAS; pykdtree's OpenMP, which the engine
# keeps at one thread and replaces with its own pool of threads over zones)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------------------------
# measuring


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _can_reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Recorder:
    """Wall time, CPU time (all threads) and peak RSS growth of named stages, per repeat."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, list[float]]] = {}
        self.reset_peak = _can_reset_peak()
        self._pipeline: list[tuple[int, int]] = []  # (rss at stage start, peak during stage)

    def start_pipeline(self) -> None:
        gc.collect()
        self._pipeline = []
        self._pipeline_rss0 = _proc_status_kib("VmRSS") * 1024

    def end_pipeline(self, name: str, parts: list[str]) -> None:
        rec = self.stages.setdefault(name, {"wall": [], "cpu": [], "peak": []})
        rec["wall"].append(sum(self.stages[p]["wall"][-1] for p in parts))
        rec["cpu"].append(sum(self.stages[p]["cpu"][-1] for p in parts))
        top = max(rss0 + peak for rss0, peak in self._pipeline)
        rec["peak"].append(float(top - self._pipeline_rss0))

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        gc.collect()
        if self.reset_peak:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            rss0 = _proc_status_kib("VmRSS") * 1024
        else:  # a high-water mark that only ever grows: the delta is a lower bound
            rss0 = _proc_status_kib("VmHWM") * 1024
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        t1, c1 = time.perf_counter(), time.process_time()
        peak = max(_proc_status_kib("VmHWM") * 1024 - rss0, 0)
        rec = self.stages.setdefault(name, {"wall": [], "cpu": [], "peak": []})
        rec["wall"].append(t1 - t0)
        rec["cpu"].append(c1 - c0)
        rec["peak"].append(float(peak))
        self._pipeline.append((rss0, peak))
        return out


# --------------------------------------------------------------------------------------------
# workers (each runs in its own subprocess)


def _workload(seed: int, n: int) -> tuple[Workload, pd.DataFrame, float]:
    t0 = time.perf_counter()
    workload = build_workload(seed)
    reports = workload.reports(n)
    return workload, reports, time.perf_counter() - t0


def _in_force(workload: Workload, zone: np.ndarray, observed_at: pd.Series) -> np.ndarray:
    far = np.iinfo(np.int64).max
    start = np.array([pd.Timestamp(z.valid_from).value for z in workload.zones], dtype=np.int64)
    end = np.array(
        [far if z.valid_to is None else pd.Timestamp(z.valid_to).value for z in workload.zones],
        dtype=np.int64,
    )
    t = pd.DatetimeIndex(observed_at).as_unit("ns").asi8
    return (start[zone] <= t) & (t < end[zone])


def _engine_source() -> str:
    """A short hash of the engine's sources as imported (app/*.py), to tell versions apart."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "app").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def worker_engine(seed: int, n: int, repeat: int, _: Any) -> dict[str, Any]:
    source = _engine_source()
    from app.engine import ZoneIndex

    workload, df, gen_s = _workload(seed, n)
    zones = workload.zones
    threads = int(os.environ.get("BENCH_ENGINE_THREADS", "0")) or None  # None: the engine's own
    rec = Recorder()
    findings = pd.DataFrame()
    for _ in range(repeat):
        del findings
        rec.start_pipeline()
        index = rec("index build", lambda: ZoneIndex(zones, threads=threads))
        findings = rec("check", lambda index=index: index.check(df))
        rec.end_pipeline("total", ["index build", "check"])
        del index
    in_zone = findings[findings["depth_m"] >= 0]
    rng = np.random.default_rng([seed, n, 2])
    pick = np.sort(rng.choice(len(in_zone), min(ACCURACY_SAMPLE, len(in_zone)), replace=False))
    sample = in_zone.iloc[pick]
    report = sample["report"].to_numpy()
    return {
        "workload_s": gen_s,
        "engine_source": source,
        "stages": rec.stages,
        "peak_reset": rec.reset_peak,
        "process_peak_mib": _proc_status_kib("VmHWM") / 1024,
        "rows": len(findings),
        "verdicts": findings["verdict"].value_counts().to_dict(),
        "violations": int(findings["violation"].sum()),
        "in_zone_pairs": len(in_zone),
        "sample": {
            "report": report.tolist(),
            "zone": sample["zone"].to_numpy().tolist(),
            "lon": df["lon"].to_numpy()[report].tolist(),
            "lat": df["lat"].to_numpy()[report].tolist(),
            "depth_m": sample["depth_m"].to_numpy().tolist(),
        },
    }


def worker_geopandas(seed: int, n: int, repeat: int, sample: Any) -> dict[str, Any]:
    import geopandas as gpd

    workload, df, gen_s = _workload(seed, n)
    zones = workload.zones
    rec = Recorder()

    def construct() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
        zones_gdf = gpd.GeoDataFrame(
            {"zone_id": [z.id for z in zones], "zone_name": [z.name for z in zones]},
            geometry=[z.geometry for z in zones],
            crs="EPSG:4326",
        )
        points = gpd.GeoDataFrame(
            df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326"
        )
        return points, zones_gdf

    def reproject(hits: gpd.GeoDataFrame, zones_gdf: gpd.GeoDataFrame) -> tuple[Any, Any]:
        return hits.geometry.to_crs(UTM_EPSG), zones_gdf.to_crs(UTM_EPSG)

    def depth(hits: gpd.GeoDataFrame, hit_points: Any, zones_utm: Any) -> np.ndarray:
        boundaries = zones_utm.geometry.boundary.to_numpy()[hits["index_right"].to_numpy()]
        return shapely.distance(hit_points.to_numpy(), boundaries)

    hits = depths = None
    for _ in range(repeat):
        del hits, depths
        rec.start_pipeline()
        points, zones_gdf = rec("GeoDataFrame construction", construct)
        hits = rec(
            "sjoin",
            lambda p=points, z=zones_gdf: gpd.sjoin(p, z, predicate="intersects"),
        )
        hit_points, zones_utm = rec("to_crs", lambda h=hits, z=zones_gdf: reproject(h, z))
        depths = rec(
            "distance",
            lambda h=hits, p=hit_points, z=zones_utm: depth(h, p, z),
        )
        rec.end_pipeline("total", ["GeoDataFrame construction", "sjoin", "to_crs", "distance"])
        del points, zones_gdf, hit_points, zones_utm

    report = hits.index.to_numpy()
    zone = hits["index_right"].to_numpy()
    in_force = _in_force(workload, zone, df["observed_at"].iloc[report])
    by_pair = pd.Series(depths, index=pd.MultiIndex.from_arrays([report, zone]))
    wanted = pd.MultiIndex.from_arrays([sample["report"], sample["zone"]])
    return {
        "workload_s": gen_s,
        "stages": rec.stages,
        "peak_reset": rec.reset_peak,
        "process_peak_mib": _proc_status_kib("VmHWM") / 1024,
        "pairs": len(hits),
        "points_in_some_zone": int(np.unique(report).size),
        "pairs_in_force": int(in_force.sum()),
        "sample_depth_m": by_pair.reindex(wanted).to_numpy().tolist(),
    }


def worker_loop(seed: int, n: int, repeat: int, _: Any) -> dict[str, Any]:
    from pyproj import Transformer
    from shapely.geometry import Point
    from shapely.ops import transform

    workload, df, gen_s = _workload(seed, n)
    rng = np.random.default_rng([seed, n, 3])
    pick = rng.choice(n, min(LOOP_SAMPLE, n), replace=False)
    lons, lats = df["lon"].to_numpy()[pick].tolist(), df["lat"].to_numpy()[pick].tolist()
    zones = [z.geometry for z in workload.zones]
    rec = Recorder()

    def setup() -> tuple[Transformer, list[Any]]:
        to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{UTM_EPSG}", always_xy=True)
        return to_utm, [transform(to_utm.transform, z).boundary for z in zones]

    def loop(to_utm: Transformer, boundaries: list[Any]) -> list[float]:
        depths = []
        for lon, lat in zip(lons, lats, strict=True):
            p = Point(lon, lat)
            for j, z in enumerate(zones):
                if z.covers(p):
                    x, y = to_utm.transform(lon, lat)
                    depths.append(boundaries[j].distance(Point(x, y)))
        return depths

    depths: list[float] = []
    for _ in range(repeat):
        rec.start_pipeline()
        to_utm, boundaries = rec("setup (zones to UTM)", setup)
        depths = rec(
            f"loop ({len(pick):,} positions)",
            lambda t=to_utm, b=boundaries: loop(t, b),
        )
        rec.end_pipeline("total", ["setup (zones to UTM)", f"loop ({len(pick):,} positions)"])
    return {
        "workload_s": gen_s,
        "stages": rec.stages,
        "peak_reset": rec.reset_peak,
        "process_peak_mib": _proc_status_kib("VmHWM") / 1024,
        "sample": len(pick),
        "pairs": len(depths),
    }


WORKERS = {"engine": worker_engine, "geopandas": worker_geopandas, "loop": worker_loop}


def run_worker(
    name: str, seed: int, n: int, repeat: int, payload: Any = None, threads: int | None = None
) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and return what it reported."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
    cmd += ["--sizes", str(n), "--repeat", str(repeat), "--seed", str(seed)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if threads:
        env["BENCH_ENGINE_THREADS"] = str(threads)
        for var in THREAD_VARS:
            env[var] = str(threads)
    done = subprocess.run(
        cmd, input=json.dumps(payload), capture_output=True, text=True, env=env, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(f"worker {name} at {n} failed ({done.returncode}):\n{done.stderr}")


# --------------------------------------------------------------------------------------------
# geodesic reference (independent of app/)


class GeodesicReference:
    """Geodesic distance (WGS84) from a point to a zone's boundary, edges straight in lon/lat."""

    def __init__(self, zones: list[Any], nearest: int = 8, samples: int = 65, zooms: int = 3):
        from pyproj import Geod

        self.geod = Geod(ellps="WGS84")
        self.zones = zones
        self.nearest, self.samples, self.zooms = nearest, samples, zooms
        self._segments: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def segments(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        if j not in self._segments:
            rings = shapely.get_rings(shapely.get_parts(self.zones[j].geometry))
            coords = [shapely.get_coordinates(r) for r in rings]
            a = np.concatenate([c[:-1] for c in coords])
            b = np.concatenate([c[1:] for c in coords])
            self._segments[j] = (a, b)
        return self._segments[j]

    def _dist(self, lon: float, lat: float, plon: np.ndarray, plat: np.ndarray) -> np.ndarray:
        size = plon.size
        _, _, d = self.geod.inv(np.full(size, lon), np.full(size, lat), plon.ravel(), plat.ravel())
        return np.asarray(d).reshape(plon.shape)

    def distance(self, lon: float, lat: float, j: int) -> float:
        a, b = self.segments(j)
        # rank edges by a local flat approximation (only used to pick candidates)
        kx, ky = 111.32 * np.cos(np.radians(lat)), 110.574
        ax, ay = (a[:, 0] - lon) * kx, (a[:, 1] - lat) * ky
        dx, dy = (b[:, 0] - a[:, 0]) * kx, (b[:, 1] - a[:, 1]) * ky
        t = np.clip(-(ax * dx + ay * dy) / np.maximum(dx * dx + dy * dy, 1e-300), 0.0, 1.0)
        flat = np.hypot(ax + t * dx, ay + t * dy)
        k = min(self.nearest, flat.size)
        near = np.argpartition(flat, k - 1)[:k]
        a, b = a[near], b[near]
        ts = np.linspace(0.0, 1.0, self.samples)
        d = self._dist(
            lon,
            lat,
            a[:, :1] + ts * (b[:, :1] - a[:, :1]),
            a[:, 1:] + ts * (b[:, 1:] - a[:, 1:]),
        )
        i, m = np.unravel_index(np.argmin(d), d.shape)
        best = float(d[i, m])
        step = ts[1] - ts[0]
        centre = ts[m]
        for _ in range(self.zooms):  # zoom in around the best sample of the best edge
            lo, hi = max(centre - step, 0.0), min(centre + step, 1.0)
            tz = np.linspace(lo, hi, self.samples)
            dz = self._dist(
                lon,
                lat,
                a[i, 0] + tz * (b[i, 0] - a[i, 0]),
                a[i, 1] + tz * (b[i, 1] - a[i, 1]),
            )
            m = int(np.argmin(dz))
            best = min(best, float(dz[m]))
            centre, step = tz[m], tz[1] - tz[0]
        return best


def accuracy(workload: Workload, engine: dict[str, Any], gpd_depths: list[float]) -> dict:
    s = engine["sample"]
    ref_model = GeodesicReference(workload.zones)
    ref = np.array(
        [
            ref_model.distance(lon, lat, j)
            for lon, lat, j in zip(s["lon"], s["lat"], s["zone"], strict=True)
        ]
    )
    out = {}
    for name, got in (("engine", s["depth_m"]), ("geopandas (UTM 38N)", gpd_depths)):
        got = np.asarray(got, dtype=float)
        ok = np.isfinite(got)
        err = np.abs(got[ok] - ref[ok])
        tolerance = np.maximum(0.5, 1e-3 * ref[ok])
        out[name] = {
            "pairs": int(ok.sum()),
            "missing": int((~ok).sum()),
            "max": float(err.max()) if err.size else float("nan"),
            "median": float(np.median(err)) if err.size else float("nan"),
            "max_rel": float((err / np.maximum(ref[ok], 1e-9)).max()) if err.size else np.nan,
            "over_tolerance": int((err > tolerance).sum()),
            "ref_median": float(np.median(ref)),
        }
    return out


# --------------------------------------------------------------------------------------------
# report


def _fmt_rate(x: float) -> str:
    if not np.isfinite(x):
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def _median(stage: dict[str, list[float]], key: str) -> float:
    return statistics.median(stage[key])


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    note = ""
    if one > (os.cpu_count() or 1) - 0.5:
        note = " [yellow](other processes compete for the CPUs: timings are pessimistic)[/yellow]"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}{note}"


def _size_label(n: int) -> str:
    e = int(np.log10(n))
    return f"1e{e}" if 10**e == n else f"{n:,}"


def print_size(console: Any, n: int, res: dict[str, Any], acc: dict, repeat: int) -> dict:
    from rich.table import Table

    eng, gp, lp = res["engine"], res["geopandas"], res["loop"]
    table = Table(
        title=f"{_size_label(n)} positions ({n:,}), median of {repeat}",
        title_justify="left",
    )
    for col, just in (
        ("method / stage", "left"),
        ("median s", "right"),
        ("positions/s", "right"),
        ("CPU/wall", "right"),
        ("peak ΔRSS MiB", "right"),
        ("output", "right"),
    ):
        table.add_column(col, justify=just)

    def row(label: str, stage: dict, positions: float | None, out: str = "", bold=False) -> float:
        wall = _median(stage, "wall")
        cpu = _median(stage, "cpu")
        rate = positions / wall if positions else float("nan")
        style = "bold" if bold else None
        table.add_row(
            label,
            f"{wall:.3f}",
            _fmt_rate(rate),
            f"{cpu / wall:.2f}" if wall > 0 else "—",
            f"{max(stage['peak']) / MIB:.0f}",
            out,
            style=style,
        )
        return rate

    st = eng["stages"]
    v = eng["verdicts"]
    row("engine: ZoneIndex(zones) build", st["index build"], None)
    row("engine: index.check(df)", st["check"], n, f"{eng['rows']:,} rows")
    engine_rate = row(
        "engine total",
        st["total"],
        n,
        f"{eng['in_zone_pairs']:,} in-zone",
        bold=True,
    )
    table.add_section()
    st = gp["stages"]
    row("geopandas: GeoDataFrame construction", st["GeoDataFrame construction"], n)
    row("geopandas: sjoin(predicate=intersects)", st["sjoin"], n, f"{gp['pairs']:,} hits")
    row("geopandas: to_crs (hits, zones)", st["to_crs"], n)
    row("geopandas: shapely.distance to boundary", st["distance"], n)
    gpd_rate = row("geopandas total", st["total"], n, f"{gp['pairs']:,} hits", bold=True)
    table.add_section()
    st = lp["stages"]
    loop_name = next(k for k in st if k.startswith("loop"))
    row("shapely loop: setup (zones to UTM)", st["setup (zones to UTM)"], None)
    loop_rate = row(
        f"shapely loop: {loop_name}",
        st[loop_name],
        lp["sample"],
        f"{lp['pairs']:,} hits",
        bold=True,
    )
    console.print(table)

    check_only = n / _median(eng["stages"]["check"], "wall")
    gp_no_build = n / sum(_median(gp["stages"][k], "wall") for k in ("sjoin", "to_crs", "distance"))
    ratio = engine_rate / gpd_rate
    console.print(
        f"  engine / geopandas, end to end (build + check vs construction + sjoin + to_crs + "
        f"distance): [bold]{ratio:.2f}×[/bold]; check only vs sjoin + to_crs + distance: "
        f"{check_only / gp_no_build:.2f}×; engine / shapely loop (extrapolated): "
        f"{engine_rate / loop_rate:.1f}×"
    )
    cpu_ratio = _median(gp["stages"]["total"], "cpu") / _median(eng["stages"]["total"], "cpu")
    console.print(
        f"  per CPU-second (all threads; the engine spreads zones over threads, geopandas one "
        f"thread): engine / geopandas {cpu_ratio:.2f}×"
    )
    console.print(
        f"  engine rows: inside {v.get('inside', 0):,}, possible {v.get('possible', 0):,}, "
        f"approaching {v.get('approaching', 0):,}; violations {eng['violations']:,}; in-zone "
        f"pairs (depth ≥ 0, zones in force) {eng['in_zone_pairs']:,} vs geopandas hits in force "
        f"{gp['pairs_in_force']:,} (all {gp['pairs']:,}); positions in some zone "
        f"{gp['points_in_some_zone'] / n:.1%}"
    )
    console.print(
        f"  process peak RSS: engine {eng['process_peak_mib']:.0f} MiB, geopandas "
        f"{gp['process_peak_mib']:.0f} MiB, loop {lp['process_peak_mib']:.0f} MiB; workload "
        f"generation {eng['workload_s']:.2f} s; engine sources (app/*.py) {eng['engine_source']}"
        + ("" if eng["peak_reset"] else " [yellow](peak ΔRSS: ru_maxrss deltas, lower bounds)")
    )

    acc_table = Table(
        title=f"{_size_label(n)}: depth error against the geodesic reference "
        f"(median reference depth {acc['engine']['ref_median']:.0f} m)",
        title_justify="left",
    )
    for col in (
        "method",
        "pairs",
        "max abs err m",
        "median abs err m",
        "max rel err",
        "> max(0.5 m, 0.1 %)",
    ):
        acc_table.add_column(col, justify="left" if col == "method" else "right")
    for name, a in acc.items():
        missing = f" (+{a['missing']} missing)" if a["missing"] else ""
        acc_table.add_row(
            name,
            f"{a['pairs']}{missing}",
            f"{a['max']:.4f}",
            f"{a['median']:.4f}",
            f"{a['max_rel']:.2e}",
            str(a["over_tolerance"]),
        )
    console.print(acc_table)
    return {"n": n, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6", help="comma-separated, e.g. 1e4,1e5")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; medians shown")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--threads",
        type=int,
        help="cap the native thread pools (OMP_NUM_THREADS etc.) of every worker, e.g. 1",
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]

    if args.worker:
        payload = json.loads(sys.stdin.read() or "null")
        result = WORKERS[args.worker](args.seed, sizes[0], args.repeat, payload)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    t_start = time.perf_counter()
    workload = build_workload(args.seed)
    vertices = workload.vertex_counts
    multi = sum(isinstance(z.geometry, shapely.MultiPolygon) for z in workload.zones)
    console.print(
        f"[bold]Truce engine benchmark[/bold]: {len(workload.zones)} zones, "
        f"{vertices.min()}–{vertices.max()} vertices ({vertices.sum():,} in all, {multi} "
        f"multipolygons), seed {args.seed}, repeat {args.repeat}, {os.cpu_count()} CPUs, "
        f"threads {args.threads or 'unlimited'}, "
        f"python {sys.version.split()[0]}, shapely {shapely.__version__} "
        f"(GEOS {shapely.geos_version_string})"
    )
    console.print(f"  load average at start: {_load()}")
    summary = []
    sources: set[str] = set()
    for n in sizes:
        res: dict[str, Any] = {}
        for name in ("engine", "geopandas", "loop"):
            console.log(f"{_size_label(n)}: running {name} …")
            payload = res["engine"]["sample"] if name == "geopandas" else None
            res[name] = run_worker(name, args.seed, n, args.repeat, payload, args.threads)
        acc = accuracy(workload, res["engine"], res["geopandas"]["sample_depth_m"])
        summary.append(print_size(console, n, res, acc, args.repeat))
        sources.add(res["engine"]["engine_source"])

    for s in summary:
        if s["n"] == 1_000_000:
            verdict = "[green]met[/green]" if s["ratio"] >= 5 else "[red]NOT met[/red]"
            console.print(
                f"Target at 1e6: full verdicts ≥ 5× the geopandas baseline: {verdict} "
                f"({s['ratio']:.2f}×)"
            )
    if len(sources) > 1:
        console.print(f"[yellow]app/ changed during the run: sizes ran different engines {sources}")
    console.print(f"Load average at end: {_load()}")
    console.print(f"Whole run: {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
