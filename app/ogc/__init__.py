"""OGC API – Features: the collections Truce publishes, over the service (no HTTP here).

`app.ogc.collections` holds one class per collection and `make_collections`, the registry;
the routes are in `app.api.routers.ogc`.
"""
