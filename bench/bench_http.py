"""Benchmark: the HTTP service on loopback, with the load driven from another process.

    .venv/bin/python bench/bench_http.py [--duration 10] [--quick] [--client auto|wrk|python]

Servers are real `uvicorn --factory bench.bench_app:create_bench_app` processes (Truce's app and
one constant POST; uvloop and httptools when installed, no access log) on free loopback ports, each
over a fresh SQLite file with the founding scenario loaded. The load comes from another process:
`wrk` (Debian's package) for the closed-loop throughput runs when it is on the PATH, else the
bounded asyncio client of this file run as a subprocess (`--client python`); the open-loop run
always uses this file's client.

1. With 1 and 2 workers: `GET /health` (constant, no key: the framework's ceiling, as the issue
   sets it), `POST /bench/constant` (reads the same body as the check and answers a constant: the
   ceiling for a POST; `bench/bench_app.py` adds it to the benchmark's servers only) and a single
   `POST /check` (one Point Feature at Parukh), closed loop at a fixed number of connections:
   requests/s, p50 and p99 latency; check/health (target >= 80 %) and check/constant POST.
2. Open loop at half of the measured `/check` peak: requests are scheduled at fixed intervals and
   each latency is taken from its *scheduled* time, so a stall of the server is charged to every
   request it delayed (no coordinated omission): p99 (target <= 10 ms).
3. One `POST /check` of 1e5 positions, body built in advance: from the first byte sent to the
   answer parsed with orjson; median of 3 (target <= 1 s).
4. `POST /reports`: single reports (closed loop, a new id each) and batches of 1e4 (1e5 reports
   in all), then the same 1e5 as one batch when the server accepts that many features; the store
   fsyncs each commit (synchronous=FULL). The server is then killed with SIGKILL and the reports
   counted in the SQLite file (target: 1e5 reports stored durably in <= 5 s).

The load generator shares the machine's cores with the server: the CPU columns say how much each
side used (server: all its processes; client: wrk or the Python client).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEYS = {"viewer": "bench-viewer-4d1e", "observer": "bench-observer-9a27"}
API_KEYS = ",".join(f"{key}:{role}" for role, key in KEYS.items())
PARUKH = (46.8011, 40.0194)
T = "2022-03-24T06:00:00+04:00"  # the scenario's zone of responsibility is in force
SEED = 20220324
CLIENT_MARK = "BENCH-CLIENT "
WRK_MARK = "BENCH-WRK "
SCENARIO_REPORTS_TABLE = "reports"

# Targets of issue 3.
TARGET_RATIO = 0.80
TARGET_P99_MS = 10.0
TARGET_BIG_CHECK_S = 1.0
TARGET_STORE_S = 5.0


# --------------------------------------------------------------------------------------------
# request bodies


def point_feature(lon: float, lat: float, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": props,
    }


def single_check_body() -> bytes:
    return orjson.dumps(point_feature(*PARUKH, party="AZE", observed_at=T))


def single_report_template() -> bytes:
    """A report Feature whose id is the placeholder `__ID__` (each request gets a new one)."""
    feature = point_feature(
        *PARUKH, party="AZE", observed_at=T, uncertainty_m=100.0, kind="troops", unit="bench"
    )
    feature["id"] = "__ID__"
    return orjson.dumps(feature)


def positions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, list[str]]:
    """n seeded positions over the scenario's region (45.5-47.4 E, 38.8-40.5 N), times over
    Nov 2020 - 2023 (so zone versions come and go), five parties, uncertainty 0-500 m."""
    rng = np.random.default_rng(seed)
    lon = np.round(rng.uniform(45.5, 47.4, n), 6)
    lat = np.round(rng.uniform(38.8, 40.5, n), 6)
    start = np.datetime64("2020-11-01T00:00:00", "s").astype(np.int64)
    end = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    seconds = rng.integers(start, end, n)
    times = [f"{t}+00:00" for t in seconds.astype("datetime64[s]").astype(str)]
    party_names = np.array(["AZE", "ARM", "NK", "RU-PK", "TR"])
    party = party_names[rng.integers(0, len(party_names), n)].tolist()
    uncertainty = np.round(rng.uniform(0, 500, n), 1)
    return lon, lat, times, uncertainty, party


def collection_body(n: int, seed: int, id_prefix: str | None = None) -> bytes:
    lon, lat, times, unc, party = positions(n, seed)
    features = []
    for i in range(n):
        feature = point_feature(
            float(lon[i]),
            float(lat[i]),
            party=party[i],
            observed_at=times[i],
            uncertainty_m=float(unc[i]),
        )
        if id_prefix is not None:
            feature["id"] = f"{id_prefix}{i}"
            feature["properties"]["kind"] = "troops"
        features.append(feature)
    return orjson.dumps({"type": "FeatureCollection", "features": features})


# --------------------------------------------------------------------------------------------
# servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def children_of(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, not idle or iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the load generators)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


@dataclass
class Server:
    workers: int
    port: int
    process: subprocess.Popen[bytes]
    db: Path
    log: Path
    pids: list[int] = field(default_factory=list)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def uvicorn_options() -> list[str]:
    options = []
    if has_module("uvloop"):
        options += ["--loop", "uvloop"]
    if has_module("httptools"):
        options += ["--http", "httptools"]
    return options


def start_server(workdir: Path, name: str, workers: int) -> Server:
    db = workdir / f"{name}.sqlite"
    log = workdir / f"{name}.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update(
        TRUCE_DATABASE_URL=f"sqlite:///{db}",
        TRUCE_API_KEYS=API_KEYS,
        TRUCE_LOAD_SCENARIO="true",
        TRUCE_PUBLIC_READ="false",
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.bench_app:create_bench_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        *uvicorn_options(),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    server = Server(workers, port, process, db, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                # With several workers, each must have started (and built its index).
                if workers == 1 or len(children_of(process.pid)) >= workers + 1:
                    time.sleep(2.0 if workers > 1 else 0)
                    server.pids = children_of(process.pid)
                    return server
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    server.kill(signal.SIGKILL)
    raise RuntimeError(f"uvicorn did not answer /health within 90 s:\n{log.read_text()}")


def count_reports(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {SCENARIO_REPORTS_TABLE}").fetchone()[0])
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# load: results


@dataclass
class Load:
    """One load run: what was sent, what came back, how long it took, what it cost."""

    requests: int
    seconds: float
    latencies_ms: dict[str, float]  # p50, p90, p99, max
    errors: int
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # every other process on the machine during the run
    wall_s: float = 0.0  # the load generator's whole run, over which the CPU times are taken
    tool: str = ""
    offered_rps: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def http_request(
    method: str, path: str, body: bytes | None, headers: dict[str, str], host: str, port: int
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


# --------------------------------------------------------------------------------------------
# load: the Python client (run as a subprocess: `bench_http.py --client-run SPEC`)


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time; bodies by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError("response without Content-Length")
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
        if length:
            await self.reader.readexactly(length)
        return status


def request_maker(spec: dict[str, Any]) -> Any:
    """A function i -> request bytes: fixed, or with `__ID__` in the body replaced per request."""
    body = spec["body"].encode() if spec.get("body") is not None else None
    headers = spec.get("headers", {})
    if body is None or b"__ID__" not in body:
        fixed = http_request(
            spec["method"], spec["path"], body, headers, spec["host"], spec["port"]
        )
        return lambda i: fixed
    before, after = body.split(b"__ID__", 1)
    prefix = spec.get("id_prefix", "py-")

    def make(i: int) -> bytes:
        return http_request(
            spec["method"],
            spec["path"],
            before + f"{prefix}{i}".encode() + after,
            headers,
            spec["host"],
            spec["port"],
        )

    return make


def percentiles(latencies: list[float] | np.ndarray) -> dict[str, float]:
    if len(latencies) == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    a = np.asarray(latencies, dtype=float) * 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max())}


def finish(
    conns: list[Connection], latencies: list[float], errors: int, seconds: float
) -> dict[str, Any]:
    """Close the connections; the run's figures."""
    for c in conns:
        c.writer.close()
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "errors": errors,
        "latencies_ms": percentiles(latencies),
    }


