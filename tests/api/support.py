"""Helpers for the API tests: keys, request bodies, and real uvicorn servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.api.models import Problem

REPO = Path(__file__).resolve().parents[2]

KEYS = {
    "viewer": "viewer-key-7f3a9c",
    "observer": "observer-key-2b8e41",
    "admin": "admin-key-c05d6e",
}
API_KEYS = ",".join(f"{key}:{role}" for role, key in KEYS.items())
WRONG_KEY = "not-a-key-at-all"


def auth(role: str | None) -> dict[str, str]:
    """Headers with the key of `role` ("wrong" for a key nobody has, None for none)."""
    if role is None:
        return {}
    return {"X-API-Key": WRONG_KEY if role == "wrong" else KEYS[role]}


# -- real servers ---------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A uvicorn process serving Truce."""

    url: str
    process: subprocess.Popen[bytes]
    db: Path | str  # a SQLite file, or a PostgreSQL URL
    log: Path

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (and its workers: it leads its own process group)."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def database_url(db: Path | str) -> str:
    """The TRUCE_DATABASE_URL of a SQLite file or of a PostgreSQL URL (kept as it is)."""
    return db if isinstance(db, str) else f"sqlite:///{db}"


def start_server(
    db: Path | str, log: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Server:
    """Start `uvicorn --factory app.api.main:create_app_from_env` and wait for /health.

    `db` is a SQLite file or a PostgreSQL URL.
    """
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRUCE_")}
    environment.update(
        {
            "TRUCE_DATABASE_URL": database_url(db),
            "TRUCE_API_KEYS": API_KEYS,
            "TRUCE_LOAD_SCENARIO": "true",
        }
    )
    environment.update(env or {})
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
    ]
    with log.open("ab") as out:
        # Its own session: the test can kill it and its workers together.
        process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=out, stderr=out, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, db, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    raise RuntimeError(f"uvicorn did not answer /health within 60 s:\n{log.read_text()}")


#: Limits of the shared server, small enough to test 413 cheaply.
SERVER_MAX_BODY = 2 * 1024 * 1024
SERVER_MAX_FEATURES = 5_000


@contextmanager
def running_server(
    db: Path | str, log: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A server for the duration of a `with` block."""
    server = start_server(db, log, workers=workers, env=env)
    try:
        yield server
    finally:
        server.kill()


PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "field", "index"}


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = dict(response.json())
    assert set(problem) >= PROBLEM_KEYS
    Problem.model_validate(problem)
    assert problem["status"] == status
    if field is not None:
        assert problem["field"] == field
    return problem
