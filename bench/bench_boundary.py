"""Benchmark: what zone boundary uncertainty costs the engine.

    .venv/bin/python bench/bench_boundary.py [--reports 1e5] [--repeat 5]

The benchmark workload (bench/workload.py: 200 zones of 500-5,000 vertices, reports over the
region) is judged twice in the same run, alternating, each time by a fresh `ZoneIndex`:

- baseline "exact lines": every zone's `boundary_uncertainty_m` is 0 (the rule before zones
  carried the field);
- "uncertain lines": every zone carries 2,000 m (the sample scenario's zone of responsibility).

u = report + zone uncertainty is one array addition per zone; what costs more is that wider
uncertainty discs widen each zone's candidate box and the distance up to which points outside
must be measured. Prints medians, the ratio to the baseline, and how the verdicts moved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import ZoneIndex
from bench.workload import build_workload

BOUNDARY_M = 2000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=float, default=1e5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workload = build_workload()
    frame = workload.reports(int(args.reports))
    variants = {
        "exact lines (baseline)": [replace(z, boundary_uncertainty_m=0.0) for z in workload.zones],
        "uncertain lines (2 km)": [
            replace(z, boundary_uncertainty_m=BOUNDARY_M) for z in workload.zones
        ],
    }
    indexes = {name: ZoneIndex(zones) for name, zones in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    found = {}
    for _ in range(args.repeat):
        for name, index in indexes.items():  # alternating, so that load hits both alike
            start = time.perf_counter()
            found[name] = index.check(frame)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["exact lines (baseline)"])
    print(f"{len(frame):,} reports x {len(workload.zones)} zones, median of {args.repeat}")
    for name, runs in times.items():
        median = statistics.median(runs)
        counts = found[name]["verdict"].value_counts().to_dict()
        print(f"  {name:24s} {median:7.3f} s  x{median / base:5.2f}  verdicts {counts}")


if __name__ == "__main__":
    main()