async def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """`connections` connections, each sending its next request as soon as the last answered."""
    make = request_maker(spec)
    conns = [
        Connection(*await asyncio.open_connection(spec["host"], spec["port"]))
        for _ in range(spec["connections"])
    ]
    latencies: list[float] = []
    errors = 0
    counter = 0
    stop = time.perf_counter() + spec["duration"]

    async def run(conn: Connection) -> None:
        nonlocal errors, counter
        while True:
            start = time.perf_counter()
            if start >= stop:
                return
            counter += 1
            status = await conn.send(make(counter))
            latencies.append(time.perf_counter() - start)
            if status >= 400:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    return finish(conns, latencies, errors, time.perf_counter() - began)


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Requests scheduled every 1/rate s whatever happens; latency from the scheduled time.

    A request whose time has come waits for a free connection (of `connections`) if all are busy;
    that wait is part of its latency, as it would be for a client that does not wait for the
    server before sending the next report.
    """
    make = request_maker(spec)
    rate, duration = spec["rate"], spec["duration"]
    total = int(rate * duration)
    interval = 1.0 / rate
    conns = [
        Connection(*await asyncio.open_connection(spec["host"], spec["port"]))
        for _ in range(spec["connections"])
    ]
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0
    sent = 0
    t0 = time.perf_counter() + 0.05

    async def worker(conn: Connection) -> None:
        nonlocal errors, sent
        while True:
            scheduled = await queue.get()
            if scheduled is None:
                return
            sent += 1
            status = await conn.send(make(sent))
            latencies.append(time.perf_counter() - scheduled)
            if status >= 400:
                errors += 1

    async def scheduler() -> None:
        i = 0
        while i < total:
            due = min(total, int((time.perf_counter() - t0) / interval) + 1)
            while i < due:
                queue.put_nowait(t0 + i * interval)
                i += 1
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        for _ in conns:
            queue.put_nowait(None)

    workers = [asyncio.create_task(worker(c)) for c in conns]
    await scheduler()
    await asyncio.gather(*workers)
    return finish(conns, latencies, errors, time.perf_counter() - t0)


def client_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    with suppress(ImportError):
        import uvloop

        uvloop.install()
    runner = open_loop if spec["mode"] == "open" else closed_loop
    result = asyncio.run(runner(spec))
    print(CLIENT_MARK + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# load: drivers (from the benchmark's process)

WRK_SCRIPT = r"""
local f = assert(io.open(%(body_path)s, "rb"))
local body = f:read("*a")
f:close()
if #body == 0 then body = nil end
wrk.method = %(method)s
wrk.path = %(path)s
%(headers)s
local before, after = nil, nil
local at = body and string.find(body, "__ID__", 1, true)
if at then
  before = string.sub(body, 1, at - 1)
  after = string.sub(body, at + 6)
