"""Several machines over one PostGIS: three hosts, each with its own `truce serve`.

The hosts are network namespaces (`ip netns`, as root): each is joined to the test's namespace by
a veth pair, its server listens on its own address there, and reaches PostgreSQL (a temporary
cluster of the test, listening on the test's end of every veth) over that link. Where namespaces
cannot be made (not root, no `ip`), the hosts are three servers on loopback ports instead; the
test prints which it used and records it as the `network` property of the test report
(`TRUCE_TEST_NO_NETNS=1` forces the fallback).

A zone created through one host is used at once by a check on another; reports sent through all
hosts at once are all stored, each once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.store.postgis import PostGISStore
from tests.api.support import API_KEYS, REPO, auth, free_port
from tests.factories import point_feature, zone_feature
from tests.pgcluster import Cluster, temporary_root

VIEWER = auth("viewer")
OBSERVER = auth("observer")
ADMIN = auth("admin")
HOSTS = 3
PORT = 8000
#: The URL of the hosts' database, as the test's own namespace reaches it.
DATABASE: dict[str, str] = {}


@dataclass
class Host:
    """One machine: where its server answers, and the namespace it runs in (if any)."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def _namespaces() -> Iterator[list[tuple[str, str, str]]]:
    """Three namespaces, each with a veth to this one: (namespace, our address, its address)."""
    tag = os.getpid() % 10_000
    subnet = 100 + os.getpid() % 50
    made: list[tuple[str, str, str]] = []
    try:
        for i in range(HOSTS):
            ns, ours, theirs = f"truce-{tag}-{i}", f"tv{tag}h{i}", f"tv{tag}n{i}"
            near, far = f"10.{subnet}.{i}.1", f"10.{subnet}.{i}.2"
            _ip("netns", "add", ns)
            made.append((ns, near, far))
            _ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
            _ip("link", "set", theirs, "netns", ns)
            _ip("addr", "add", f"{near}/24", "dev", ours)
            _ip("link", "set", ours, "up")
            _ip("-n", ns, "addr", "add", f"{far}/24", "dev", theirs)
            _ip("-n", ns, "link", "set", theirs, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield made
    finally:
        for i, (ns, _, _) in enumerate(made):
            with suppress(subprocess.CalledProcessError):
                _ip("link", "del", f"tv{tag}h{i}")  # deletes its peer too
            with suppress(subprocess.CalledProcessError):
                _ip("netns", "del", ns)


def _can_make_namespaces() -> bool:
    if os.environ.get("TRUCE_TEST_NO_NETNS"):  # to try the loopback fallback
        return False
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"truce-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return False
    with suppress(subprocess.CalledProcessError):
        _ip("netns", "del", probe)
    return True


def _serve(name: str, url: str, listen: str, port: int, log: Path, prefix: list[str]) -> Host:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRUCE_")}
    environment.update(
        {"TRUCE_API_KEYS": API_KEYS, "TRUCE_LOAD_SCENARIO": "true", "PYTHONPATH": str(REPO)}
    )
    command = [
        *prefix,
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "serve",
        "--host",
        listen,
        "--port",
        str(port),
        "--database-url",
        url,
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=out, stderr=out, start_new_session=True
        )
    return Host(name, f"http://{listen}:{port}", process, log)


def _wait_healthy(host: Host) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise RuntimeError(f"{host.name} exited:\n{host.log.read_text()}")
        with suppress(httpx.TransportError):
            if httpx.get(f"{host.url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{host.name} did not answer /health:\n{host.log.read_text()}")


def _stop(host: Host) -> None:
    if host.process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(host.process.pid, 15)
    try:
        host.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(host.process.pid, 9)
        host.process.wait(timeout=15)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Host]]]:
    """Three hosts with a server each over one PostGIS: ("namespaces" or "loopback", hosts)."""
    logs = tmp_path_factory.mktemp("hosts")
    with ExitStack() as stack:
        if _can_make_namespaces():
            mode = "namespaces"
            links = stack.enter_context(_namespaces())
            listen = ",".join(near for _, near, _ in links)
        else:
            mode = "loopback"
            links = [("", "127.0.0.1", "127.0.0.1")] * HOSTS
            listen = "127.0.0.1"
        root = temporary_root()
        stack.callback(shutil.rmtree, root, True)
        cluster = Cluster(root, free_port(), listen).init().start()
        stack.callback(cluster.stop, "immediate")
        # The schema once, before the servers race to make it.
        PostGISStore(cluster.url(host=links[0][1]), listen=False).close()
        started: list[Host] = []
        for i, (ns, near, far) in enumerate(links):
            prefix = ["ip", "netns", "exec", ns] if ns else []
            port = PORT if ns else free_port()
            url = cluster.url(host=near, query="pool_timeout=5")
            host = _serve(f"host-{i}", url, far, port, logs / f"host-{i}.log", prefix)
            stack.callback(_stop, host)
            started.append(host)
        for host in started:
            _wait_healthy(host)
        print(f"multi-host test over {mode}: " + ", ".join(h.url for h in started))
        DATABASE["url"] = cluster.url(host=links[0][1])
        yield mode, started


