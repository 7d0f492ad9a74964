"""Tracks over a season: 1e5 reports of 160 units walking around the founding scenario's zones.

    .venv/bin/python bench/bench_tracks.py               # 100,000 reports, 160 units
    .venv/bin/python bench/bench_tracks.py --reports 20000 --units 40

Stores the season in a temporary SQLite database with the scenario's zones, then times
`Service.tracks` (what `GET /tracks` runs: read every report with a unit, judge it, states per
zone) split into its stages, and `Service.track` for one unit. Figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from app.batch import ReportBatch
from app.domain import Report
from app.service import Service
from app.store import SQLiteStore, iter_report_pages
from app.tracks import track_events, track_summary

CENTRE = (46.8, 39.9)  # in the zone of responsibility, near its eastern edge


def season(n: int, units: int, seed: int = 11) -> list[Report]:
    """Random walks of `units` units, one report every ~30 minutes each, from March 2022."""
    rng = np.random.default_rng(seed)
    per = n // units
    steps = rng.normal(0.0, 0.004, size=(units, per, 2))  # ~350 m steps
    start = rng.normal(0.0, 0.15, size=(units, 1, 2)) + np.array(CENTRE)
    walk = start + np.cumsum(steps, axis=1)
    t0 = datetime(2022, 3, 1, tzinfo=UTC)
    reports = []
    for u in range(units):
        party = ("AZE", "ARM", "NK", "RU-PK")[u % 4]
        for i in range(per):
            reports.append(
                Report(
                    id=f"u{u}-{i}",
                    party=party,
                    observed_at=t0 + timedelta(minutes=30 * i + u),
                    lon=float(walk[u, i, 0]),
                    lat=float(walk[u, i, 1]),
                    uncertainty_m=float(rng.uniform(0, 1500)),
                    unit=f"unit-{u}",
                )
            )
    return reports


def main() -> None:
    """Store the season and time the stages of `GET /tracks`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=160)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "t.sqlite") as store:
        service = Service(store)
        service.load_scenario()
        reports = season(args.reports, args.units)
        for i in range(0, len(reports), 10_000):
            store.add_reports(reports[i : i + 10_000], "bench")
        service.index()

        t = time.perf_counter()
        stored = [r for page in iter_report_pages(store) for r in page if r.unit is not None]
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        frame = ReportBatch.from_reports(stored).frame()
        findings = service.index().check(frame)
        judge_s = time.perf_counter() - t
        t = time.perf_counter()
        now, stale = datetime.now(UTC), timedelta(hours=24)
        events = track_events(
            frame, findings, zones=service.index().zones, now=now, stale_after=stale
        )
        summary = track_summary(frame, findings, now=now, stale_after=stale)
        core_s = time.perf_counter() - t
        t = time.perf_counter()
        units = service.tracks(stale_after=stale)
        whole_s = time.perf_counter() - t
        t = time.perf_counter()
        service.track("AZE", "unit-0", stale_after=stale)
        one_s = time.perf_counter() - t

    kinds = events["kind"].value_counts().to_dict()
    print(f"{len(stored):,} reports, {len(units)} units, {len(findings):,} findings")
    print(f"events: {kinds}; summary rows: {len(summary)}")
    print(
        f"read {read_s:.2f} s, judge {judge_s:.2f} s, tracks core (events+summary) {core_s:.2f} s"
    )
    print(f"Service.tracks (GET /tracks) {whole_s:.2f} s; Service.track one unit {one_s:.3f} s")


if __name__ == "__main__":
    main()