else
  wrk.body = body
end
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end
local counter = 0
if at then
  request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil, before .. %(prefix)s .. tid .. "-" .. counter .. after)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


class Driver:
    """Runs load against a server from another process and collects the figures."""

    def __init__(self, workdir: Path, tool: str, connections: int) -> None:
        self.workdir = workdir
        self.tool = tool
        self.connections = connections
        self.runs = 0

    def _spec(
        self,
        server: Server,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        id_prefix: str,
    ) -> dict[str, Any]:
        return {
            "host": server.host,
            "port": server.port,
            "method": method,
            "path": path,
            "body": body.decode() if body is not None else None,
            "headers": headers,
            "id_prefix": id_prefix,
        }

    def closed(
        self,
        server: Server,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        duration: float,
        id_prefix: str = "",
    ) -> Load:
        self.runs += 1
        if self.tool == "wrk":
            return self._wrk(server, method, path, body, headers, duration, id_prefix)
        spec = self._spec(server, method, path, body, headers, id_prefix or f"py{self.runs}-")
        spec.update(mode="closed", connections=self.connections, duration=duration)
        return self._python(server, spec)

    def open(
        self,
        server: Server,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        duration: float,
        rate: float,
        connections: int,
    ) -> Load:
        self.runs += 1
        spec = self._spec(server, method, path, body, headers, f"open{self.runs}-")
        spec.update(mode="open", connections=connections, duration=duration, rate=rate)
        load = self._python(server, spec)
        load.offered_rps = rate
        return load

    def _measure(
        self, server: Server, command: list[str], mark: str
    ) -> tuple[dict[str, Any], dict[str, float]]:
        before_server = server.cpu()
        before_children = os.times()
        before_machine = machine_busy_seconds()
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - began
        machine = machine_busy_seconds() - before_machine
        after_children = os.times()
        server_cpu = server.cpu() - before_server
        client_cpu = (after_children.children_user - before_children.children_user) + (
            after_children.children_system - before_children.children_system
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(mark)]
        if done.returncode != 0 or not lines:
            raise RuntimeError(
                f"load generator failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        cpu = {
            "server_cpu_s": server_cpu,
            "client_cpu_s": client_cpu,
            "other_cpu_s": max(0.0, machine - server_cpu - client_cpu),
            "wall_s": wall,
        }
        return json.loads(lines[-1][len(mark) :]), cpu

    def _python(self, server: Server, spec: dict[str, Any]) -> Load:
        spec_path = self.workdir / f"client-{self.runs}.json"
        spec_path.write_text(json.dumps(spec))
        command = [sys.executable, str(Path(__file__).resolve()), "--client-run", str(spec_path)]
        result, cpu = self._measure(server, command, CLIENT_MARK)
        return Load(
            requests=result["requests"],
            seconds=result["seconds"],
            latencies_ms=result["latencies_ms"],
            errors=result["errors"],
            **cpu,
            tool="python-open" if spec["mode"] == "open" else "python",
        )

    def _wrk(
        self,
        server: Server,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        duration: float,
        id_prefix: str,
    ) -> Load:
        body_path = self.workdir / f"wrk-body-{self.runs}.json"
        body_path.write_bytes(body or b"")
        all_headers = dict(headers)
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        script = WRK_SCRIPT % {
            "body_path": json.dumps(str(body_path)),
            "method": json.dumps(method),
            "path": json.dumps(path),
            "headers": "\n".join(
                f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in all_headers.items()
            ),
            "prefix": json.dumps(id_prefix or f"wrk{self.runs}-"),
            "mark": WRK_MARK,
        }
        script_path = self.workdir / f"wrk-{self.runs}.lua"
        script_path.write_text(script)
        seconds = max(1, round(duration))
        command = [
            "wrk",
            "-t1",
            f"-c{self.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script_path),
            f"http://{server.host}:{server.port}{path}",
        ]
        result, cpu = self._measure(server, command, WRK_MARK)
        errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
        return Load(
            requests=result["requests"],
            seconds=result["duration_us"] / 1e6,
            latencies_ms={k: result[k] / 1e3 for k in ("p50", "p90", "p99", "max")},
            errors=errors,
            **cpu,
            tool="wrk",
        )