def _zones_found(host: Host, lon: float, lat: float) -> list[tuple[str, bool]]:
    body = point_feature(lon, lat, observed_at=None)
    answer = httpx.post(
        f"{host.url}/check", json=body, headers={**VIEWER, "Connection": "close"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return [
        (f["properties"]["zone_id"], f["properties"]["violation"])
        for f in answer.json()["features"]
    ]


def test_a_zone_created_through_one_host_is_used_at_once_by_the_others(
    hosts: tuple[str, list[Host]], record_property: Any
) -> None:
    mode, servers = hosts
    record_property("network", mode)
    where = (44.05, 41.05)
    for host in servers:
        assert _zones_found(host, *where) == []
    first, *others = servers
    created = httpx.post(f"{first.url}/zones", json=zone_feature("far", 44.0, 41.0), headers=ADMIN)
    assert created.status_code == 201, created.text
    for host in others + [first]:
        assert _zones_found(host, *where) == [("far", True)], host.name
    # A new version through another host, used at once by the first.
    allowed = zone_feature("far", 44.0, 41.0, authorized=["AZE"])
    changed = httpx.put(f"{others[0].url}/zones/far", json=allowed, headers=ADMIN)
    assert changed.status_code == 200, changed.text
    for host in [first, *others]:
        assert _zones_found(host, *where) == [("far", False)], host.name


def test_reports_sent_through_every_host_at_once_are_all_there_once(
    hosts: tuple[str, list[Host]], record_property: Any
) -> None:
    mode, servers = hosts
    record_property("network", mode)
    errors: list[str] = []
    barrier = threading.Barrier(len(servers))

    def send(index: int, host: Host) -> None:
        with httpx.Client(base_url=host.url, headers=OBSERVER, timeout=60) as client:
            barrier.wait()
            for batch in range(10):
                features = [
                    point_feature(
                        46.0 + i / 1000,
                        39.0,
                        id=f"h{index}-{batch}-{i}",
                        observed_at="2023-05-01T00:00:00Z",
                    )
                    for i in range(40)
                ]
                # Every host is also sent the same shared report: stored once, the rest
                # duplicates.
                features.append(
                    point_feature(
                        46.5, 39.5, id=f"shared-{batch}", observed_at="2023-05-02T00:00:00Z"
                    )
                )
                answer = client.post(
                    "/reports", json={"type": "FeatureCollection", "features": features}
                )
                if answer.status_code not in (200, 201):
                    errors.append(answer.text)

    threads = [threading.Thread(target=send, args=(i, h)) for i, h in enumerate(servers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    expected = {f"h{i}-{b}-{n}" for i in range(len(servers)) for b in range(10) for n in range(40)}
    expected |= {f"shared-{b}" for b in range(10)}
    for host in servers:  # every host lists them all, each once
        ids: list[str] = []
        link: str | None = f"{host.url}/reports?limit=1000&since=2023-05-01T00:00:00Z"
        while link is not None:
            page = httpx.get(link, headers=VIEWER, timeout=30).json()
            ids += [f["id"] for f in page["features"]]
            link = next((x["href"] for x in page["links"] if x["rel"] == "next"), None)
            if link is not None and link.startswith("/"):
                link = host.url + link
        assert len(ids) == len(set(ids)) and set(ids) == expected, host.name


def test_zones_imported_by_the_command_line_are_used_at_once_by_every_host(
    hosts: tuple[str, list[Host]], tmp_path: Path, record_property: Any
) -> None:
    mode, servers = hosts
    record_property("network", mode)
    where = (43.05, 42.05)
    for host in servers:
        assert _zones_found(host, *where) == []
    path = tmp_path / "zones.geojson"
    feature = zone_feature("imported", 43.0, 42.0)
    path.write_text(orjson.dumps({"type": "FeatureCollection", "features": [feature]}).decode())
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRUCE_")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "import",
            "zones",
            str(path),
            "--database-url",
            DATABASE["url"],
            "--no-progress",
        ],
        cwd=REPO,
        env={**environment, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for host in servers:  # another process wrote the zone: every server uses it at once
        assert _zones_found(host, *where) == [("imported", True)], host.name
