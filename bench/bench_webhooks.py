"""Pushing events out: webhook latency, MQTT ingestion, and a delivery backlog's drain.

    .venv/bin/python bench/bench_webhooks.py                 # SQLite, the default sizes
    .venv/bin/python bench/bench_webhooks.py --seconds 5 --mqtt 20000 --backlog 2000

Every part runs real processes on loopback: `truce serve` (uvicorn, one worker, delivery in
its lifespan) over a fresh SQLite file with the founding scenario, a webhook receiver (a
uvicorn ASGI app in its own process, writing arrival times) and the machine's Mosquitto.

1. **Acknowledged -> received.** Reports are sent at a fixed rate (100 and 1,000 a second, open
   loop, many connections), `--per-request` to a POST (1: a Feature alone, else a
   FeatureCollection), to `--workers` service processes; each is a new unit inside the
   peacekeeping zone, so each opens an incident and one `incident.opened` event goes to the
   subscription and to a `GET /events` stream the bench follows. The latency is the receiver's
   (or the stream's) arrival time minus the time the bench read the 201 (one clock: same
   machine). Baseline: a bare loopback POST from the bench to the same receiver (what the
   network and the receiver alone cost), in the same run. p50 and p99.
2. **MQTT ingestion** (superseded by `bench_mqtt.py`, which measures the bridge alone). N
   positions published by one tracker connection (QoS 1) to a `truce deliver` process with
   `TRUCE_MQTT_URL`; positions/s until all are stored. Baseline: the same kind of positions sent
   as single `POST /reports` (16 connections) to `truce serve`.
3. **Backlog drain.** With the receiver down, N events pile up (the deliverer retries with
   backoff); then the receiver comes back: events/s until all have arrived. Baseline: the rate
   at which the same deliverer sends events live (part 1 at 1,000/s, received count over time).

Medians of `--repeat` runs where a part is repeated. Nothing here is a unit test: numbers
depend on the machine (2 shared cores where this was written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench-admin-key-0123456789"
OBSERVER = "bench-observer-key-0123456789"
PARUKH = (46.808, 40.012)


# -- the receiver (its own process) -------------------------------------------------------------

RECEIVER = """
import json, sys, time
arrivals = []
up = {"on": True}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/dump":
        payload = json.dumps(arrivals).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": payload})
        return
    if scope["path"] == "/toggle":
        up["on"] = not up["on"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    now = time.time()
    if not up["on"]:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/hook":
        event = json.loads(body)
        arrivals.append([now, event["id"], event["data"].get("report_id")])
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)


@contextmanager
def receiver(workdir: Path) -> Iterator[str]:
    port = free_port()
    app = workdir / "bench_receiver.py"
    app.write_text(RECEIVER)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench_receiver:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--app-dir",
        str(workdir),
    ]
    with process(command, dict(os.environ), workdir / "receiver.log"):
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/dump")
        yield url


def _env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update(
        TRUCE_DATABASE_URL=f"sqlite:///{db}",
        TRUCE_API_KEYS=f"{ADMIN}:admin,{OBSERVER}:observer",
        TRUCE_LOAD_SCENARIO="true",
        TRUCE_WEBHOOK_RETRY_BASE_S="0.05",
        TRUCE_WEBHOOK_RETRY_CAP_S="0.5",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


@contextmanager
def serve(workdir: Path, db: Path, workers: int = 1, **extra: str) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app.api.main:create_app_from_env",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    with process(command, _env(db, **extra), workdir / "serve.log"):
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/health")
        yield url


def _report(n: int, prefix: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": f"{prefix}-{n}",
        "geometry": {"type": "Point", "coordinates": [PARUKH[0] + (n % 100) * 1e-5, PARUKH[1]]},
        "properties": {
            "party": "AZE",
            "unit": f"{prefix}-unit-{n}",
            "observed_at": "2022-03-26T10:00:00+04:00",
            "kind": "troops",
        },
    }


def _quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    if not ordered:
        return float("nan"), float("nan")
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


async def _send_at_rate(
    url: str, rate: float, seconds: float, prefix: str, per_request: int = 1
) -> dict[str, float]:
    """POST `rate` reports a second (open loop), `per_request` a request (a Feature alone, or
    a FeatureCollection); the wall time each report's 201 was read, by id."""
    acked: dict[str, float] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(first: int) -> None:
            ns = range(first, first + per_request)
            body: dict[str, Any] = _report(first, prefix)
            if per_request > 1:
                body = {"type": "FeatureCollection", "features": [_report(n, prefix) for n in ns]}
            try:
                answer = await client.post(
                    f"{url}/reports", json=body, headers={"X-API-Key": OBSERVER}
                )
            except httpx.HTTPError:  # a saturated server: not acknowledged, not counted
                return
            if answer.status_code == 201:
                now = time.time()
                for n in ns:
                    acked[f"{prefix}-{n}"] = now

        tasks = []
        start = time.perf_counter()
        requests = int(rate * seconds) // per_request
        for k in range(requests):
            delay = start + k * per_request / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k * per_request)))
        await asyncio.gather(*tasks)
    return acked


