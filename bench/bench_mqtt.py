"""MQTT ingestion on one process, in positions/s, against the same positions over HTTP.

    .venv/bin/python bench/bench_mqtt.py                              # every part, defaults
    .venv/bin/python bench/bench_mqtt.py --count 40000 --repeat 3 --workloads tracks,inside

The broker is a Mosquitto of the bench's own, started on a free loopback port with its own
configuration file (printed at the start: no persistence, no limit on queued messages, so a
backlog of N positions waits whole for the bridge); the machine's broker and its settings are
not used. Every run files into a fresh SQLite file holding the founding scenario.

Workloads (U units, N positions, each unit one report a second, in time order):
- ``tracks``: each unit goes into the peacekeeping zone at Parukh for 30 reports, then out
  for 30, and so on: incidents open and close all along.
- ``inside``: each unit stays inside the zone throughout: one incident a unit stays open for the
  whole run, the worst case for incidents (each batch recomputes the open episode).

Parts:
1. **Filing alone** (no broker): `file_received` in batches of `TRUCE_MQTT_BATCH`, in this
   process; and the same with incidents switched off (as `bench_alerts.py` does). This is the
   ceiling the bridge can reach, whatever the network path.
2. **Drain**: trackers (`mosquitto_pub -l`, C, QoS 1, one process a unit) publish N positions
   while the bridge is offline but its persistent session is registered; then `MqttBridge`
   starts in this process and files them: positions/s from its start (connecting included)
   until every one is filed. This is the consumer's own rate, publishers not competing.
3. **Live**: `truce deliver` (the bridge in a process of its own) is running; the trackers
   publish N positions at once; positions/s from the first publish until all are stored.
4. **Baselines** over HTTP to `truce serve` (one worker) on the same kind of database: the same
   positions as single `POST /reports` (16 connections; `--post-count` of them: slow), and as
   batched POSTs (FeatureCollections of `--post-batch`, 2 connections).

Medians of `--repeat` runs. Nothing here is a unit test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import app.store.sqlite as sqlite_module  # noqa: E402
from app.alerts.mqtt import MqttBridge, broker, file_received, report_filter  # noqa: E402
from app.alerts.mqtt_inbox import open_inbox  # noqa: E402
from app.service import Service  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store import open_store  # noqa: E402
from bench.bench_webhooks import OBSERVER, _count, _env, process, serve  # noqa: E402

PARUKH = (46.808, 40.012)  # inside the peacekeeping zone of the founding scenario
FAR = (44.5, 40.18)  # far from every zone
EPISODE = 30  # reports in, then out, in the ``tracks`` workload

BROKER_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
# A backlog of the whole run waits at the broker for the bridge (the default keeps 1,000).
max_queued_messages 0
max_queued_bytes 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_broker(workdir: Path) -> Iterator[int]:
    """A Mosquitto of the bench's own on a free port; yields the port."""
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(BROKER_CONF.format(port=port))
    with process(["mosquitto", "-c", str(conf)], dict(os.environ), workdir / "mosquitto.log"):
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port


