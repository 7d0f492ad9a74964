"""The map of a season in a real headless Chromium: `/map` (data fetched by view) and the
standalone file (`truce map --out`), against the old inline map (every report in the page)
measured in the same run.

    .venv/bin/python bench/bench_map.py --sizes 1e5          # new and old map, 1e5 reports
    .venv/bin/python bench/bench_map.py --sizes 1e6 --no-old  # 1e6, the new map only

For each size: a SQLite database with the sample scenario and `n` seeded reports (30 days of
March 2022 around the scenario's zones; a fifth from 160 units moving by random walk, the rest
spread over the region), a uvicorn server (one worker, public reads) in its own process, and
Debian's Chromium driven by Playwright. Measured per map: bytes transferred at first load (the
page, scripts and data as sent, compressed), first contentful paint, time to interactive
(`window.truce` ready and its first view's data drawn), 20 slider moves (median and worst:
set a step, wait for the data and a frame), 5 zooms in and 5 out by 3 levels (median and worst,
each from a view not seen before), 10 pans, the JS heap
after a garbage collection, the server's CPU seconds for one load; and `/check` p99 alone and
while 4 clients load the map (page and first view) over and over. The ratio columns divide the
old inline map's figure by the new one's, at the same size.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402

from app.domain import Report, ReportKind  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
START = datetime(2022, 3, 1, tzinfo=UTC)
DAYS = 30
UNITS = 160
PARTIES = ("AZE", "ARM", "NK", "RU-PK")
REGION = (46.2, 39.5, 47.4, 40.5)  # around the scenario's zones
SLIDER_MOVES = 20
OLD_SLIDER_MOVES = 5  # a move of the old map takes seconds: fewer of them
ZOOMS = 5  # zooms in and out, each from a view not seen before


# -- the workload ----------------------------------------------------------------------------


def season_columns(n: int, seed: int = 11) -> dict[str, np.ndarray]:
    """`n` reports over 30 days as columns, in time order: a fifth from 160 units (each a
    random walk from a point of the region), the rest uniform over it; uncertainty 0, 100, 500
    or 1,500 m."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, DAYS * 86400, n))
    lon = rng.uniform(REGION[0], REGION[2], n)
    lat = rng.uniform(REGION[1], REGION[3], n)
    unit = np.where(rng.random(n) < 0.2, rng.integers(0, UNITS, n), -1)
    start_lon = rng.uniform(46.5, 47.1, UNITS)
    start_lat = rng.uniform(39.7, 40.3, UNITS)
    for u in range(UNITS):
        rows = np.flatnonzero(unit == u)
        steps = rng.normal(0, 0.004, (len(rows), 2)).cumsum(axis=0)
        lon[rows] = start_lon[u] + steps[:, 0]
        lat[rows] = start_lat[u] + steps[:, 1]
    party = rng.integers(0, len(PARTIES), n)
    party[unit >= 0] = unit[unit >= 0] % len(PARTIES)
    u_m = rng.choice([0.0, 100.0, 500.0, 1500.0], n)
    return {"t": t, "lon": lon, "lat": lat, "unit": unit, "party": party, "u": u_m}


def season_reports(columns: dict[str, np.ndarray], lo: int, hi: int) -> list[Report]:
    """Rows lo..hi of `season_columns` as reports (made a batch at a time: 1e6 `Report`s at
    once would take a few GB)."""
    kinds = list(ReportKind)
    c = columns
    return [
        Report(
            id=f"s{i}",
            party=PARTIES[int(c["party"][i])],
            observed_at=START + timedelta(seconds=int(c["t"][i])),
            lon=float(c["lon"][i]),
            lat=float(c["lat"][i]),
            uncertainty_m=float(c["u"][i]),
            kind=kinds[i % len(kinds)],
            unit=f"unit-{int(c['unit'][i])}" if c["unit"][i] >= 0 else None,
            source=("OP", "drone", "press")[i % 3],
        )
        for i in range(lo, hi)
    ]