# --------------------------------------------------------------------------------------------
# big requests (from the benchmark's process: a plain blocking client)


def post_timed(
    server: Server, path: str, body: bytes, headers: dict[str, str]
) -> tuple[float, int, Any, int]:
    """POST `body` on a new connection; seconds from the first byte sent to the answer parsed."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=600)
    conn.connect()
    all_headers = {"Content-Type": "application/json", **headers}
    began = time.perf_counter()
    conn.request("POST", path, body=body, headers=all_headers)
    response = conn.getresponse()
    raw = response.read()
    answer = orjson.loads(raw)
    seconds = time.perf_counter() - began
    conn.close()
    return seconds, response.status, answer, len(raw)


# --------------------------------------------------------------------------------------------
# the run


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def verdict(ok: bool) -> str:
    return "[bold green]PASS[/bold green]" if ok else "[bold red]MISS[/bold red]"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per throughput / latency run (default 10, --quick 3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs; the 1e5 single batch is skipped"
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="closed-loop load generator (default: wrk when installed)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="connections of the closed-loop runs (default 16)",
    )
    parser.add_argument(
        "--open-connections",
        type=int,
        default=64,
        help="connections of the open-loop client (default 64)",
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, dbs)")
    parser.add_argument("--client-run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_run:
        return client_main(args.client_run)

    from rich.console import Console
    from rich.table import Table

    from app import __version__
    from app.settings import Settings

    console = Console(width=max(150, Console().width))
    duration = args.duration if args.duration is not None else (3.0 if args.quick else 10.0)
    warmup = 1.0
    tool = args.client
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    if tool == "wrk" and not shutil.which("wrk"):
        console.print("[red]wrk is not installed[/red] (apt-get install wrk), use --client python")
        return 2
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    max_features = int(Settings.model_fields["max_features"].default)
    started = time.perf_counter()

    versions = {"truce": __version__, "python": sys.version.split()[0]}
    for name in ("uvicorn", "fastapi", "starlette", "orjson", "uvloop", "httptools"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = "absent"
    if tool == "wrk":
        wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        versions["wrk"] = (wrk_v.stdout or wrk_v.stderr).split()[1]
    console.rule("[bold]Truce HTTP benchmark")
    console.print(
        f"load average at start: {loadavg()}   cores: {os.cpu_count()}   "
        f"run: {duration:g} s per load run ({warmup:g} s warm-up before each)"
    )
    console.print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    console.print(
        f"uvicorn options: {' '.join(uvicorn_options()) or '(defaults)'} "
        f"--no-access-log; closed loop: {tool}, {args.connections} connections; "
        f"open loop: this file's asyncio client, {args.open_connections} connections"
    )

    busy0, t_busy = machine_busy_seconds(), time.perf_counter()
    time.sleep(2.0)
    idle_busy = (machine_busy_seconds() - busy0) / (time.perf_counter() - t_busy)
    console.print(
        f"before the run, other processes kept {idle_busy:.2f} of {os.cpu_count()} cores busy"
        + (
            " [bold yellow](the machine is not idle: figures will be low and noisy)[/bold yellow]"
            if idle_busy > 0.2
            else ""
        )
    )

    workdir = Path(tempfile.mkdtemp(prefix="truce-bench-http-"))
    driver = Driver(workdir, tool, args.connections)
    viewer = {"X-API-Key": KEYS["viewer"]}
    observer = {"X-API-Key": KEYS["observer"]}
    check_body = single_check_body()
    servers: list[Server] = []
    results: dict[int, dict[str, Load]] = {}
    try:
        # 1 and 2: throughput, latency, open loop at half the peak.
        for workers in worker_counts:
            server = start_server(workdir, f"w{workers}", workers)
            servers.append(server)
            # The single check must find something: Parukh is inside the zone in force.
            _, status, answer, _ = post_timed(server, "/check", check_body, viewer)
            assert status == 200 and answer["numberReturned"] == 1, answer
            runs: dict[str, Load] = {}
            console.print(f"[dim]{workers} worker(s): GET /health …[/dim]")
            driver.closed(server, "GET", "/health", None, {}, warmup)
            runs["health"] = driver.closed(server, "GET", "/health", None, {}, duration)
            console.print(f"[dim]{workers} worker(s): POST /bench/constant …[/dim]")
            driver.closed(server, "POST", "/bench/constant", check_body, viewer, warmup)
            runs["constant"] = driver.closed(
                server, "POST", "/bench/constant", check_body, viewer, duration
            )
            console.print(f"[dim]{workers} worker(s): POST /check …[/dim]")
            driver.closed(server, "POST", "/check", check_body, viewer, warmup)
            runs["check"] = driver.closed(server, "POST", "/check", check_body, viewer, duration)
            rate = runs["check"].rps / 2
            console.print(
                f"[dim]{workers} worker(s): POST /check open loop at {rate:,.0f}/s …[/dim]"
            )
            runs["open"] = driver.open(
                server, "POST", "/check", check_body, viewer, duration, rate, args.open_connections
            )
            results[workers] = runs
            server.kill()
            servers.remove(server)

        table = Table(
            title=f"Single requests, {args.connections} connections closed loop "
            f"({tool}); open loop at half the /check peak",
            title_justify="left",
        )
        for column in (
            "workers",
            "endpoint",
            "load",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "errors",
            "server CPU",
            "client CPU",
            "others CPU",
            "server CPU µs/req",
        ):
            table.add_column(column, justify="left" if column in ("endpoint", "load") else "right")
        for workers, runs in results.items():
            for name, load in runs.items():
                label = {
                    "health": "GET /health",
                    "constant": "POST /bench/constant",
                    "check": "POST /check",
                    "open": "POST /check",
                }[name]
                kind = (
                    f"open {load.offered_rps:,.0f}/s"
                    if load.offered_rps
                    else f"closed {args.connections}"
                )
                table.add_row(
                    str(workers),
                    label,
                    kind,
                    f"{load.rps:,.0f}",
                    f"{load.latencies_ms['p50']:.2f}",
                    f"{load.latencies_ms['p90']:.2f}",
                    f"{load.latencies_ms['p99']:.2f}",
                    f"{load.latencies_ms['max']:.1f}",
                    str(load.errors),
                    f"{load.server_cpu_s / load.wall_s:.2f}",
                    f"{load.client_cpu_s / load.wall_s:.2f}",
                    f"{load.other_cpu_s / load.wall_s:.2f}",
                    f"{1e6 * load.server_cpu_s / max(load.requests, 1):,.0f}",
                )
        console.print(table)
        console.print(
            "CPU columns in cores (of the machine's "
            f"{os.cpu_count()}) over the run: the server's processes, the load generator, and "
            "every other process on the machine (a high 'others' means the run was disturbed). "
            "Closed-loop latency is from each request's send; open-loop latency from its "
            "scheduled time."
        )

        # 3 and 4 on one worker, a fresh database.
        server = start_server(workdir, "data", 1)
        servers.append(server)
        part_began = time.perf_counter()
        part_machine, part_own = machine_busy_seconds(), own_cpu_seconds()
        part_server = server.cpu()

        big_n = 100_000
        t = time.perf_counter()
        big_body = collection_body(big_n, SEED)
        built_s = time.perf_counter() - t
        post_timed(server, "/check", collection_body(1000, SEED + 1), viewer)  # warm
        big_times, big_findings, big_answer_bytes = [], 0, 0
        console.print(f"[dim]POST /check of {big_n:,} positions ×3 …[/dim]")
        for _ in range(3):
            seconds, status, answer, size = post_timed(server, "/check", big_body, viewer)
            assert status == 200, answer
            big_times.append(seconds)
            big_findings, big_answer_bytes = answer["numberReturned"], size
            del answer
        big_median = statistics.median(big_times)

        console.print("[dim]POST /reports single …[/dim]")
        before = count_reports(server.db)
        single_template = single_report_template()
        driver.closed(server, "POST", "/reports", single_template, observer, warmup, "warm-")
        single = driver.closed(
            server, "POST", "/reports", single_template, observer, duration, "single-"
        )
        # Requests in flight when the load stopped may still be committing: wait until stable.
        after_single = count_reports(server.db)
        for _ in range(50):
            time.sleep(0.2)
            now_count = count_reports(server.db)
            if now_count == after_single:
                break
            after_single = now_count

        batch_n, batches = 10_000, 10
        console.print(f"[dim]POST /reports {batches} batches of {batch_n:,} …[/dim]")
        batch_bodies = [collection_body(batch_n, SEED + 10 + k, f"b{k}-") for k in range(batches)]
        batch_times: list[float] = []
        batch_stored = 0
        for body in batch_bodies:
            seconds, status, answer, _ = post_timed(server, "/reports", body, observer)
            assert status == 201, answer
            batch_times.append(seconds)
            batch_stored += len(answer["stored"])
            del answer
        del batch_bodies
        batch_total = sum(batch_times)

        one_batch: tuple[float, int, int] | None = None
        if not args.quick and max_features >= big_n:
            console.print(f"[dim]POST /reports one batch of {big_n:,} …[/dim]")
            body = collection_body(big_n, SEED + 99, "one-")
            seconds, status, answer, _ = post_timed(server, "/reports", body, observer)
            assert status == 201, answer
            one_batch = (seconds, len(answer["stored"]), len(body))
            del answer, body

        server_cpu_total = server.cpu() - part_server
        part_wall = time.perf_counter() - part_began
        part_others = (
            machine_busy_seconds()
            - part_machine
            - server_cpu_total
            - (own_cpu_seconds() - part_own)
        )
        server.kill(signal.SIGKILL)  # durability: only what is on disk counts
        servers.remove(server)
        final = count_reports(server.db)
        expected = after_single + batch_stored + (one_batch[1] if one_batch else 0)

        table = Table(
            title="Big requests (1 worker, one request at a time, new connection each)",
            title_justify="left",
        )
        for column in ("what", "size", "median", "runs", "rate", "answer"):
            table.add_column(column, justify="left" if column in ("what", "answer") else "right")
        table.add_row(
            f"POST /check {big_n:,} positions",
            mib(len(big_body)),
            f"{big_median:.3f} s",
            " ".join(f"{s:.3f}" for s in big_times),
            f"{big_n / big_median:,.0f} pos/s",
            f"{big_findings:,} findings, {mib(big_answer_bytes)}",
        )
        table.add_row(
            f"POST /reports single ({tool}, {args.connections} conn.)",
            "1 report",
            f"p50 {single.latencies_ms['p50']:.1f} ms",
            f"p99 {single.latencies_ms['p99']:.1f} ms",
            f"{single.rps:,.0f} reports/s",
            f"{after_single - before:,} stored, {single.errors} errors",
        )
        table.add_row(
            f"POST /reports {batches} × {batch_n:,}",
            f"{batches * batch_n:,} reports",
            f"{statistics.median(batch_times):.3f} s / batch",
            " ".join(f"{s:.2f}" for s in batch_times),
            f"{batches * batch_n / batch_total:,.0f} reports/s",
            f"{batch_stored:,} stored, total {batch_total:.2f} s",
        )
        if one_batch:
            table.add_row(
                f"POST /reports 1 × {big_n:,}",
                mib(one_batch[2]),
                f"{one_batch[0]:.3f} s",
                f"{one_batch[0]:.3f}",
                f"{big_n / one_batch[0]:,.0f} reports/s",
                f"{one_batch[1]:,} stored",
            )
        console.print(table)
        console.print(
            f"bodies built in advance (1e5 check body: {built_s:.2f} s with orjson); after "
            f"SIGKILL the file holds {final:,} reports, expected {expected:,} "
            f"({'all there' if final == expected else 'MISMATCH'}); server CPU over this "
            f"part {server_cpu_total:.1f} s over {part_wall:.0f} s; other processes on the machine "
            f"used {max(0.0, part_others) / part_wall:.2f} cores on average"
        )

        # targets
        table = Table(title="Targets (issue 3)", title_justify="left")
        for column in ("target", "measured", ""):
            table.add_column(column)
        for workers, runs in results.items():
            ratio = runs["check"].rps / runs["health"].rps
            table.add_row(
                f"{workers} worker(s): single /check ≥ {TARGET_RATIO:.0%} of /health",
                f"{runs['check'].rps:,.0f} / {runs['health'].rps:,.0f} req/s = {ratio:.0%}",
                verdict(ratio >= TARGET_RATIO),
            )
            post_ratio = runs["check"].rps / runs["constant"].rps
            table.add_row(
                f"{workers} worker(s): single /check against a constant POST (no target)",
                f"{runs['check'].rps:,.0f} / {runs['constant'].rps:,.0f} req/s = {post_ratio:.0%}; "
                f"constant POST / health = {runs['constant'].rps / runs['health'].rps:.0%}",
                "",
            )
        for workers, runs in results.items():
            p99 = runs["open"].latencies_ms["p99"]
            table.add_row(
                f"{workers} worker(s): p99 ≤ {TARGET_P99_MS:g} ms at half the /check peak",
                f"{p99:.2f} ms at {runs['open'].offered_rps:,.0f}/s "
                f"(achieved {runs['open'].rps:,.0f}/s)",
                verdict(p99 <= TARGET_P99_MS and runs["open"].errors == 0),
            )
        table.add_row(
            f"1e5 positions checked end to end ≤ {TARGET_BIG_CHECK_S:g} s",
            f"{big_median:.3f} s (median of 3)",
            verdict(big_median <= TARGET_BIG_CHECK_S),
        )
        durable = final == expected
        table.add_row(
            f"1e5 reports stored durably ≤ {TARGET_STORE_S:g} s: 10 × 1e4",
            f"{batch_total:.2f} s",
            verdict(batch_total <= TARGET_STORE_S and durable),
        )
        if one_batch:
            table.add_row(
                f"1e5 reports stored durably ≤ {TARGET_STORE_S:g} s: 1 × 1e5",
                f"{one_batch[0]:.2f} s",
                verdict(one_batch[0] <= TARGET_STORE_S and durable),
            )
        console.print(table)
    finally:
        for server in servers:
            server.kill(signal.SIGKILL)
        if args.keep:
            console.print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(
        f"load average at end: {loadavg()}   whole run: {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
