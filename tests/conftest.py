"""What every test shares: the `map_assets` marker, checked before a test that needs the assets.

Builders of zones, reports and points are in `tests/factories.py`; fixtures of one area stay in
that area's conftest (`tests/api/`, `tests/map/`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from app import assets

# One Chromium per test process, shared by the map's and the front door's tests: Playwright's
# sync API refuses a second instance while the first one's event loop is running.
from tests.map.browser import browser  # noqa: F401

# Examples are judged by what they find, not by how fast a loaded two-core machine makes them:
# no per-example deadline and no "too slow" health check (speed is bench/'s business).
settings.register_profile(
    "truce", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("truce")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test marked `map_assets` at once, saying how to install them, when they are missing.

    Without them the map's routes answer 503 and the pages cannot load their scripts: the test
    would fail too, but on a status code that does not say why.
    """
    if item.get_closest_marker("map_assets") is None:
        return
    missing = assets.missing_assets()
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        pytest.fail(
            f"the map's assets are not installed (app/static/{missing[0]}{more}): "
            "run `make assets`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def postgis_session_url() -> Iterator[str]:
    """A migrated PostGIS database of this worker, for the session (see `tests/postgis.py`)."""
    from tests.postgis import session_database

    with session_database("truce_test") as url:
        yield url


@pytest.fixture
def postgis_url(postgis_session_url: str) -> str:
    """The worker's PostGIS database, emptied for this test."""
    from tests.postgis import reset_database

    reset_database(postgis_session_url)
    return postgis_session_url
