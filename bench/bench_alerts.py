"""What keeping incidents costs a report write, against the same write without it, in one run.

    .venv/bin/python bench/bench_alerts.py                       # SQLite, 1e4 + 1e5, repeat 3
    .venv/bin/python bench/bench_alerts.py --stores sqlite,postgis --sizes 1e4 --repeat 1

The baseline is the same store with `keep_incidents` replaced by a function that does nothing
(the write as it was before incidents), measured in the same process, on the same workload,
alternating with the measured runs. Medians of `--repeat` runs; ratios are "with incidents" over
the baseline (above 1: slower).

1. **Batches**: N reports (bench_store's seeded positions over the founding scenario's region,
   500 units) through `add_reports` in batches of 1e4 into a store holding the scenario's
   zones; reports/s.
2. **One report of a long track**: a unit with H reports already stored (H = 100, 1,000,
   10,000), then single-report `add_reports` calls for it, as `POST /reports` from a tracker
   does; milliseconds per write. Incidents recompute the unit's whole track, so this grows
   with H.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import app.store.postgis as postgis_module  # noqa: E402
import app.store.sqlite as sqlite_module  # noqa: E402
from app.domain import Report  # noqa: E402
from app.service import Service  # noqa: E402
from app.store import Store, open_store  # noqa: E402
from bench.bench_store import BATCH, Databases, reports_of  # noqa: E402

TRACK_SIZES = (100, 1_000, 10_000)
SINGLE_WRITES = 20


@contextmanager
def without_incidents(enabled: bool) -> Iterator[None]:
    """The baseline: both stores' `keep_incidents` replaced by a no-op while `enabled`."""
    originals = (sqlite_module.keep_incidents, postgis_module.keep_incidents)
    if enabled:
        sqlite_module.keep_incidents = postgis_module.keep_incidents = lambda *a, **k: 0  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite_module.keep_incidents, postgis_module.keep_incidents = originals


def fresh(dbs: Databases, kind: str, name: str) -> Store:
    store = open_store(dbs.url(kind, name))
    Service(store).load_scenario()
    return store


def batches(dbs: Databases, kind: str, reports: list[Report], baseline: bool, *, n: int) -> float:
    store = fresh(dbs, kind, f"batch_{n}_{int(baseline)}_{time.monotonic_ns()}")
    try:
        with without_incidents(baseline):
            start = time.perf_counter()
            for i in range(0, len(reports), BATCH):
                store.add_reports(reports[i : i + BATCH], "bench")
            return len(reports) / (time.perf_counter() - start)
    finally:
        store.close()


def track(history: int, start: datetime) -> list[Report]:
    # A unit moving through the scenario's region (in and out of zones), one report a minute.
    from bench.bench_http import positions

    lon, lat, _, uncertainty, _ = positions(history + SINGLE_WRITES, 7)
    return [
        Report(
            id=f"t{i:06d}",
            party="AZE",
            observed_at=start + timedelta(minutes=i),
            lon=float(lon[i]),
            lat=float(lat[i]),
            uncertainty_m=float(uncertainty[i]),
            unit="tracker-1",
        )
        for i in range(history + SINGLE_WRITES)
    ]


def single_writes(dbs: Databases, kind: str, history: int, baseline: bool) -> float:
    reports = track(history, datetime(2022, 3, 1, tzinfo=UTC))
    store = fresh(dbs, kind, f"track_{history}_{int(baseline)}_{time.monotonic_ns()}")
    try:
        store.add_reports(reports[:history], "bench")  # the history, with its incidents
        times = []
        with without_incidents(baseline):
            for report in reports[history:]:
                start = time.perf_counter()
                store.add_reports([report], "bench")
                times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000
    finally:
        store.close()


def median_pair(
    repeat: int, run: Callable[[bool], float]
) -> tuple[float, float, list[float], list[float]]:
    measured, base = [], []
    for _ in range(repeat):  # alternating, so drift hits both alike
        base.append(run(True))
        measured.append(run(False))
    return statistics.median(measured), statistics.median(base), measured, base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgis, comma-separated")
    parser.add_argument("--sizes", default="1e4,1e5", help="reports per batch run")
    parser.add_argument("--tracks", default=",".join(map(str, TRACK_SIZES)))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    tracks = [int(float(s)) for s in args.tracks.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(args.postgres, Path(tmp))
        try:
            for kind in args.stores.split(","):
                print(f"== {kind} (baseline: the same write without incidents) ==")
                for n in sizes:
                    reports = reports_of(n)
                    with_, base, _, _ = median_pair(
                        args.repeat, partial(batches, dbs, kind, reports, n=n)
                    )
                    print(
                        f"batches of {BATCH:,}, {n:,} reports: {with_:,.0f} reports/s with "
                        f"incidents, {base:,.0f} without; time ratio {base / with_:.2f}"
                    )
                for history in tracks:
                    with_, base, _, _ = median_pair(
                        args.repeat, partial(single_writes, dbs, kind, history)
                    )
                    print(
                        f"one report of a unit with {history:,} stored: {with_:.1f} ms with "
                        f"incidents, {base:.1f} ms without (median of {SINGLE_WRITES}); "
                        f"ratio {with_ / base:.1f}"
                    )
        finally:
            dbs.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