def seed_database(db: Path, n: int) -> float:
    """The scenario and `n` season reports in a new SQLite file; seconds taken."""
    from app.service import Service
    from app.store import SQLiteStore

    began = time.perf_counter()
    with SQLiteStore(db) as store:
        Service(store).load_scenario()
        columns = season_columns(n)
        batch = 50_000
        for lo in range(0, n, batch):
            store.add_reports(season_reports(columns, lo, min(n, lo + batch)), "bench")
    return time.perf_counter() - began


# -- the server: the app with the old inline map as a baseline route ------------------------


def create_map_bench_app() -> FastAPI:
    """The app (settings from TRUCE_*), with `GET /old-map`: the map as it was before data by
    view, every report of the range judged and written into the page (the baseline)."""
    from app.api import map as map_api
    from app.api.main import create_app
    from app.mapview import MapQuery, map_data_from_service, map_html, prepare
    from app.settings import Settings

    app = create_app(Settings())

    @app.get("/old-map", include_in_schema=False)
    def old_map(request: Request) -> HTMLResponse:
        service = request.app.state.service
        data, _ = map_data_from_service(service)
        page = map_html(prepare(data, MapQuery()), title="Truce map (inline baseline)")
        return HTMLResponse(
            page,
            headers={"Content-Security-Policy": map_api.content_security_policy(None)},
        )

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """utime + stime of the server process."""
        with open(f"/proc/{self.process.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def start_server(db: Path, log: Path) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update(
        TRUCE_DATABASE_URL=f"sqlite:///{db}",
        TRUCE_PUBLIC_READ="true",
        TRUCE_API_KEYS="bench-admin-key-000000:admin",
        PYTHONPATH=str(ROOT),
    )
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench.bench_map:create_map_bench_app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        with suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return Server(process, port)
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


# -- the browser -------------------------------------------------------------------------------

#: Resolves when map.js has what the view asks for (new map), or at once (old map), then
#: after one more frame (drawn).
SETTLED = """async () => {
    const t = window.truce;
    while (t.loading && t.loading()) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
}"""


def timed(page: Any, action: str) -> float:
    """Milliseconds from running `action` in the page to the map settled and drawn."""
    ms: float = page.evaluate(
        f"""async () => {{
            const t0 = performance.now();
            {action};
            await ({SETTLED})();
            return performance.now() - t0;
        }}"""
    )
    return ms


