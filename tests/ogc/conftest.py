"""The API tests' fixtures (apps over a copy of the scenario database, real servers)."""

from tests.api.conftest import (  # noqa: F401
    client,
    database_url,
    db_path,
    http,
    make_client,
    make_settings,
    server,
    store_kind,
    template_db,
)
