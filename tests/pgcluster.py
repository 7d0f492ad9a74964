"""Temporary PostgreSQL clusters for the tests that stop, restart or replicate a server.

The machine's own server is never stopped or reconfigured: each test that needs a server of its
own makes one with `initdb` in a temporary directory, on a free port (and on any listen address,
such as a veth address for the multi-host test), and removes it at the end. As root, the server
runs as the `postgres` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.api.support import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], timeout: float = 120) -> None:
    subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=timeout, cwd="/")


class Cluster:
    """One PostgreSQL server in a directory of its own."""

    def __init__(self, root: Path, port: int, listen: str = "127.0.0.1") -> None:
        """A cluster in `root`/data (not created yet), to listen on `listen`:`port`."""
        self.root = root
        self.data = root / "data"
        self.port = port
        self.listen = listen
        self.log = root / "server.log"

    def url(self, database: str = "postgres", host: str | None = None, query: str = "") -> str:
        """A URL of one of its databases, as `postgres`."""
        suffix = f"?{query}" if query else ""
        host = host or self.listen.split(",")[0]
        return f"postgresql://postgres@{host}:{self.port}/{database}{suffix}"

    def init(self) -> Cluster:
        """Create the cluster: trust for everyone (a test server), WAL for replicas."""
        _run([str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N"])
        self._configure()
        return self

    def _configure(self) -> None:
        settings = {
            "port": str(self.port),
            "listen_addresses": f"'{self.listen}'",
            "unix_socket_directories": f"'{self.root}'",
            "wal_level": "replica",
            "max_wal_senders": "4",
            "hot_standby": "on",
            "fsync": "off",  # a test server: no power cut to survive, only restarts
            "shared_buffers": "32MB",
            "max_connections": "60",
        }
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 0.0.0.0/0 trust\n"
            "host replication all 0.0.0.0/0 trust\n"
        )
        if os.geteuid() == 0:
            shutil.chown(self.data / "pg_hba.conf", "postgres", "postgres")

    def start(self) -> Cluster:
        """Start the server and wait until it takes connections."""
        _run([str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"])
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: clients are disconnected; `immediate`: as a crash)."""
        _run([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def running(self) -> bool:
        """Whether the server answers."""
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def replica(self, root: Path, port: int) -> Cluster:
        """A streaming replica of this server (pg_basebackup), started on `port`."""
        standby = Cluster(root, port, self.listen)
        host = self.listen.split(",")[0]
        _run(
            [
                str(BIN / "pg_basebackup"),
                "-h",
                host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-D",
                str(standby.data),
                "-R",  # standby.signal and primary_conninfo
                "-X",
                "stream",
                "-c",
                "fast",
            ]
        )
        # The copy carries the primary's settings: a line added later wins.
        with (standby.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {port}\nunix_socket_directories = '{root}'\n")
        return standby.start()


def temporary_root() -> Path:
    """A directory that the `postgres` user may write (pytest's are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="truce-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return root


@contextmanager
def temporary_cluster(listen: str = "127.0.0.1", port: int | None = None) -> Iterator[Cluster]:
    """A new cluster, started, stopped and removed at the end."""
    root = temporary_root()
    cluster = Cluster(root, port or free_port(), listen).init().start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def wait_until(condition: object, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `condition()` until it is true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")