def measure_map(
    browser: Any, url: str, *, moves: int, offline: bool, server: Server | None
) -> dict[str, Any]:
    """One map in a fresh context (no cache): the figures of the module docstring."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    if offline:
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("file:", "data:"))
                else route.abort()
            ),
        )
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    transferred = [0]
    cdp.on(
        "Network.loadingFinished",
        lambda e: transferred.__setitem__(0, transferred[0] + e["encodedDataLength"]),
    )
    cpu0 = server.cpu() if server else 0.0
    began = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=900_000)
    page.wait_for_function("() => window.truce !== undefined", timeout=900_000, polling=20)
    page.evaluate(SETTLED)
    interactive = (time.perf_counter() - began) * 1000
    first_load = transferred[0]  # what the first view took, before any move
    cpu_load = (server.cpu() - cpu0) if server else 0.0
    paint = page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"
    )
    if offline:
        first_load = Path(url.removeprefix("file://")).stat().st_size
    steps = page.evaluate("window.truce.steps.length")
    rng = np.random.default_rng(5)
    slider = [timed(page, f"window.truce.setStep({int(k)})") for k in rng.integers(0, steps, moves)]
    page.evaluate("window.truce.setStep(window.truce.steps.length - 1)")
    page.evaluate(SETTLED)
    # Zooms by 3 levels, in and out, each from a view of its own (a random centre in the
    # zones' area): a view seen before would be drawn from the answers the page keeps.
    base = int(page.evaluate("window.truce.map.getZoom()"))
    centre = page.evaluate("[window.truce.map.getCenter().lat, window.truce.map.getCenter().lng]")
    spots = np.column_stack(
        [rng.uniform(39.75, 40.25, 2 * ZOOMS), rng.uniform(46.5, 47.1, 2 * ZOOMS)]
    )
    zoom_in: list[float] = []
    zoom_out: list[float] = []
    for k in range(ZOOMS):
        for (lat, lon), start, delta, into in (
            (spots[2 * k], base, 3, zoom_in),
            (spots[2 * k + 1], base + 3, -3, zoom_out),
        ):
            page.evaluate(
                f"() => {{ window.truce.map.setView([{lat}, {lon}], {start}, "
                "{animate: false}); }"
            )
            page.evaluate(SETTLED)
            into.append(
                timed(page, f"window.truce.map.setZoom({start + delta}, {{animate: false}})")
            )
    page.evaluate(
        f"() => {{ window.truce.map.setView([{centre[0]}, {centre[1]}], {base + 3}, "
        "{animate: false}); }"
    )
    page.evaluate(SETTLED)
    pans = [timed(page, "window.truce.map.panBy([250, 120], {animate: false})") for _ in range(10)]
    cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")["usedSize"]
    context.close()
    return {
        "first_load_mb": first_load / 1e6,
        "first_paint_ms": paint,
        "interactive_ms": interactive,
        "slider_median_ms": statistics.median(slider),
        "slider_worst_ms": max(slider),
        "zoom_in_ms": statistics.median(zoom_in),
        "zoom_in_worst_ms": max(zoom_in),
        "zoom_out_ms": statistics.median(zoom_out),
        "zoom_out_worst_ms": max(zoom_out),
        "pan_median_ms": statistics.median(pans),
        "heap_mb": heap / 1e6,
        "server_cpu_s": cpu_load if server else None,
    }


# -- /check under map loads ------------------------------------------------------------------


def check_p99(server: Server, seconds: float, loaders: int) -> float:
    """p99 of single /check requests (one after another) while `loaders` clients fetch the
    map page and its first view's data in a loop."""
    body = json.dumps(
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [46.8, 40.0]},
         "properties": {"party": "AZE", "observed_at": "2022-03-20T10:00:00Z"}}
    ).encode()  # fmt: skip
    stop = threading.Event()

    def load() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        paths = ["/map", "/map/data/cells?zoom=9&bbox=46.2,39.5,47.4,40.5",
                 "/map/data/tracks?zoom=9&bbox=46.2,39.5,47.4,40.5"]  # fmt: skip
        while not stop.is_set():
            for path in paths:
                conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
                conn.getresponse().read()

    threads = [threading.Thread(target=load, daemon=True) for _ in range(loaders)]
    for thread in threads:
        thread.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        conn.request("POST", "/check", body=body, headers={"Content-Type": "application/geo+json"})
        conn.getresponse().read()
        latencies.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join(timeout=300)
    return float(np.percentile(latencies, 99))


# -- the run -----------------------------------------------------------------------------------


