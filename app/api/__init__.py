"""The HTTP API (v1, docs/api.md): `create_app(settings)` assembles it from the routers."""