def positions(count: int, units: int, workload: str, prefix: str) -> dict[str, list[bytes]]:
    """Each unit's messages, in time order, by topic."""
    feeds: dict[str, list[bytes]] = {}
    for n in range(count):
        unit, k = n % units, n // units
        inside = workload == "inside" or (k // EPISODE) % 2 == 0
        lon, lat = PARUKH if inside else FAR
        seconds = 36_000 + k  # from 10:00, one a second
        body = {
            "id": f"{prefix}-u{unit}-{k}",
            "lon": lon + unit * 1e-5,
            "lat": lat + (k % 7) * 1e-5,
            "observed_at": f"2022-03-26T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
            f"{seconds % 60:02d}Z",
            "kind": "vehicle",
        }
        feeds.setdefault(f"truce/reports/AZE/{prefix}-u{unit}", []).append(orjson.dumps(body))
    return feeds


def publish(port: int, feeds: dict[str, list[bytes]], workdir: Path) -> float:
    """Every unit's messages by its own `mosquitto_pub -l` (QoS 1), all at once; seconds."""
    files = []
    for i, (topic, lines) in enumerate(feeds.items()):
        path = workdir / f"feed-{i}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        files.append((topic, path))
    start = time.perf_counter()
    publishers = []
    for topic, path in files:
        with path.open("rb") as feed:
            publishers.append(
                subprocess.Popen(
                    ["mosquitto_pub", "-p", str(port), "-V", "mqttv5", "-q", "1", "-l"]
                    + ["-t", topic],
                    stdin=feed,
                )
            )
    for publisher in publishers:
        publisher.wait(600)
    return time.perf_counter() - start


def fresh_db(workdir: Path, name: str) -> Path:
    db = workdir / f"{name}-{time.monotonic_ns()}.sqlite"
    store = open_store(f"sqlite:///{db}")
    try:
        Service(store).load_scenario()
    finally:
        store.close()
    return db


def filing_alone(
    workdir: Path, feeds: dict[str, list[bytes]], batch: int, incidents: bool
) -> float:
    """Part 1: positions/s of `file_received` in batches, in this process."""
    db = fresh_db(workdir, "filing")
    store = open_store(f"sqlite:///{db}")
    original = sqlite_module.keep_incidents
    if not incidents:
        sqlite_module.keep_incidents = lambda *a, **k: 0  # type: ignore[assignment]
    try:
        service = Service(store)
        service.index()
        # Interleaved as the broker delivers them: a message of each unit in turn.
        rows = [(t.encode(), p) for t, lines in feeds.items() for p in lines]
        order = sorted(range(len(rows)), key=lambda i: orjson.loads(rows[i][1])["observed_at"])
        topics = [rows[i][0] for i in order]
        payloads = [rows[i][1] for i in order]
        start = time.perf_counter()
        for i in range(0, len(payloads), batch):
            stored, _, refused = file_received(
                service, topics[i : i + batch], payloads[i : i + batch]
            )
            assert not refused and stored == len(payloads[i : i + batch])
        return len(payloads) / (time.perf_counter() - start)
    finally:
        sqlite_module.keep_incidents = original
        store.close()


def drain(workdir: Path, port: int, feeds: dict[str, list[bytes]]) -> tuple[float, float]:
    """Part 2: positions/s of the bridge filing a backlog published while it was offline; and
    the median batch size."""
    count = sum(map(len, feeds.values()))
    db = fresh_db(workdir, "drain")
    client_id = f"bench-drain-{time.monotonic_ns()}"
    url = f"mqtt://127.0.0.1:{port}"
    settings = Settings(
        _env_file=None, mqtt_url=url, mqtt_client_id=client_id, mqtt_session_expiry_s=600
    )

    async def register() -> None:  # the session exists: the broker keeps what is published
        inbox = await open_inbox(
            broker(url, client_id, 600), report_filter(settings.mqtt_topic_root)
        )
        inbox.close()

    asyncio.run(register())
    publish(port, feeds, workdir)
    store = open_store(f"sqlite:///{db}")
    try:
        service = Service(store)
        service.index()
        bridge = MqttBridge(service, settings)

        async def run() -> float:
            stop = asyncio.Event()
            start = time.perf_counter()
            task = asyncio.create_task(bridge.run(stop))
            deadline = time.monotonic() + 600
            while bridge.filed < count and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - start
            stop.set()
            await task
            return elapsed

        elapsed = asyncio.run(run())
        assert bridge.filed == count and not bridge.refused, (bridge.filed, bridge.refused)
        return count / elapsed, statistics.median(bridge.batch_sizes)
    finally:
        store.close()


def live(workdir: Path, port: int, feeds: dict[str, list[bytes]]) -> tuple[float, float]:
    """Part 3: positions/s of `truce deliver` while trackers publish; and publishing's rate."""
    count = sum(map(len, feeds.values()))
    db = fresh_db(workdir, "live")
    env = _env(
        db,
        TRUCE_MQTT_URL=f"mqtt://127.0.0.1:{port}",
        TRUCE_MQTT_CLIENT_ID=f"bench-live-{time.monotonic_ns()}",
        TRUCE_MQTT_SESSION_EXPIRY_S="600",
    )
    command = [sys.executable, "-c", "from app.cli import main; main()", "deliver"]
    with process(command, env, workdir / "deliver.log"):
        probe = {"truce/reports/AZE/probe": [orjson.dumps(_probe())]}
        deadline = time.monotonic() + 60
        scenario = _count(db)  # the founding scenario has reports of its own
        while _count(db) <= scenario:  # the bridge is up and subscribed once the probe is in
            if time.monotonic() > deadline:
                raise RuntimeError((workdir / "deliver.log").read_text())
            publish(port, probe, workdir)
            time.sleep(0.3)
        before = _count(db)
        start = time.perf_counter()
        published = publish(port, feeds, workdir)
        deadline = time.monotonic() + 600
        while _count(db) - before < count and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        got = _count(db) - before
        assert got == count, (got, count, (workdir / "deliver.log").read_text()[-3000:])
    return count / elapsed, count / published


def _probe() -> dict[str, Any]:
    return {"id": "probe", "lon": FAR[0], "lat": FAR[1], "observed_at": "2022-03-25T00:00:00Z"}


def _features(feeds: dict[str, list[bytes]]) -> list[dict[str, Any]]:
    out = []
    for topic, lines in feeds.items():
        _, _, party, unit = topic.split("/")
        for line in lines:
            body = orjson.loads(line)
            out.append(
                {
                    "type": "Feature",
                    "id": body["id"],
                    "geometry": {"type": "Point", "coordinates": [body["lon"], body["lat"]]},
                    "properties": {
                        "party": party,
                        "unit": unit,
                        "observed_at": body["observed_at"],
                        "kind": body["kind"],
                    },
                }
            )
    return sorted(out, key=lambda f: f["properties"]["observed_at"])


async def _post(url: str, bodies: list[Any], connections: int) -> int:
    done = 0
    async with httpx.AsyncClient(timeout=120) as client:

        async def worker(first: int) -> None:
            nonlocal done
            for body in bodies[first::connections]:
                answer = await client.post(
                    f"{url}/reports", content=orjson.dumps(body), headers=_headers()
                )
                assert answer.status_code == 201, answer.text
                done += len(body["features"]) if "features" in body else 1

        await asyncio.gather(*(worker(i) for i in range(connections)))
    return done


def _headers() -> dict[str, str]:
    return {"X-API-Key": OBSERVER, "Content-Type": "application/json"}


def over_http(workdir: Path, features: list[dict[str, Any]], batch: int | None) -> float:
    """Part 4: reports/s as single POSTs (`batch` None) or FeatureCollections of `batch`."""
    db = fresh_db(workdir, "http")
    if batch is None:
        bodies: list[Any] = features
        connections = 16
    else:
        bodies = [
            {"type": "FeatureCollection", "features": features[i : i + batch]}
            for i in range(0, len(features), batch)
        ]
        connections = 2
    with serve(workdir, db, TRUCE_DELIVER="false") as url:
        start = time.perf_counter()
        done = asyncio.run(_post(url, bodies, connections))
        return done / (time.perf_counter() - start)


def _median(runs: list[float]) -> str:
    return f"{statistics.median(runs):,.0f}/s (runs: {', '.join(f'{r:,.0f}' for r in runs)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40_000, help="positions a run")
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="tracks,inside")
    parser.add_argument("--parts", default="filing,drain,live,http")
    parser.add_argument("--post-count", type=int, default=2_000, help="single POSTs a run")
    parser.add_argument("--post-batch", type=int, default=500)
    args = parser.parse_args()
    batch = Settings(_env_file=None).mqtt_batch
    print(f"load average at start: {os.getloadavg()}")
    print(f"{args.count:,} positions, {args.units} units; TRUCE_MQTT_BATCH {batch:,}")
    print("broker: a private Mosquitto with\n    " + BROKER_CONF.replace("\n", "\n    "))
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory(prefix="truce-bench-mqtt-") as tmp:
        workdir = Path(tmp)
        with private_broker(workdir) as port:
            for workload in args.workloads.split(","):
                print(f"== workload {workload} ==")

                def feeds(tag: str, workload: str = workload) -> dict[str, list[bytes]]:
                    prefix = f"{tag}{time.monotonic_ns() % 10**9}"
                    return positions(args.count, args.units, workload, prefix)

                runs = partial(_runs, args.repeat)
                if "filing" in parts:
                    with_ = runs(lambda: filing_alone(workdir, feeds("f"), batch, True))
                    without = runs(lambda: filing_alone(workdir, feeds("g"), batch, False))
                    print(f"1. filing alone, batches of {batch:,}: {_median(with_)}")
                    print(f"   the same without incidents: {_median(without)}")
                if "drain" in parts:
                    drained = [drain(workdir, port, feeds("d")) for _ in range(args.repeat)]
                    sizes = [size for _, size in drained]
                    print(
                        f"2. drain of a backlog by the bridge: {_median([r for r, _ in drained])}"
                        f"; median batch {statistics.median(sizes):,.0f}"
                    )
                if "live" in parts:
                    lived = [live(workdir, port, feeds("l")) for _ in range(args.repeat)]
                    print(
                        f"3. live, `truce deliver` while trackers publish: "
                        f"{_median([r for r, _ in lived])}; trackers published at "
                        f"{_median([p for _, p in lived])}"
                    )
                if "http" in parts:
                    few = _features(positions(args.post_count, args.units, workload, "p"))
                    single = runs(partial(over_http, workdir, few, None))
                    everything = _features(feeds("h"))
                    batched = runs(partial(over_http, workdir, everything, args.post_batch))
                    print(f"4. single POST /reports, {args.post_count:,}: {_median(single)}")
                    print(f"   batched POSTs of {args.post_batch}: {_median(batched)}")
    print(f"load average at end: {os.getloadavg()}")


def _runs(repeat: int, run: Any) -> list[float]:
    return [float(run()) for _ in range(repeat)]


if __name__ == "__main__":
    main()
