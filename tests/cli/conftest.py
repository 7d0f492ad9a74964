"""The command line over both stores: `store_url` is a SQLite file or the worker's PostGIS
database (emptied for the test), for the tests whose answers depend on the store."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each store."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'truce.sqlite'}"
    url: str = request.getfixturevalue("postgis_url")
    return url
