"""The map's season kept up to date: judging every stored report (what a zone or party change
costs) against advancing the judged season by the reports written since (what a new report,
a correction or a retraction costs), with peak memory.

    .venv/bin/python bench/bench_season.py                      # 1e5 and 1e6, SQLite
    .venv/bin/python bench/bench_season.py --sizes 1e5 --store postgis
    .venv/bin/python bench/bench_season.py --sizes 1e6 --data /tmp/seasons  # keep the databases

For each size: a database with the sample scenario and `n` seeded reports (`bench_map`'s
season: 30 days of March 2022, a fifth from 160 units), then, in a fresh Python process per
size (so one size's heap does not inflate the next one's figures):

1. **judge**: `season_from_service` with an empty cache: read every report as columns, judge
   them all, lay the season out (`--judge-repeat` times, median);
2. **advance**: `--batch` new reports stored (units among them, times over the month, so they
   land all over the season, not only at its end), then `season_from_service` with the
   judged season in the cache: read the feed, judge the new reports, merge, lay out again
   (`--repeat` times, each with a batch of its own; median);
3. **live**: `--batch` reports after the season's last one, a tenth of them from 8 units (a
   feed arriving as it is observed), then the advance (`--repeat` times, median);
4. **correct and retract**: `--batch` / 10 corrections and as many retractions, then the
   advance.

Peak memory is the process's highest resident set size during the stage (Linux VmHWM, reset
through `/proc/self/clear_refs`) minus its resident size at the stage's start. The load
average is printed at the start and the end: numbers are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.bench_map import PARTIES, season_columns, season_reports, seed_database  # noqa: E402


def _memory() -> tuple[int, int]:
    """(resident, peak resident) of this process, in KiB."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def _stage(run: Any) -> tuple[float, float, Any]:
    """(seconds, peak ΔRSS MiB, result) of `run()`."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS
    before, _ = _memory()
    began = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - began
    _, peak = _memory()
    return seconds, (peak - before) / 1024, result


def _batch(k: int, n: int, size: int) -> list[Any]:
    """`size` new reports (ids of their own), times and places drawn like the season's."""
    columns = season_columns(size, seed=1000 + k)
    reports = season_reports(columns, 0, size)
    return [replace(r, id=f"new-{k}-{r.id}") for r in reports]


