"""The HTTP API (v1 of DESIGN.md): `create_app(settings)` assembles it from the routers."""
