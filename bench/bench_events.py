"""Time from `POST /reports` acknowledged to the event on a `GET /events` stream.

    .venv/bin/python bench/bench_events.py                       # 100 and 1,000 reports/s
    .venv/bin/python bench/bench_events.py --rates 100 --seconds 5 --polls 0.5

A real server (uvicorn, one worker, SQLite file or `--store postgis`) with the founding scenario;
sender threads POST single unit-less reports inside the scenario's peacekeeping zone at a fixed
rate (each opens an incident: one `incident.opened` event naming the report); one SSE client
follows `/events?types=incident.opened`. For each report: the time its 201 came back, and the
time its event was parsed on the stream (one clock: the same machine). Printed: p50 and p99 of
that delay, against the named baseline measured in the same run, the POST's own round trip
(p50, p99), the rate actually sent, and the server's CPU time per report (/proc). Each
`TRUCE_EVENTS_POLL_S` in `--polls` is its own server (before streams woke on the store's event
watch, the idle poll interval bounded the delay; on SQLite it still does for other processes'
writes, on PostGIS it is a fallback).
`--baseline DIR` runs each case first with the server of another checkout (the main branch,
say): a before/after in one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_http import API_KEYS, KEYS, PARUKH, T, free_port  # noqa: E402

VIEWER = {"X-API-Key": KEYS["viewer"]}
OBSERVER = {"X-API-Key": KEYS["observer"], "Content-Type": "application/json"}
SENDERS = 8


def serve(
    url: str, poll_s: float, log: Path, root: Path = ROOT
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    env.update(
        TRUCE_DATABASE_URL=url,
        TRUCE_API_KEYS=API_KEYS,
        TRUCE_LOAD_SCENARIO="true",
        TRUCE_EVENTS_POLL_S=str(poll_s),
        TRUCE_HEAVY_REQUESTS="64",
        PYTHONPATH=str(root),
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.api.main:create_app_from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=out, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        with suppress(httpx.TransportError):
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return process, base
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


def follow(
    base: str, received: dict[str, float], ready: threading.Event, stop: threading.Event
) -> None:
    """Parse the stream; note when each report's event arrived."""
    with (
        httpx.Client(base_url=base, timeout=httpx.Timeout(5, read=2)) as http,
        http.stream("GET", "/events?types=incident.opened", headers=VIEWER) as stream,
    ):
        ready.set()
        data = None
        with suppress(httpx.ReadTimeout):
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    data = line[5:].strip()
                elif line == "" and data is not None:
                    envelope = orjson.loads(data)
                    received[envelope["data"]["report_id"]] = time.monotonic()
                    data = None
                if stop.is_set():
                    return


def send(
    base: str,
    slots: list[tuple[str, int]],
    start: float,
    rate: float,
    acked: dict[str, float],
    rtts: list[float],
) -> None:
    """POST each report at its slot of the fixed-rate schedule (each sender every SENDERS-th)."""
    with httpx.Client(base_url=base, timeout=30) as http:
        for report_id, slot in slots:
            due = start + slot / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            feature = {
                "type": "Feature",
                "id": report_id,
                "geometry": {"type": "Point", "coordinates": list(PARUKH)},
                "properties": {"party": "AZE", "observed_at": T, "kind": "troops"},
            }
            sent = time.monotonic()
            response = http.post("/reports", content=orjson.dumps(feature), headers=OBSERVER)
            done = time.monotonic()
            if response.status_code == 201:
                acked[report_id] = done
                rtts.append(done - sent)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(url: str, poll_s: float, rate: float, seconds: float, log: Path, root: Path = ROOT) -> None:
    process, base = serve(url, poll_s, log, root)
    try:
        received: dict[str, float] = {}
        ready, done = threading.Event(), threading.Event()
        reader = threading.Thread(target=follow, args=(base, received, ready, done), daemon=True)
        reader.start()
        ready.wait(10)
        time.sleep(0.5)
        count = int(rate * seconds)
        tag = f"{int(rate)}-{poll_s}-{time.monotonic_ns()}"
        slots = [(f"lat-{tag}-{i}", i) for i in range(count)]
        acked: dict[str, float] = {}
        rtts: list[float] = []
        cpu_before = cpu_s(process.pid)
        start = time.monotonic() + 0.2
        senders = [
            threading.Thread(target=send, args=(base, slots[k::SENDERS], start, rate, acked, rtts))
            for k in range(SENDERS)
        ]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=seconds * 20 + 60)
        sent_for = max(acked.values(), default=start) - start
        deadline = time.monotonic() + 15
        while len(set(acked) & set(received)) < len(acked) and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()
        cpu = cpu_s(process.pid) - cpu_before
        delays = [received[i] - acked[i] for i in acked if i in received]
        missing = len(acked) - len(delays)
        print(
            f"  [{'this code' if root == ROOT else root}] "
            f"{rate:,.0f} reports/s asked ({len(acked) / max(sent_for, 1e-9):,.0f} achieved), "
            f"poll {poll_s} s: ack -> SSE p50 {1000 * statistics.median(delays):.0f} ms, "
            f"p99 {1000 * percentile(delays, 0.99):.0f} ms; baseline POST round trip p50 "
            f"{1000 * statistics.median(rtts):.1f} ms, p99 {1000 * percentile(rtts, 0.99):.1f} ms "
            f"(p50 ratio {statistics.median(delays) / statistics.median(rtts):.1f}); "
            f"{len(delays)} events, {missing} missing; server CPU "
            f"{1000 * cpu / max(len(acked), 1):.2f} ms per report"
        )
    finally:
        stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--polls", default="0.5,0.05", help="TRUCE_EVENTS_POLL_S values")
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "postgis"])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of Truce (e.g. the main branch) whose server runs each case "
        "first, as the baseline of the same run",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each case (alternating with the baseline)"
    )
    args = parser.parse_args(argv)
    pair = [ROOT] if args.baseline is None else [args.baseline.resolve(), ROOT]
    # Alternating which server goes first: the later one of a pair may run on a warmer (or a
    # more loaded) machine.
    roots = [root for k in range(args.repeat) for root in (pair if k % 2 == 0 else pair[::-1])]
    with tempfile.TemporaryDirectory() as tmp:
        for poll in (float(p) for p in args.polls.split(",")):
            for rate in (float(r) for r in args.rates.split(",")):
                for k, root in enumerate(roots):
                    log = Path(tmp) / "uvicorn.log"
                    if args.store == "sqlite":
                        url = f"sqlite:///{tmp}/events-{rate}-{poll}-{k}.sqlite"
                        run(url, poll, rate, args.seconds, log, root)
                        continue
                    from bench.bench_store import Databases

                    dbs = Databases(args.postgres, Path(tmp))
                    try:
                        url = dbs.url("postgis", f"events_{int(rate)}_{k}")
                        run(url, poll, rate, args.seconds, log, root)
                    finally:
                        dbs.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