def _follow(
    url: str, into: dict[str, float], ready: threading.Event, stop: threading.Event
) -> None:
    """Follow `GET /events` (incident.opened); the wall time each report's event was parsed."""
    with (
        # Heartbeats come every few seconds: a read never waits long.
        httpx.Client(timeout=httpx.Timeout(5, read=60)) as http,
        http.stream(
            "GET", f"{url}/events?types=incident.opened", headers={"X-API-Key": ADMIN}
        ) as stream,
    ):
        ready.set()
        data = None
        for line in stream.iter_lines():
            if line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data is not None:
                into[str(json.loads(data)["data"].get("report_id"))] = time.time()
                data = None
            if stop.is_set():
                return


def _arrivals(receiver_url: str) -> list[list[Any]]:
    return list(httpx.get(receiver_url + "/dump", timeout=30).json())


def latency(
    workdir: Path, rates: list[float], seconds: float, per_request: list[int], workers: int = 1
) -> None:
    print(
        "\n1. POST /reports acknowledged -> webhook received, and -> SSE event (one each); "
        f"{workers} service process(es)"
    )
    db = workdir / f"latency-{workers}.sqlite"
    with receiver(workdir) as hook, serve(workdir, db, workers) as url:
        httpx.post(
            f"{url}/subscriptions",
            json={"url": hook + "/hook", "types": ["incident.opened"]},
            headers={"X-API-Key": ADMIN},
        ).raise_for_status()
        time.sleep(1.5)  # the deliverer picks new subscriptions up within a second
        streamed: dict[str, float] = {}
        ready, stop = threading.Event(), threading.Event()
        follower = threading.Thread(target=_follow, args=(url, streamed, ready, stop), daemon=True)
        follower.start()
        ready.wait(10)
        # Baseline: bare POSTs from here to the receiver's other path.
        bare = []
        with httpx.Client() as client:
            for _ in range(300):
                t0 = time.perf_counter()
                client.post(hook + "/bare", content=b"{}")
                bare.append((time.perf_counter() - t0) * 1000)
        b50, b99 = _quantiles(bare)
        print(
            f"   baseline (bare loopback POST to the receiver): p50 {b50:.2f} ms, p99 {b99:.2f} ms"
        )
        print(
            f"   {'rate':>6} {'a POST':>6} {'sent/s':>7} {'acked':>6} {'hooks':>6} "
            f"{'hook p50':>9} {'hook p99':>9} {'SSE':>6} {'SSE p50':>8} {'SSE p99':>8}  (ms)"
        )
        for rate in rates:
            for batch in per_request:
                prefix = f"r{int(rate)}x{batch}"
                t0 = time.perf_counter()
                acked = asyncio.run(_send_at_rate(url, rate, seconds, prefix, batch))
                sent_rate = len(acked) / (time.perf_counter() - t0)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    got = {
                        a[2]: a[0] for a in _arrivals(hook) if str(a[2]).startswith(prefix + "-")
                    }
                    if len(got) >= len(acked) and len(set(acked) - set(streamed)) == 0:
                        break
                    time.sleep(0.5)
                hooks = [(got[i] - t) * 1000 for i, t in acked.items() if i in got]
                sse = [(streamed[i] - t) * 1000 for i, t in acked.items() if i in streamed]
                h50, h99 = _quantiles(hooks)
                s50, s99 = _quantiles(sse)
                if sent_rate < 0.8 * rate:
                    # The server could not take the offered rate: 201s were read late by the
                    # bench's own saturated client, so "ack" times are not the server's.
                    print(
                        f"   {rate:>6.0f} {batch:>6} {sent_rate:>7.0f} {len(acked):>6} "
                        f"{len(hooks):>6}   not measured: the server took only the sent/s shown"
                    )
                    continue
                print(
                    f"   {rate:>6.0f} {batch:>6} {sent_rate:>7.0f} {len(acked):>6} {len(hooks):>6} "
                    f"{h50:>9.1f} {h99:>9.1f} {len(sse):>6} {s50:>8.1f} {s99:>8.1f}"
                )
        stop.set()


