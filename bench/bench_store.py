"""SQLite against PostGIS, side by side, on the same workload in the same run.

    .venv/bin/python bench/bench_store.py                   # 1e5 reports, 1/2/4 processes
    .venv/bin/python bench/bench_store.py --sizes 1e5,1e6   # and 1e6 (a few minutes more)
    .venv/bin/python bench/bench_store.py --seconds 3 --skip-http

The baseline is the SQLite store (a file in a temporary directory, synchronous=FULL); PostGIS is a
fresh database on the server at `--postgres` (default: the machine's, as `postgres`), dropped at
the end. Both stores get the same seeded reports (bench_http's positions: the scenario's region,
Nov 2020 - 2023, so they spread over 38 month partitions).

1. **Storing**: N reports through `Store.add_reports` in batches of 1e4 (each batch a
   transaction: executemany in SQLite, binary COPY in PostGIS); reports/s, and the database's
   size on disk afterwards (SQLite: file + WAL; PostGIS: `pg_database_size`).
2. **Reading back**: every report through `list_reports` pages of 1e4 (binary cursors in
   PostGIS).
3. **Incursions**: `Service.incursions()` over the N stored reports against the founding
   scenario's zones: the first call reads and judges every report (the violation log), the
   second only asks the store what is new.
4. **db copy**: `truce db copy` of the SQLite store of step 1 into a new PostGIS database
   (the bulk path: months without a partition are loaded into tables without indexes and
   attached at the end, which builds their indexes by sorting); reports/s over the whole copy
   (audit, zones and keys included), and the size of that database.
5. **The floor**: the same rows, in the same batches of 1e4 (one commit each, durable), by
   binary COPY alone into a plain table of the reports' columns (no partitions, no index, no
   other table): what PostgreSQL and this client can store at all on the machine, with the
   point geometry computed (as `reports` does) and without it.
6. **HTTP throughput**: single `POST /check` and single `POST /reports` (a new id each), closed
   loop from `--clients` client processes for `--seconds`, against `truce serve` with 1, 2 and
   4 worker processes over each store. The clients share the machine's cores with the servers.

Ratios are PostGIS over SQLite (above 1: PostGIS faster), and N processes over 1.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.domain import Report  # noqa: E402
from app.service import Service  # noqa: E402
from app.store import Store, iter_report_pages, open_store  # noqa: E402
from bench.bench_http import (  # noqa: E402
    API_KEYS,
    KEYS,
    children_of,
    free_port,
    positions,
    single_check_body,
    single_report_template,
)

BATCH = 10_000
PROCESSES = (1, 2, 4)


def reports_of(n: int, seed: int = 20220324) -> list[Report]:
    lon, lat, times, uncertainty, party = positions(n, seed)
    return [
        Report(
            id=f"b{i:07d}",
            party=party[i],
            observed_at=datetime.fromisoformat(times[i]).astimezone(UTC),
            lon=float(lon[i]),
            lat=float(lat[i]),
            uncertainty_m=float(uncertainty[i]),
            unit=f"u{i % 500}",
        )
        for i in range(n)
    ]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


class Databases:
    """The two stores' databases: a SQLite file, and a PostGIS database made for the run."""

    def __init__(self, postgres: str, workdir: Path) -> None:
        self.postgres = postgres
        self.workdir = workdir
        self.made: list[str] = []

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.workdir / name}.sqlite"
        database = f"truce_bench_{name}_{os.getpid()}"
        with psycopg.connect(self.postgres, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        self.made.append(database)
        base = self.postgres.rsplit("/", 1)[0]
        return f"{base}/{database}?pool_max=16"

    def size(self, kind: str, url: str) -> int:
        if kind == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
        with psycopg.connect(url.split("?")[0]) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def drop(self) -> None:
        with psycopg.connect(self.postgres, autocommit=True) as conn:
            for database in self.made:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )


