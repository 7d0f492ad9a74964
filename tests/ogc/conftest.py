"""The API tests' fixtures (apps over a copy of the scenario database, real servers)."""

from tests.api.conftest import (  # noqa: F401
    client,
    db_path,
    http,
    make_client,
    make_settings,
    server,
    template_db,
)