def mqtt(workdir: Path, count: int, baseline_count: int) -> None:
    print("\n2. MQTT ingestion vs single POST /reports")
    db = workdir / "mqtt.sqlite"
    # The scenario first (a serve start loads it), then the bridge alone in `truce deliver`.
    with serve(workdir, db) as url:
        pass
    prefix = f"m{int(time.time())}"
    # A session of this run's own (the bridge's is persistent), which the broker soon forgets.
    env = _env(
        db,
        TRUCE_MQTT_URL="mqtt://127.0.0.1:1883",
        TRUCE_MQTT_CLIENT_ID=f"bench-{prefix}",
        TRUCE_MQTT_SESSION_EXPIRY_S="60",
    )
    command = [sys.executable, "-c", "from app.cli import main; main()", "deliver"]
    # Trackers: one `mosquitto_pub -l` (C, QoS 1) per unit, all at once, each reading its
    # unit's positions a line a message: the publishers cost little next to the bridge.
    units = 50
    lines: dict[int, list[str]] = {u: [] for u in range(units)}
    for n in range(count):
        body = {
            "id": f"{prefix}-{n}",
            "lon": PARUKH[0] + (n % 1000) * 1e-5,
            "lat": PARUKH[1],
            "observed_at": f"2022-03-26T{(n // 60) % 24:02d}:{n % 60:02d}:00Z",
            "kind": "vehicle",
        }
        lines[n % units].append(json.dumps(body))
    feeds = []
    for unit, unit_lines in lines.items():
        feed = workdir / f"unit-{unit}.jsonl"
        feed.write_text("\n".join(unit_lines) + "\n")
        feeds.append((unit, feed))
    with process(command, env, workdir / "deliver.log"):
        time.sleep(3)  # connected and subscribed
        before = _count(db)
        t0 = time.perf_counter()
        publishers = [
            subprocess.Popen(
                [
                    "mosquitto_pub",
                    "-h",
                    "127.0.0.1",
                    "-V",
                    "mqttv5",
                    "-q",
                    "1",
                    "-l",
                    "-t",
                    f"truce/reports/AZE/{prefix}-u{unit}",
                ],
                stdin=feed.open("rb"),
            )
            for unit, feed in feeds
        ]
        for publisher in publishers:
            publisher.wait(300)
        published = time.perf_counter() - t0
        deadline = time.monotonic() + 300
        while _count(db) - before < count and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        stored = _count(db) - before
    mqtt_rate = stored / elapsed
    print(
        f"   MQTT: {stored} of {count} positions stored in {elapsed:.2f} s "
        f"(published in {published:.2f} s): {mqtt_rate:,.0f} positions/s"
    )
    with serve(workdir, db) as url:
        t0 = time.perf_counter()
        acked = asyncio.run(_closed_loop(url, baseline_count, f"p{prefix}", 16))
        elapsed = time.perf_counter() - t0
    post_rate = acked / elapsed
    print(
        f"   baseline, single POST /reports (16 connections): {acked} in {elapsed:.2f} s: "
        f"{post_rate:,.0f} reports/s"
    )
    print(f"   ratio MQTT / single POSTs: {mqtt_rate / post_rate:.1f}x")


