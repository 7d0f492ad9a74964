"""The `Idempotency-Key` header on writes (`POST /reports`, `POST /zones`).

A client that did not get an answer (a timeout, a reset connection) cannot know whether its write
was stored. Sent again with the same `Idempotency-Key`, it is answered exactly as the first time
(status, body, `Content-Type` and `Location`, plus `Idempotent-Replayed: true`) and nothing is
stored twice. That matters most for reports sent without an id: each would otherwise be given a
new UUID and stored once per retry.

- Keys are scoped by the API key's actor: two clients may use the same key.
- The same key with another request (method, path or body) is a 422 problem.
- A retry while the first request is still running waits for it (up to `WAIT_S`), then gets a
  409 problem with `Retry-After`; of concurrent requests with one key, exactly one runs.
- Only successful answers (2xx) are kept, for `TRUCE_IDEMPOTENCY_HOURS` (24 h): a refused
  request stored nothing and is simply run again.
- A request whose process died while it ran leaves its key claimed: retries get 409 until the
  claim is `ABANDONED_S` old, then run again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.errors import problem
from app.errors import InvalidInput, InvalidParameter, TruceError
from app.service import Service
from app.settings import Settings
from app.store import IdempotentAnswer, Store

__all__ = [
    "ABANDONED_S",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_PARAMETER",
    "IdempotencyInProgress",
    "IdempotencyMismatch",
    "WAIT_S",
    "idempotent",
    "register_idempotency_handlers",
]

log = logging.getLogger("truce.api")

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: How long a retry waits for the first request with its key to finish.
WAIT_S = 5.0
#: A claim still running after this long is taken to be from a process that died.
ABANDONED_S = 300.0
_POLL_S = 0.05

#: The header, as the OpenAPI document of each write that honours it describes it.
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "a key of your own (e.g. a UUID) for this request: a retry with the same key "
    "is answered as the first was and stores nothing twice (kept 24 h by default)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
#: Visible ASCII and spaces, 1 to 255 characters (UUIDs, ULIDs, client-made strings).
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
#: Headers of an answer that a replay repeats.
_KEPT_HEADERS = ("content-type", "location")


class IdempotencyMismatch(InvalidInput):
    """An `Idempotency-Key` already used for another request (method, path or body)."""

    title = "Idempotency-Key reused"


class IdempotencyInProgress(TruceError):
    """The first request with this `Idempotency-Key` is still running."""

    title = "Request in progress"


def _fingerprint(request: Request, body: bytes) -> str:
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _replay(answer: IdempotentAnswer) -> Response:
    assert answer.status is not None
    headers = dict(answer.headers)
    headers["Idempotent-Replayed"] = "true"
    return Response(answer.body, status_code=answer.status, headers=headers)


async def idempotent(
    request: Request, actor: str, run: Callable[[], Awaitable[Response]]
) -> Response:
    """Answer `run()`, or, for a request with an `Idempotency-Key` seen before, its answer."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return await run()
    if not _KEY.fullmatch(key) or not key.strip():
        raise InvalidParameter(
            "must be 1 to 255 visible ASCII characters (such as a UUID)",
            field=IDEMPOTENCY_HEADER,
        )
    service: Service = request.app.state.service
    settings: Settings = request.app.state.settings
    store: Store = service.store
    fingerprint = _fingerprint(request, await request.body())
    deadline = time.monotonic() + WAIT_S
    while True:
        now = datetime.now(UTC)
        found = await run_in_threadpool(
            store.claim_idempotency_key,
            actor,
            key,
            fingerprint,
            now - timedelta(hours=settings.idempotency_hours),
        )
        if found is None:
            break
        if found.fingerprint != fingerprint:
            raise IdempotencyMismatch(
                "this key was used for another request (a different method, path or body); "
                "send a new key with a new request",
                field=IDEMPOTENCY_HEADER,
            )
        if found.status is not None:
            return _replay(found)
        if found.created_at < now - timedelta(seconds=ABANDONED_S):
            # Its request died with its process: forget the claim and run this one.
            await run_in_threadpool(store.release_idempotency_key, actor, key)
            continue
        if time.monotonic() > deadline:
            raise IdempotencyInProgress(
                "a request with this key is still running; retry shortly for its answer",
                field=IDEMPOTENCY_HEADER,
            )
        await asyncio.sleep(_POLL_S)

    try:
        response = await run()
    except BaseException:
        await _release(store, actor, key)
        raise
    if not 200 <= response.status_code < 300:
        await _release(store, actor, key)
        return response
    headers = [(name, response.headers[name]) for name in _KEPT_HEADERS if name in response.headers]
    try:
        await run_in_threadpool(
            store.finish_idempotency_key,
            actor,
            key,
            response.status_code,
            bytes(response.body),
            headers,
        )
    except Exception:
        # The write itself is stored: answer it. A retry runs again (a report with an id is
        # then a duplicate); better than keeping the key claimed.
        log.exception("could not keep the answer for an Idempotency-Key")
        await _release(store, actor, key)
    return response


async def _release(store: Store, actor: str, key: str) -> None:
    try:
        await run_in_threadpool(store.release_idempotency_key, actor, key)
    except Exception:
        log.exception("could not release an Idempotency-Key")


async def _on_in_progress(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotencyInProgress)
    return problem(
        409,
        headers={"Retry-After": "1"},
        type_="urn:truce:problem:idempotency-in-progress",
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        field=exc.field,
    )


def register_idempotency_handlers(app: FastAPI) -> None:
    """Answer a retry of a request still running with 409 and `Retry-After`."""
    app.add_exception_handler(IdempotencyInProgress, _on_in_progress)
