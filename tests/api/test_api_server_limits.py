"""`truce serve` against hostile and slow clients, with real sockets over loopback.

Head size (431) and head and body read timeouts (408), a keep-alive that outlasts clients' pools,
and slow clients that do not delay the others. Every loop here is bounded in count and time.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import orjson
import pytest

from app.cli.serve import uvicorn_options
from app.settings import Settings
from tests.api.support import API_KEYS, KEYS, REPO, free_port
from tests.factories import PARUKH, point_feature

CHECK = orjson.dumps(point_feature(*PARUKH))


@contextmanager
def truce_serve(directory: Path, **env: str) -> Iterator[tuple[str, int]]:
    """`truce serve` on a free loopback port, with `TRUCE_*` overrides; (host, port)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRUCE_")}
    environment.update(
        {
            "TRUCE_DATABASE_URL": f"sqlite:///{directory / 'truce.sqlite'}",
            "TRUCE_API_KEYS": API_KEYS,
            "TRUCE_LOAD_SCENARIO": "true",
            **env,
        }
    )
    log = directory / "serve.log"
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=REPO,
            env=environment,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A server with a 1 s read timeout."""
    with truce_serve(tmp_path_factory.mktemp("strict"), TRUCE_READ_TIMEOUT_S="1") as address:
        yield address


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Everything the server sends until it closes: status, headers, body."""
    data = b""
    with suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def test_serve_gives_uvicorn_the_limits_and_a_long_keep_alive() -> None:
    options = uvicorn_options(Settings(_env_file=None))  # type: ignore[call-arg]
    assert options["timeout_keep_alive"] == 75
    assert options["http"] == "app.api.protocol:GuardedHttpToolsProtocol"


def test_a_head_over_the_limit_is_431_whether_or_not_it_is_complete(
    strict: tuple[str, int],
) -> None:
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20_000
    for ending in (b"", b"\r\n\r\n"):
        with connect(strict) as sock:
            sock.sendall(big + ending)
            status, headers, body = read_answer(sock)
        assert status == 431
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        assert orjson.loads(body)["field"] == "headers"
    # A head just under the limit is served.
    answer = httpx.get(
        f"http://{strict[0]}:{strict[1]}/health", headers={"X-Padding": "a" * 15_000}
    )
    assert answer.status_code == 200


def test_a_32_mb_header_is_not_read_before_the_refusal(strict: tuple[str, int]) -> None:
    sent = 0
    with connect(strict) as sock:
        sock.sendall(b"GET /zones HTTP/1.1\r\nHost: x\r\nX-API-Key: ")
        chunk = b"k" * 65536
        with suppress(BrokenPipeError, ConnectionResetError):
            while sent < 32 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
    # The server closed the connection long before 32 MB (what is sent is then refused by
    # the kernel), and it still serves others.
    assert sent < 32 * 1024 * 1024
    assert httpx.get(f"http://{strict[0]}:{strict[1]}/health").status_code == 200


def test_a_head_that_stops_arriving_gets_408(strict: tuple[str, int]) -> None:
    with connect(strict) as sock:
        sock.sendall(b"GET /zones HTTP/1.1\r\nHost: x\r\n")
        status, headers, body = read_answer(sock)  # the server answers after 1 s
    assert status == 408
    assert headers["connection"] == "close"
    assert orjson.loads(body)["status"] == 408


def test_a_body_that_stops_arriving_gets_408(strict: tuple[str, int]) -> None:
    with connect(strict) as sock:
        sock.sendall(
            b"POST /check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-API-Key: " + KEYS["viewer"].encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
        )
        status, headers, body = read_answer(sock)
    assert status == 408
    assert headers["connection"] == "close"
    problem = orjson.loads(body)
    assert problem["field"] == "body" and "stopped arriving" in problem["detail"]


def get_on(sock: socket.socket, path: str) -> int:
    """Send a keep-alive GET on `sock` and read its one answer; its status."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(v) for n, _, v in (x.partition(":") for x in lines) if n.lower() == "content-length"
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1])


def test_slow_clients_do_not_delay_the_others_and_idle_connections_stay_usable(
    tmp_path: Path,
) -> None:
    """50 clients dribble heads and bodies while a normal client checks reports."""
    with (
        truce_serve(tmp_path) as address,
        httpx.Client(
            base_url=f"http://{address[0]}:{address[1]}",
            headers={"X-API-Key": KEYS["viewer"], "Content-Type": "application/json"},
            timeout=10,
        ) as client,
        connect(address) as idle,
    ):

        def latencies(count: int) -> list[float]:
            out = []
            for _ in range(count):
                start = time.perf_counter()
                assert client.post("/check", content=CHECK).status_code == 200
                out.append(time.perf_counter() - start)
            return out

        latencies(10)  # warm up
        # A kept-alive connection that will sit idle through the slow phase (over 5 s).
        assert get_on(idle, "/health") == 200
        baseline = statistics.median(latencies(40))

        stop = threading.Event()
        sockets: list[socket.socket] = []
        for i in range(50):
            sock = connect(address)
            if i % 2:  # a whole head, then its body one byte at a time
                sock.sendall(
                    b"POST /check HTTP/1.1\r\nHost: x\r\nX-API-Key: "
                    + KEYS["viewer"].encode()
                    + b"\r\nContent-Length: 100000\r\n\r\n"
                )
            else:  # a head one byte at a time
                sock.sendall(b"GET /zones HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sockets.append(sock)

        def dribble() -> None:
            for _ in range(100):  # at most 10 s
                if stop.wait(0.1):
                    return
                for sock in sockets:
                    with suppress(OSError):
                        sock.sendall(b"a")

        dribbler = threading.Thread(target=dribble)
        dribbler.start()
        try:
            time.sleep(0.5)
            started = time.monotonic()
            slow_phase = latencies(40)
            time.sleep(max(0.0, 5.5 - (time.monotonic() - started)))  # past uvicorn's old 5 s
        finally:
            stop.set()
            dribbler.join(15)
            for sock in sockets:
                sock.close()
        # Served as usual: the median stays near the baseline, and none waited long.
        assert statistics.median(slow_phase) <= max(5 * baseline, baseline + 0.05), (
            baseline,
            slow_phase,
        )
        assert max(slow_phase) < 2.0
        # The same connection, idle for over 5 s, is still open and serves again.
        assert get_on(idle, "/health") == 200