def measure(url: str, repeat: int, judge_repeat: int, batch: int) -> dict[str, Any]:
    """The stages above on the database at `url` (run in a process of its own)."""
    from app.mapview.seasons import SeasonCache
    from app.mapview.sources import season_from_service
    from app.service import Service
    from app.store import open_store

    store = open_store(url)
    service = Service(store)
    service.index()  # the zone index is built once per zone change, not per season
    result: dict[str, Any] = {"reports": store.count_reports()}
    judged = []
    cache = SeasonCache()
    for _ in range(judge_repeat):
        cache = SeasonCache()
        judged.append(_stage(lambda c=cache: season_from_service(service, c)))
    result["judge_s"] = statistics.median(s for s, _, _ in judged)
    result["judge_peak_mib"] = max(m for _, m, _ in judged)
    season = judged[-1][2]
    result["season_rss_mib"] = _memory()[0] / 1024

    advanced = []
    for k in range(repeat):
        store.add_reports(_batch(k, len(season.t), batch), "bench")
        advanced.append(_stage(lambda: season_from_service(service, cache)))
    result["advance_s"] = statistics.median(s for s, _, _ in advanced)
    result["advance_worst_s"] = max(s for s, _, _ in advanced)
    result["advance_peak_mib"] = max(m for _, m, _ in advanced)
    season = advanced[-1][2]

    # Live: reports arriving after the season's last one, from a few units (a feed of the
    # day), so the units touched are few.
    live = []
    for k in range(repeat):
        batch_k = _batch(100 + k, 0, batch)
        late = season.model.reports["observed_at"].max() + timedelta(minutes=1 + k)
        batch_k = [
            replace(
                r,
                observed_at=late + timedelta(seconds=j),
                unit=None if j % 10 else f"unit-{j % 80}",
                party=r.party if j % 10 else PARTIES[(j % 80) % len(PARTIES)],
            )
            for j, r in enumerate(batch_k)
        ]
        store.add_reports(batch_k, "bench")
        live.append(_stage(lambda: season_from_service(service, cache)))
    result["live_s"] = statistics.median(s for s, _, _ in live)
    result["live_peak_mib"] = max(m for _, m, _ in live)
    season = live[-1][2]

    # Corrections (moved by an hour and 100 m) and retractions of reports already judged.
    rng = np.random.default_rng(3)
    ids = season.model.reports["id"].to_numpy(object)
    picked = rng.choice(len(ids), 2 * max(1, batch // 10), replace=False)
    half = len(picked) // 2
    for i in picked[:half]:
        report = store.get_report(str(ids[i])).report
        moved = replace(
            report, lon=report.lon + 0.001, observed_at=report.observed_at + timedelta(hours=1)
        )
        store.correct_report(moved, "bench")
    for i in picked[half:]:
        store.retract_report(str(ids[i]), "bench", "bench")
    seconds, peak, season = _stage(lambda: season_from_service(service, cache))
    assert cache.judged == 1 and cache.advanced == 2 * repeat + 1, (cache.judged, cache.advanced)
    result["correct_s"] = seconds
    result["correct_peak_mib"] = peak
    result["final_reports"] = len(season.t)
    store.close()
    return result


def _database(kind: str, n: int, data: Path) -> str:
    """A database of the scenario and `n` reports (made once per `data` dir), copied for a
    run; its URL."""
    seeded = data / f"season-{n}.db"
    if not seeded.exists():
        print(f"  seeding {n:,} reports ...", flush=True)
        seed_database(seeded, n)
    if kind == "sqlite":
        copy = data / f"run-{n}.db"
        shutil.copyfile(seeded, copy)
        return f"sqlite:///{copy}"
    from app.store.copy import copy_sqlite_to_postgis
    from app.store.postgis import PostGISStore
    from tests.postgis import create_database

    admin = os.environ.get(
        "TRUCE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    target = create_database(f"truce_bench_season_{n}", admin)
    store = PostGISStore(target, listen=False)
    try:
        copy_sqlite_to_postgis(seeded, store)
    finally:
        store.close()
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5,1e6", help="comma-separated report counts")
    parser.add_argument("--store", choices=["sqlite", "postgis"], default="sqlite")
    parser.add_argument("--batch", type=int, default=1000, help="new reports per advance")
    parser.add_argument("--repeat", type=int, default=5, help="advances per size")
    parser.add_argument("--judge-repeat", type=int, default=0, help="judgements (0: 3, 1 at 1e6)")
    parser.add_argument("--data", type=Path, help="keep the seeded databases here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        url, repeat, judge_repeat, batch = json.loads(args.child)
        print(json.dumps(measure(url, repeat, judge_repeat, batch)))
        return

    print(f"load average at start: {os.getloadavg()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        for size in args.sizes.split(","):
            n = int(float(size))
            url = _database(args.store, n, data)
            judge_repeat = args.judge_repeat or (1 if n >= 500_000 else 3)
            child = json.dumps([url, args.repeat, judge_repeat, args.batch])
            done = subprocess.run(
                [sys.executable, __file__, "--child", child],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if args.store == "postgis":
                from tests.postgis import drop_database

                drop_database(f"truce_bench_season_{n}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result.update(size=n, store=args.store, batch=args.batch)
            results.append(result)
            print(json.dumps(result), flush=True)
    print(f"load average at end: {os.getloadavg()}")
    print()
    print(
        "| store | reports | judge whole s | peak ΔRSS MiB | season RSS MiB "
        f"| advance by {args.batch:,} s (median, worst) | peak ΔRSS MiB "
        "| ratio | live: at the end, 8 units s | corrections + retractions s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['store']} | {r['size']:,} | {r['judge_s']:.2f} | {r['judge_peak_mib']:.0f} "
            f"| {r['season_rss_mib']:.0f} | {r['advance_s']:.3f} ({r['advance_worst_s']:.3f}) "
            f"| {r['advance_peak_mib']:.0f} | {r['judge_s'] / r['advance_s']:.0f}× "
            f"| {r['live_s']:.3f} ({r['judge_s'] / r['live_s']:.0f}×) | {r['correct_s']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