def bench_store(kind: str, url: str, reports: list[Report], dbs: Databases) -> dict[str, float]:
    store: Store = open_store(url)
    try:
        service = Service(store)
        service.load_scenario()  # the founding scenario's zones (and its 13 reports)

        def store_all() -> None:
            for start in range(0, len(reports), BATCH):
                store.add_reports(reports[start : start + BATCH], "bench")

        stored_s, _ = timed(store_all)
        read_s, count = timed(lambda: sum(len(page) for page in iter_report_pages(store)))
        first_s, found = timed(lambda: len(service.incursions()))
        again_s, _ = timed(service.incursions)
        return {
            "store_s": stored_s,
            "store_rate": len(reports) / stored_s,
            "read_s": read_s,
            "read_rate": count / read_s,
            "incursions_s": first_s,
            "incursions_again_s": again_s,
            "violations": float(found),
            "size": float(dbs.size(kind, url)),
        }
    finally:
        store.close()


def bench_copy(sqlite_url: str, dbs: Databases, name: str) -> dict[str, float]:
    """`truce db copy` of the SQLite store just filled into a new PostGIS database: the bulk
    path (months loaded without indexes, indexes built when each is attached)."""
    from app.store.copy import copy_sqlite_to_postgis
    from app.store.postgis import PostGISStore

    url = dbs.url("postgis", name)
    target = PostGISStore(url, listen=False)
    try:
        copy_s, copied = timed(
            lambda: copy_sqlite_to_postgis(Path(sqlite_url.removeprefix("sqlite:///")), target)
        )
    finally:
        target.close()
    reports = copied.rows.get("reports", 0)
    return {
        "copy_rate": reports / copy_s,
        "copy_s": copy_s,
        "size": float(dbs.size("postgis", url)),
    }


def bench_floor(reports: list[Report], dbs: Databases, name: str) -> dict[str, float]:
    """Binary COPY of the reports' rows, batches of 1e4 each committed, into plain tables
    without index: with the generated point (`geom`, as in `reports`) and without it."""
    from app.store.postgis import _COPY_TYPES, _REPORT_COLUMNS, _by_partition, _report_row

    url = dbs.url("postgis", name).split("?")[0]
    rows = [_report_row(report) for report in reports]
    rates: dict[str, float] = {}
    with psycopg.connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        columns = (
            'position bigint, id text COLLATE "C", party text, observed_at timestamptz, '
            "lon float8, lat float8, uncertainty_m float8, kind text, unit text, source text, "
            "confidence text, notes text, extra text, audit_id bigint"
        )
        conn.execute(f"CREATE TABLE bare ({columns})")
        conn.execute(
            f"CREATE TABLE bare_geom ({columns}, geom geometry(Point, 4326) GENERATED ALWAYS "
            "AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED)"
        )
        conn.commit()
        for table in ("bare", "bare_geom"):
            start = time.perf_counter()
            for first in range(0, len(rows), BATCH):
                batch = _by_partition(rows[first : first + BATCH], first + 1, 1)
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        f"COPY {table} (position, {_REPORT_COLUMNS}, audit_id) "
                        "FROM STDIN (FORMAT BINARY)"
                    ) as copy,
                ):
                    copy.set_types(_COPY_TYPES)
                    for row in batch:
                        copy.write_row(row)
                conn.commit()
            rates[table] = len(rows) / (time.perf_counter() - start)
    return rates


# -- HTTP -------------------------------------------------------------------------------------