def write_standalone(db: Path, out: Path) -> float:
    """`truce map --out` of the database; seconds taken."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from app.cli import cli; cli()", "map", "--out", str(out),
         "--no-progress", "--database-url", f"sqlite:///{db}"],
        cwd=ROOT, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return time.perf_counter() - began


def run_size(
    n: int, workdir: Path, *, old: bool, playwright: Any, file: bool = True
) -> dict[str, Any]:
    db = workdir / f"season-{n}.sqlite"
    print(f"\n== {n:,} reports: seeding ...", flush=True)
    print(f"   seeded in {seed_database(db, n):.0f} s", flush=True)
    server = start_server(db, workdir / f"server-{n}.log")
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"]
    )
    results: dict[str, Any] = {"n": n}
    try:
        # The first request judges the season (kept until a write): not part of a page load.
        began = time.perf_counter()
        with suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=900)
            conn.request("GET", "/map/data/cells?zoom=8")
            conn.getresponse().read()
        results["season_judged_s"] = time.perf_counter() - began
        results["map"] = measure_map(
            browser, f"{server.url}/map", moves=SLIDER_MOVES, offline=False, server=server
        )
        print("   /map", json.dumps(results["map"]), flush=True)
        results["check_p99_alone_ms"] = check_p99(server, 8, 0)
        results["check_p99_4_maps_ms"] = check_p99(server, 15, 4)
        print(f"   /check p99 alone {results['check_p99_alone_ms']:.1f} ms, "
              f"with 4 map loads {results['check_p99_4_maps_ms']:.1f} ms", flush=True)  # fmt: skip
        out = workdir / f"season-{n}.html"
        if not file:
            return results
        results["standalone_write_s"] = write_standalone(db, out)
        results["standalone"] = measure_map(
            browser, out.as_uri(), moves=SLIDER_MOVES, offline=True, server=None
        )
        print("   file", json.dumps(results["standalone"]), flush=True)
        if old:
            results["old"] = measure_map(
                browser,
                f"{server.url}/old-map",
                moves=OLD_SLIDER_MOVES,
                offline=False,
                server=server,
            )
            print("   old inline map", json.dumps(results["old"]), flush=True)
    finally:
        browser.close()
        server.stop()
    return results


def print_table(results: list[dict[str, Any]]) -> None:
    rows = [
        ("first load (MB)", "first_load_mb"),
        ("first paint (ms)", "first_paint_ms"),
        ("interactive (ms)", "interactive_ms"),
        ("slider median (ms)", "slider_median_ms"),
        ("slider worst (ms)", "slider_worst_ms"),
        ("zoom in median (ms)", "zoom_in_ms"),
        ("zoom in worst (ms)", "zoom_in_worst_ms"),
        ("zoom out median (ms)", "zoom_out_ms"),
        ("zoom out worst (ms)", "zoom_out_worst_ms"),
        ("pan median (ms)", "pan_median_ms"),
        ("heap (MB)", "heap_mb"),
        ("server CPU per load (s)", "server_cpu_s"),
    ]
    for r in results:
        written = r.get("standalone_write_s")
        print(f"\n### {r['n']:,} reports (season judged once in {r['season_judged_s']:.1f} s"
              + (f"; file written in {written:.1f} s)" if written else ")"))  # fmt: skip
        head = "| | /map | file |" + (" old inline /map | old / new |" if "old" in r else "")
        print(head)
        print("|---" * (head.count("|") - 1) + "|")
        for label, key in rows:
            new = r["map"][key]
            file = r["standalone"][key] if "standalone" in r else None
            line = f"| {label} | {_fmt(new)} | {_fmt(file)} |"
            if "old" in r:
                old = r["old"][key]
                ratio = old / new if old and new else None
                line += f" {_fmt(old)} | {'' if ratio is None else f'{ratio:.1f}x'} |"
            print(line)
        print(f"\n/check p99: {r['check_p99_alone_ms']:.1f} ms alone, "
              f"{r['check_p99_4_maps_ms']:.1f} ms while 4 clients load the map")  # fmt: skip


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.2f}" if value < 10 else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5", help="comma-separated report counts")
    parser.add_argument("--no-old", action="store_true", help="skip the old inline map")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--no-file", action="store_true", help="skip the standalone file (made for 1e5)"
    )
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(f"load average at start: {os.getloadavg()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        for size in args.sizes.split(","):
            n = int(float(size))
            results.append(
                run_size(
                    n,
                    Path(tmp),
                    old=not args.no_old and n <= 100_000,
                    playwright=playwright,
                    file=not args.no_file,
                )
            )
    print(f"\nload average at end: {os.getloadavg()}")
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
