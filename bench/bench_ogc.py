"""OGC API – Features over a season: what a GIS client pays to read 1e5 reports from Truce.

    .venv/bin/python bench/bench_ogc.py                  # 100,000 reports, repeat 3
    .venv/bin/python bench/bench_ogc.py --reports 20000 --repeat 1

Stores the founding scenario and a seeded season of reports in a temporary SQLite database,
starts one real uvicorn on loopback (public read), and times, each `--repeat` times (medians):

- walking every report through the `next` links of `/collections/reports/items` (pages of
  10,000, with `numberMatched` on each) against the baseline, the same walk through the native
  `GET /reports` cursor, in the same run;
- the same with a CQL2 filter pushed to the store (`party = 'AZE' AND kind IN (...)`), against
  the native `GET /reports?party=AZE` walk filtered by kind in the client;
- GDAL's OAPIF driver (pyogrio) reading the whole collection, and with the filter as `-where`;
- parsing a filter (`app.cql.parse_filter`), per call.

Prints medians in seconds and the ratios to the baselines. Figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyogrio

from app.cql import parse_filter
from app.domain import Report, ReportKind
from app.ogc.collections import ReportsCollection
from app.service import Service
from app.store import SQLiteStore

REPO = Path(__file__).resolve().parents[1]
FILTER = "party = 'AZE' AND kind IN ('troops', 'vehicle')"


def season(n: int, seed: int = 5) -> list[Report]:
    """`n` reports over the scenario's region in March 2022, of every kind and four parties."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(46.2, 47.2, n)
    lat = rng.uniform(39.5, 40.5, n)
    minutes = np.sort(rng.integers(0, 30 * 24 * 60, n))
    t0 = datetime(2022, 3, 1, tzinfo=UTC)
    kinds = list(ReportKind)
    return [
        Report(
            id=f"season-{i:07d}",
            party=("AZE", "ARM", "NK", "RU-PK")[i % 4],
            observed_at=t0 + timedelta(minutes=int(minutes[i])),
            lon=float(lon[i]),
            lat=float(lat[i]),
            uncertainty_m=float(rng.uniform(0, 1500)),
            kind=kinds[i % len(kinds)],
        )
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(db: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update({"TRUCE_DATABASE_URL": f"sqlite:///{db}", "TRUCE_PUBLIC_READ": "true"})
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.api.main:create_app_from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=out, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(log.read_text())


def walk(http: httpx.Client, url: str, keep: Callable[[dict[str, Any]], bool] | None = None) -> int:
    """Follow `next` links from `url`; how many features were kept."""
    count = 0
    next_url: str | None = url
    while next_url:
        body = http.get(next_url).raise_for_status().json()
        features = body["features"]
        count += len(features) if keep is None else sum(keep(f) for f in features)
        link = next((x["href"] for x in body["links"] if x["rel"] == "next"), None)
        # The native feed stops when a page comes back short.
        next_url = link if link and features else None
    return count


def median_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    """Fill a database, serve it, time the walks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "truce.sqlite"
        t = time.perf_counter()
        with SQLiteStore(db) as store:
            Service(store).load_scenario()
            store.add_reports(season(args.reports), "bench")
            total = store.count_reports()
        print(f"stored {total:,} reports in {time.perf_counter() - t:.1f} s")
        queryables = ReportsCollection.queryables
        per_parse, _ = median_time(
            lambda: [parse_filter(FILTER, queryables) for _ in range(1000)], 3
        )
        print(f"parse_filter: {per_parse / 1000 * 1e6:.0f} µs per filter")
        url, process = start(db, Path(tmp) / "uvicorn.log")
        try:
            with httpx.Client(base_url=url, timeout=300) as http:
                # Once through both first: the file cache and the server warm up for either.
                walk(http, "/reports?limit=10000")
                walk(http, "/collections/reports/items?limit=10000")
                rows = []
                native, n1 = median_time(lambda: walk(http, "/reports?limit=10000"), args.repeat)
                ogc, n2 = median_time(
                    lambda: walk(http, "/collections/reports/items?limit=10000"), args.repeat
                )
                assert n1 == n2 == total, (n1, n2, total)
                rows.append(("every report, native GET /reports (baseline)", native, n1, 1.0))
                rows.append(("every report, OGC items + next links", ogc, n2, ogc / native))
                wanted = {"troops", "vehicle"}
                native_f, m1 = median_time(
                    lambda: walk(
                        http,
                        "/reports?limit=10000&party=AZE",
                        lambda f: f["properties"]["kind"] in wanted,
                    ),
                    args.repeat,
                )
                query = httpx.QueryParams({"limit": 10000, "filter": FILTER})
                ogc_f, m2 = median_time(
                    lambda: walk(http, f"/collections/reports/items?{query}"), args.repeat
                )
                assert m1 == m2, (m1, m2)
                rows.append(("filtered, native party + client kind (baseline)", native_f, m1, 1.0))
                rows.append(("filtered, OGC CQL2 in the store", ogc_f, m2, ogc_f / native_f))
                gdal, g1 = median_time(
                    lambda: len(pyogrio.read_dataframe(f"OAPIF:{url}/", layer="reports")),
                    args.repeat,
                )
                rows.append(("GDAL OAPIF, whole collection", gdal, g1, gdal / native))
                gdal_f, g2 = median_time(
                    lambda: len(
                        pyogrio.read_dataframe(
                            f"OAPIF:{url}/",
                            layer="reports",
                            where="party = 'AZE' AND (kind = 'troops' OR kind = 'vehicle')",
                        )
                    ),
                    args.repeat,
                )
                assert g1 == total and g2 == m1, (g1, g2)
                rows.append(("GDAL OAPIF, -where sent as CQL text", gdal_f, g2, gdal_f / native_f))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    print(f"\n{'walk':<52} {'median s':>9} {'features':>9} {'ratio':>7}")
    for name, seconds, count, ratio in rows:
        print(f"{name:<52} {seconds:>9.2f} {count:>9,} {ratio:>7.2f}")


if __name__ == "__main__":
    main()