def _count(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM reports").fetchone()[0])


async def _closed_loop(url: str, count: int, prefix: str, connections: int) -> int:
    done = 0
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker(start: int) -> None:
            nonlocal done
            for n in range(start, count, connections):
                body = _report(n, prefix)
                body["properties"]["unit"] = f"{prefix}-u{n % 50}"
                answer = await client.post(
                    f"{url}/reports", json=body, headers={"X-API-Key": OBSERVER}
                )
                done += answer.status_code == 201

        await asyncio.gather(*(worker(i) for i in range(connections)))
    return done


def backlog(workdir: Path, count: int) -> None:
    print("\n3. Backlog drain after the receiver comes back")
    db = workdir / "backlog.sqlite"
    with receiver(workdir) as hook, serve(workdir, db) as url:
        httpx.post(
            f"{url}/subscriptions",
            json={"url": hook + "/hook", "types": ["incident.opened"]},
            headers={"X-API-Key": ADMIN},
        )
        time.sleep(1.5)
        httpx.post(hook + "/toggle")  # down: 503 to every delivery
        prefix = "b"
        features = [_report(n, prefix) for n in range(count)]
        for start in range(0, count, 1000):
            answer = httpx.post(
                f"{url}/reports",
                json={"type": "FeatureCollection", "features": features[start : start + 1000]},
                headers={"X-API-Key": OBSERVER},
                timeout=120,
            )
            assert answer.status_code == 201, answer.text
        time.sleep(2)
        httpx.post(hook + "/toggle")  # back up
        t0 = time.time()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            arrivals = [a for a in _arrivals(hook) if str(a[2]).startswith(prefix + "-")]
            if len({a[1] for a in arrivals}) >= count:
                break
            time.sleep(0.2)
        last = max(a[0] for a in arrivals)
        drain = len({a[1] for a in arrivals}) / (last - t0)
        # Baseline: the same deliverer sending live, back to back (the arrivals of part 1 style,
        # measured here: a burst of `count` reports while the receiver is up).
        prefix2 = "l"
        t1 = time.time()
        features = [_report(n, prefix2) for n in range(count)]
        for start in range(0, count, 1000):
            httpx.post(
                f"{url}/reports",
                json={"type": "FeatureCollection", "features": features[start : start + 1000]},
                headers={"X-API-Key": OBSERVER},
                timeout=120,
            )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            live = [a for a in _arrivals(hook) if str(a[2]).startswith(prefix2 + "-")]
            if len({a[1] for a in live}) >= count:
                break
            time.sleep(0.2)
        live_rate = len({a[1] for a in live}) / (max(a[0] for a in live) - t1)
    print(
        f"   backlog of {count} events drained in {last - t0:.2f} s after the receiver came "
        f"back: {drain:,.0f} events/s"
    )
    print(
        f"   baseline, the same {count} events delivered live (filed and sent together): "
        f"{live_rate:,.0f} events/s; ratio drain / live {drain / live_rate:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="service processes (uvicorn)")
    parser.add_argument(
        "--per-request", default="1,10", help="reports a POST (1: a Feature alone), comma-separated"
    )
    parser.add_argument("--mqtt", type=int, default=20_000)
    parser.add_argument("--mqtt-baseline", type=int, default=2_000)
    parser.add_argument("--backlog", type=int, default=2_000)
    parser.add_argument("--parts", default="latency,mqtt,backlog")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="truce-bench-webhooks-") as tmp:
        workdir = Path(tmp)
        parts = args.parts.split(",")
        if "latency" in parts:
            rates = [float(r) for r in args.rates.split(",")]
            per_request = [int(b) for b in args.per_request.split(",")]
            latency(workdir, rates, args.seconds, per_request, args.workers)
        if "mqtt" in parts:
            mqtt(workdir, args.mqtt, args.mqtt_baseline)
        if "backlog" in parts:
            backlog(workdir, args.backlog)
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
