"""A real webhook receiver on loopback for the tests: a threaded http.server with a script.

Each request takes the next action of `script` (then `then` for ever): ``refuse`` answers 503,
``timeout`` holds the request longer than the sender waits, ``accept`` answers 204 and
``slow`` answers 204 after 0.1 s. Every request is kept (headers and body bytes), accepted or
not, so tests can check retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and what it was answered."""

    headers: dict[str, str]
    body: bytes
    action: str
    at: float

    @property
    def event_id(self) -> int:
        """The event id of the body."""
        return int(orjson.loads(self.body)["id"])


@dataclass
class Receiver:
    """The receiver's script and what it received (see the module docstring)."""

    script: list[str]
    then: str = "accept"
    hold_s: float = 2.0
    received: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.then

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.action == "accept"]

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        """The accepted requests once there are `count` of them (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            accepted = self.accepted()
            if len(accepted) >= count:
                return accepted
            time.sleep(0.02)
        raise AssertionError(f"{len(self.accepted())} of {count} deliveries in {timeout_s} s")


@contextmanager
def receiver(
    script: Sequence[str] = (), then: str = "accept", hold_s: float = 2.0
) -> Iterator[Receiver]:
    """A running receiver on 127.0.0.1 (a free port); stopped on exit."""
    state = Receiver(list(script), then, hold_s)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            action = state.next_action()
            with state.lock:
                state.received.append(
                    Received(
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        "accept" if action == "slow" else action,
                        time.monotonic(),
                    )
                )
            if action == "timeout":
                time.sleep(state.hold_s)
                return
            if action == "slow":  # accepted, after a while: a delivery in flight for longer
                time.sleep(0.1)
                action = "accept"
            self.send_response(204 if action == "accept" else 503)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
