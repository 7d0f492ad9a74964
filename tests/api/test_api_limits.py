"""Limits in the app: heavy-request turns, failed-authentication throttling, short-key warnings,
the body's read timeout (as middleware) and the settings' documentation."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.limits import AuthThrottle, ReadTimeout, TooManyFailures
from app.service import Service
from app.settings import Settings
from tests.api.support import REPO, assert_problem, auth
from tests.factories import FAR, PARUKH, collection, point_feature

VIEWER = auth("viewer")


# -- heavy requests ---------------------------------------------------------------------------


@pytest.fixture
def held_incursions(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """`Service.incursions` patched to wait for `release`; `entered` is set by each call."""
    release, entered = threading.Event(), threading.Event()
    real = Service.incursions
    calls = 0
    lock = threading.Lock()

    def held(self: Service, **kwargs: Any) -> Any:
        nonlocal calls
        with lock:
            calls += 1
            if calls >= 2:
                entered.set()
        assert release.wait(30), "the test never released the held requests"
        return real(self, **kwargs)

    monkeypatch.setattr(Service, "incursions", held)
    return release, entered


def test_heavy_requests_in_flight_do_not_block_a_single_check(
    make_client: Callable[..., TestClient],
    held_incursions: tuple[threading.Event, threading.Event],
) -> None:
    release, entered = held_incursions
    client = make_client(heavy_requests=2, heavy_wait_s=0.05)
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(client.get, "/incursions", headers=VIEWER) for _ in range(2)]
        try:
            assert entered.wait(30), "the heavy requests never started"
            # Both turns are taken: a single check is still answered, at once...
            check = client.post("/check", json=point_feature(*PARUKH), headers=VIEWER)
            assert check.status_code == 200
            assert check.json()["violations"] >= 1
            # ...while a third heavy request is turned away with a time to come back.
            third = client.get("/incursions", headers=VIEWER)
            problem = assert_problem(third, 503)
            assert third.headers["Retry-After"] == "1"
            assert "heavy" in problem["detail"]
            assert all(not future.done() for future in held)
        finally:
            release.set()
        assert [future.result().status_code for future in held] == [200, 200]
    # The turns came back: a heavy request runs again.
    assert client.get("/incursions", headers=VIEWER).status_code == 200


def test_a_big_check_waits_for_a_turn_and_a_small_one_does_not(
    make_client: Callable[..., TestClient],
    held_incursions: tuple[threading.Event, threading.Event],
) -> None:
    release, entered = held_incursions
    client = make_client(heavy_requests=2, heavy_wait_s=0.05, heavy_body_bytes=4096)
    big = collection(*(point_feature(*FAR, id=f"big-{i}") for i in range(100)))
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(client.get, "/incursions", headers=VIEWER) for _ in range(2)]
        try:
            assert entered.wait(30)
            assert_problem(client.post("/check", json=big, headers=VIEWER), 503)
            assert (
                client.post("/check", json=point_feature(*FAR), headers=VIEWER).status_code == 200
            )
        finally:
            release.set()
        assert [future.result().status_code for future in held] == [200, 200]
    answer = client.post("/check", json=big, headers=VIEWER)
    assert answer.status_code == 200 and answer.json()["numberReturned"] == 0


def test_an_anonymous_heavy_request_is_refused_before_it_takes_a_turn(
    make_client: Callable[..., TestClient],
    held_incursions: tuple[threading.Event, threading.Event],
) -> None:
    release, _ = held_incursions
    release.set()
    client = make_client(heavy_requests=1)
    assert_problem(client.get("/incursions"), 401)
    assert_problem(client.get("/map"), 401)


# -- failed authentication --------------------------------------------------------------------


def test_wrong_keys_from_one_address_are_throttled_and_audited(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(auth_failures=3, auth_window_s=60)
    for _ in range(3):
        assert_problem(client.get("/zones", headers=auth("wrong")), 401, "X-API-Key")
    throttled = client.get("/zones", headers=auth("wrong"))
    problem = assert_problem(throttled, 429, "X-API-Key")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert "too many wrong API keys" in problem["detail"]
    # While throttled, even the right key is not looked at: it would be one more guess.
    assert_problem(client.get("/zones", headers=VIEWER), 429)
    # Requests without a key do not authenticate, so they are not throttled (401 as ever).
    assert_problem(client.get("/zones"), 401)
    entries = client.get("/audit", headers=auth("admin"))
    # The admin is throttled too from this address; read the log from the store instead.
    assert entries.status_code == 429
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    throttles = [e for e in service.store.audit_log(limit=1000) if e.action == "auth.throttle"]
    for _ in range(50):  # the entry is written off the event loop
        if throttles:
            break
        threading.Event().wait(0.02)
        throttles = [e for e in service.store.audit_log(limit=1000) if e.action == "auth.throttle"]
    assert len(throttles) == 1
    assert throttles[0].target == "testclient"
    assert "3 wrong API keys" in (throttles[0].detail or "")


def test_throttling_is_per_address_and_ends_with_the_window() -> None:
    now = [1000.0]
    audited: list[tuple[str, str]] = []
    throttle = AuthThrottle(3, 60, lambda a, d: audited.append((a, d)), clock=lambda: now[0])
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
        now[0] += 1
    with pytest.raises(TooManyFailures) as raised:
        throttle.check("10.0.0.1")
    # Failures at 1000, 1001, 1002; now 1003: the first leaves the window at 1060, in 57 s.
    assert raised.value.retry_after == 57
    throttle.check("10.0.0.2")  # another address is not affected
    now[0] = 1060.5  # the first failure is out of the window: one more try is allowed
    throttle.check("10.0.0.1")
    assert [a for a, _ in audited] == ["10.0.0.1"]  # audited once, when the limit was reached


def test_the_throttle_forgets_addresses_rather_than_grow() -> None:
    now = [0.0]
    throttle = AuthThrottle(2, 60, clock=lambda: now[0])
    throttle.MAX_ADDRESSES = 100
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._seen) <= 100


def test_short_settings_keys_are_warned_about_at_start_without_the_key(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="truce.api"):
        make_client(api_keys="short-key:admin,a-long-enough-random-key-123456:viewer")
    warnings = [r.getMessage() for r in caplog.records if "TRUCE_API_KEYS" in r.getMessage()]
    assert len(warnings) == 1
    assert "entry 1 (admin) is only 9 characters" in warnings[0]
    assert "short-key" not in warnings[0]


# -- the body's read timeout ------------------------------------------------------------------


def test_a_body_that_stops_arriving_is_refused_with_408_and_the_connection_closed() -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # The route reads the body; the middleware's error reaches it as the handlers see it.
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception as exc:
            sent.append({"error": exc})

    async def stalled() -> dict[str, Any]:
        if not sent:
            sent.append({"first": True})
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(10)
        raise AssertionError("not reached")

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/check", "headers": []}
    asyncio.run(ReadTimeout(app, timeout_s=0.05)(scope, stalled, send))
    error = sent[-1]["error"]
    assert type(error).__name__ == "RequestTimeout" and error.field == "body"


def test_after_the_body_a_read_may_wait_as_long_as_it_likes() -> None:
    reads: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reads.append((await receive())["type"])
        reads.append((await receive())["type"])  # waits for the client to leave

    async def receive() -> dict[str, Any]:
        if not reads:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(0.1)  # longer than the timeout
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/events", "headers": []}
    asyncio.run(ReadTimeout(app, timeout_s=0.02)(scope, receive, send))
    assert reads == ["http.request", "http.disconnect"]


def test_the_408_problem_closes_the_connection(make_client: Callable[..., TestClient]) -> None:
    from app.api.limits import RequestTimeout

    client = make_client()

    @client.app.post("/_stall")  # type: ignore[attr-defined]
    async def stall() -> None:
        raise RequestTimeout("the request body stopped arriving for 1 s", field="body")

    answer = client.post("/_stall", content=b"{}")
    assert_problem(answer, 408, "body")
    assert answer.headers["Connection"] == "close"


# -- settings ---------------------------------------------------------------------------------


def test_every_setting_is_in_the_readme_settings_table() -> None:
    readme = (REPO / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `TRUCE_"))
    documented = set(re.findall(r"`TRUCE_([A-Z_]+)`", table))
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_new_limits_have_working_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.max_header_bytes == 16 * 1024
    assert settings.keep_alive_s > 60  # longer than common clients' pools keep connections
    assert settings.heavy_requests >= 1 and settings.auth_failures >= 1
