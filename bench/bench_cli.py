"""`truce check` on a CSV of reports beside a plain geopandas script doing the same.

    .venv/bin/python bench/bench_cli.py                    # 1e6 reports, 3 runs each
    .venv/bin/python bench/bench_cli.py --rows 1e5 --repeat 1
    .venv/bin/python bench/bench_cli.py --out-format csv   # both write CSV instead of GPKG

The 200 zones of `bench/workload.py` are written to a GeoPackage and the reports (id, lon, lat,
observed_at as ISO 8601 UTC, party, uncertainty_m) to a CSV in a temporary directory. Then, one
after another, each in a fresh Python process (so neither inherits the other's heap):

- **truce**: `truce check reports.csv --zones zones.gpkg --out findings.gpkg`, as an analyst runs
  it (progress bars on, stderr to a pipe): reading and validating the CSV, validating the zones,
  the full rule (validity periods, geodesic depth, uncertainty, approaching, parties), the swap
  check, the summary tables and the findings file;
- **geopandas**: `pandas.read_csv`, `geopandas.points_from_xy`, `geopandas.read_file` of the
  zones, `geopandas.sjoin(points, zones, predicate="intersects")`, `to_file` of the hits. It
  answers much less (containment only: no validity periods, depths, uncertainty, approaching or
  parties) and validates nothing.

Wall time is measured around the child process; peak memory is the child's `ru_maxrss` from
`os.wait4`. The table gives the median wall time and the worst peak over the runs, and the ratios
(geopandas / truce: above 1 means truce is faster or smaller).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workload import build_workload  # noqa: E402

GEOPANDAS_SCRIPT = """
import sys
import geopandas as gpd
import pandas as pd

reports, zones, out = sys.argv[1:4]
frame = pd.read_csv(reports)
points = gpd.GeoDataFrame(
    frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326"
)
polygons = gpd.read_file(zones)
hits = gpd.sjoin(points, polygons, predicate="intersects")
if out.endswith(".csv"):
    hits.drop(columns="geometry").to_csv(out, index=False)
else:
    hits.to_file(out)
print(len(hits))
"""


def truce_command() -> list[str]:
    """`truce`, as the console script runs it."""
    return [sys.executable, "-c", "from app.cli import main; main()"]


def run(command: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MiB, exit status, stderr tail) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, child.returncode, errors[-2000:]


def prepare(directory: Path, rows: int, seed: int) -> tuple[Path, Path]:
    from app.io import write_zones

    workload = build_workload(seed)
    zones = directory / "zones.gpkg"
    write_zones(workload.zones, zones)
    frame = workload.reports(rows)
    frame["observed_at"] = frame["observed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    reports = directory / "reports.csv"
    frame.to_csv(reports, index=False)
    return zones, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20201110)
    parser.add_argument("--out-format", choices=("gpkg", "csv"), default="gpkg")
    args = parser.parse_args()
    rows = int(args.rows)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores; other work skews times)")
    with tempfile.TemporaryDirectory(prefix="truce-bench-") as tmp:
        directory = Path(tmp)
        t = time.perf_counter()
        zones, reports = prepare(directory, rows, args.seed)
        size = reports.stat().st_size / 2**20
        print(
            f"workload: 200 zones, {rows:,} reports ({size:,.0f} MiB CSV) in "
            f"{time.perf_counter() - t:.1f} s"
        )
        suffix = f".{args.out_format}"
        truce = truce_command() + [
            "check",
            str(reports),
            "--zones",
            str(zones),
            "--out",
            str(directory / f"findings{suffix}"),
        ]
        script = directory / "baseline.py"
        script.write_text(GEOPANDAS_SCRIPT)
        baseline = [
            sys.executable,
            str(script),
            str(reports),
            str(zones),
            str(directory / f"hits{suffix}"),
        ]
        results: dict[str, list[tuple[float, float]]] = {"truce": [], "geopandas": []}
        for i in range(args.repeat):
            for name, command in (("truce", truce), ("geopandas", baseline)):
                for leftover in directory.glob(f"*{suffix}"):
                    if leftover.name != zones.name:
                        leftover.unlink()
                wall, peak, status, errors = run(command)
                if status != 0:
                    sys.exit(f"{name} failed with status {status}:\n{errors}")
                results[name].append((wall, peak))
                print(f"  run {i + 1} {name:9s} {wall:7.2f} s  {peak:7.0f} MiB")
    print()
    print(f"{'method':10s} {'median s':>9s} {'rows/s':>12s} {'peak MiB':>9s}")
    summary = {}
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        peak = max(p for _, p in runs)
        summary[name] = (wall, peak)
        print(f"{name:10s} {wall:9.2f} {rows / wall:12,.0f} {peak:9.0f}")
    speed = summary["geopandas"][0] / summary["truce"][0]
    memory = summary["geopandas"][1] / summary["truce"][1]
    print()
    print(
        f"speed  (geopandas s / truce s):     {speed:.2f}x  "
        f"({'met' if speed >= 1 else 'NOT met'}: target >= 1)"
    )
    print(
        f"memory (geopandas MiB / truce MiB): {memory:.2f}x  "
        f"({'met' if memory >= 1 else 'NOT met'}: target >= 1)"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
