"""Property-based fuzzing of the whole HTTP API with schemathesis, from the app's own OpenAPI.

Every operation of the OpenAPI document that `create_app` serves is called in process (through
schemathesis' ASGI transport: no sockets, no server) with generated inputs, valid and invalid,
always with the admin key, over a fresh copy of the scenario database per operation. Each
response must:

- not be a 5xx (schemathesis' `not_a_server_error`);
- not be a 401 or 403: the admin key is sent on every call, so requests reach the validation code
  (`past_auth`; it guards against the key silently not being sent, which would make the run
  exercise nothing but the key check);
- when it is a 4xx, be an RFC 9457 `application/problem+json` with a `title` and the `status` it
  was sent with (`problem_json`);
- conform to the document: a documented status code, content type and headers, and a body that
  validates against the documented schema.

The run is repeatable: a fixed seed, derandomized Hypothesis, no example database. It takes about
10 s on two cores (`.venv/bin/pytest tests/api/test_api_schema.py`); one test per operation.

Why not `schemathesis.pytest.from_fixture` (the loader meant for apps made by fixtures): under
pytest 9.2 it fails at once with `AttributeError: 'Function' object has no attribute '_nodeid'`
(schemathesis 4.32.5 renames items through that private attribute, which pytest 9.2 removed). So
the schema is built at import from the OpenAPI document of an app that has not started (building
the document needs no database), and its requests go to `APP`, which passes each one on to the app
of the running test; this is what `openapi.from_asgi` sets up, minus starting an app at import.
The schemathesis pytest plugin starts the app's lifespan on the first request of each test and
shuts it down at the end of that test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

from app.api.main import create_app
from app.settings import Settings
from tests.api.support import API_KEYS, KEYS

#: Examples per operation in the fuzzing phase (the coverage and examples phases add their own).
MAX_EXAMPLES = 30
SEED = 20220324


class CurrentApp:
    """An ASGI app that passes every request on to the app of the running test."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no app: the test did not use the `app` fixture"
        await self.app(scope, receive, send)


APP = CurrentApp()

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "cache": {"enabled": False},
        # The admin key on every request, in the header that the document's security scheme names;
        # the key is not generated (missing or mangled) as if it were one more parameter.
        "auth": {"openapi": {"APIKeyHeader": {"api_key": KEYS["admin"]}}},
        "generation": {"with-security-parameters": False},
        # Sequences of calls (links between operations) are not part of this test.
        "phases": {"stateful": {"enabled": False}},
    }
)

# The same settings as the `make_settings` fixture's, but for the database, which the document does
# not depend on (the `app` fixture checks that).
DOCUMENT = create_app(Settings(_env_file=None, api_keys=API_KEYS)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
schema.app = APP


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> Iterator[FastAPI]:
    """The app under test, over a fresh copy of the scenario database, as the target of `APP`."""
    application = create_app(make_settings())
    assert application.openapi() == DOCUMENT
    APP.app = application
    yield application
    APP.app = None


def _media_type(response: schemathesis.Response) -> str:
    values = response.headers.get("content-type") or [""]
    return values[0].split(";")[0].strip().lower()


def past_auth(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """The admin key was sent and accepted: no 401 or 403."""
    assert response.status_code not in (401, 403), (
        f"{response.status_code} with the admin key: {response.text[:500]}"
    )


def problem_json(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """A 4xx is an RFC 9457 problem with a `title` and the response's `status`."""
    if not 400 <= response.status_code < 500:
        return
    media_type = _media_type(response)
    assert media_type == "application/problem+json", (
        f"{response.status_code} with Content-Type {media_type!r}, not application/problem+json: "
        f"{response.text[:500]}"
    )
    if case.method.upper() == "HEAD":  # a HEAD answer has headers only
        return
    try:
        problem = response.json()
    except ValueError as exc:
        raise AssertionError(
            f"{response.status_code} problem is not JSON ({exc}): {response.text[:500]}"
        ) from None
    assert isinstance(problem, dict), f"the problem is not a JSON object: {response.text[:500]}"
    title = problem.get("title")
    assert isinstance(title, str) and title.strip(), f"the problem has no title: {problem}"
    assert problem.get("status") == response.status_code, (
        f"the problem's status {problem.get('status')!r} is not the response's "
        f"{response.status_code}: {problem}"
    )


CHECKS = [
    not_a_server_error,
    past_auth,
    problem_json,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.map_assets  # GET /map is one of the operations
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # One app and database per operation, shared by that operation's examples: on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api_conforms(case: schemathesis.Case, app: FastAPI) -> None:
    case.call_and_validate(checks=CHECKS)