def start_serve(url: str, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update(
        TRUCE_DATABASE_URL=url,
        TRUCE_API_KEYS=API_KEYS,
        TRUCE_LOAD_SCENARIO="true",
        PYTHONPATH=str(ROOT),
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app.api.main:create_app_from_env",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        with suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            if ok and (workers == 1 or len(children_of(process.pid)) >= workers + 1):
                time.sleep(1.0 if workers > 1 else 0.2)
                return process, port
        time.sleep(0.1)
    raise RuntimeError(f"no answer from the server:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def client(args: tuple[int, str, float, int]) -> tuple[int, int, list[float]]:
    """One closed-loop client: (answered ok, failed, latencies in ms)."""
    port, what, seconds, number = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    check = single_check_body()
    template = single_report_template()

    def body_of(i: int) -> bytes:
        if what == "check":
            return check
        return template.replace(b"__ID__", f"c{number}-{i}-{port}".encode())

    role, path = ("viewer", "/check") if what == "check" else ("observer", "/reports")
    headers = {"X-API-Key": KEYS[role], "Content-Type": "application/geo+json"}
    ok = failed = 0
    latencies: list[float] = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        body = body_of(i)
        i += 1
        start = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - start) * 1000)
        if response.status in (200, 201):
            ok += 1
        else:
            failed += 1
    conn.close()
    return ok, failed, latencies


def throughput(port: int, what: str, seconds: float, clients: int) -> tuple[float, float, int]:
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        results = pool.map(client, [(port, what, seconds, n) for n in range(clients)])
    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    median = statistics.median(latencies) if latencies else float("nan")
    return ok / seconds, median, failed


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5", help="reports stored, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="per HTTP measurement")
    parser.add_argument("--clients", type=int, default=4, help="closed-loop client processes")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL"
    )
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="truce-bench-store-"))
    dbs = Databases(args.postgres, workdir)
    print(f"bench_store: load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    try:
        for n in sizes:
            reports = reports_of(n)
            results = {}
            for kind in ("sqlite", "postgis"):
                results[kind] = bench_store(kind, dbs.url(kind, f"store{n}"), reports, dbs)
            copy = bench_copy(dbs.url("sqlite", f"store{n}"), dbs, f"copy{n}")
            floor = bench_floor(reports, dbs, f"floor{n}")
            print(f"\n== {n:,} reports (batches of {BATCH:,}) ==")
            print(f"{'':28}{'SQLite':>14}{'PostGIS':>14}{'PostGIS/SQLite':>16}")
            rows = [
                ("store, reports/s", "store_rate", True),
                ("read back, reports/s", "read_rate", True),
                ("incursions, first call s", "incursions_s", False),
                ("incursions, again s", "incursions_again_s", False),
                ("size on disk, MiB", "size", None),
            ]
            for label, key, higher in rows:
                a, b = results["sqlite"][key], results["postgis"][key]
                if key == "size":
                    a, b = a / 2**20, b / 2**20
                ratio = b / a if higher in (True, None) else a / b
                print(f"{label:28}{a:14,.2f}{b:14,.2f}{ratio:15.2f}x")
            ratio = copy["copy_rate"] / results["sqlite"]["store_rate"]
            batches = copy["copy_rate"] / results["postgis"]["store_rate"]
            print(
                f"{'db copy into PostGIS, /s':28}{'':14}{copy['copy_rate']:14,.2f}{ratio:15.2f}x"
                f"   ({batches:.2f}x PostGIS batches; whole copy {copy['copy_s']:.2f} s, "
                f"{copy['size'] / 2**20:,.1f} MiB; bulk path: months indexed once loaded)"
            )
            print(
                f"{'floor: bare COPY, /s':28}{'':14}{floor['bare_geom']:14,.2f}"
                f"{floor['bare_geom'] / results['postgis']['store_rate']:15.2f}x"
                f"   (x PostGIS batches; one plain table, no index, point computed; "
                f"without the point {floor['bare']:,.0f}/s)"
            )
            assert results["sqlite"]["violations"] == results["postgis"]["violations"]
            print(f"{'violations found (both)':28}{results['sqlite']['violations']:14,.0f}")
        if not args.skip_http:
            print(
                f"\n== HTTP, closed loop, {args.clients} client processes, "
                f"{args.seconds:.0f} s each (requests/s, median ms) =="
            )
            print(f"{'':22}" + "".join(f"{f'{p} proc':>22}" for p in PROCESSES))
            for what in ("check", "reports"):
                for kind in ("sqlite", "postgis"):
                    line = f"{what + ' ' + kind:22}"
                    base = None
                    for processes in PROCESSES:
                        url = dbs.url(kind, f"http{what}{processes}")
                        process, port = start_serve(url, processes, workdir / "serve.log")
                        try:
                            rate, median, failed = throughput(
                                port, what, args.seconds, args.clients
                            )
                        finally:
                            stop(process)
                        base = base or rate
                        cell = f"{rate:,.0f}/s {median:.1f}ms x{rate / base:.2f}"
                        if failed:
                            cell += f" ({failed} failed)"
                        line += f"{cell:>22}"
                    print(line, flush=True)
    finally:
        dbs.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
