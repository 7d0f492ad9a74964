"""The alert tests run over both stores: store-level ones with the store suite's fixtures,
HTTP ones with the API suite's (every test that takes `store_kind` runs over each store)."""

from __future__ import annotations

import pytest

from tests.api.conftest import (
    client,
    database_url,
    db_path,
    make_client,
    make_settings,
    template_db,
)
from tests.store.conftest import reopen, store, store_url

__all__ = [
    "client",
    "database_url",
    "db_path",
    "make_client",
    "make_settings",
    "reopen",
    "store",
    "store_url",
    "template_db",
]


@pytest.fixture(params=["sqlite", "postgis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each store, for the HTTP tests."""
    return str(request.param)
