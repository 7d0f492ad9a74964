"""Storage: the `Store` interface and `open_store(url)`, which picks the implementation.

URLs follow the SQLAlchemy convention that operators know:

- ``sqlite:///truce.db`` (a path relative to the working directory),
  ``sqlite:////var/lib/truce/truce.db`` (absolute); query options ``synchronous`` (``full``,
  the default, or ``normal``) and ``busy_timeout`` (seconds);
- ``postgresql://user@host:5432/db`` (also ``postgis://`` and ``postgresql+psycopg://``): the
  PostGIS store; query options ``pool_min``, ``pool_max``, ``pool_timeout`` (seconds), the rest
  go to libpq (``sslmode``, ``application_name``...). `read_url` names a read replica.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from app.store.base import (
    REPORT_PAGE,
    ROLES,
    AuditEntry,
    BadCursor,
    BBox,
    Busy,
    Conflict,
    IdempotentAnswer,
    IncidentFilter,
    KeyRecord,
    NotFound,
    ReportColumns,
    ReportSelection,
    ReportVersion,
    Store,
    StoreError,
    UnknownIncident,
    UnknownKey,
    UnknownReport,
    UnknownZone,
    UnsupportedDatabase,
    hash_key,
    iter_report_pages,
)
from app.store.sqlite import SQLiteStore

__all__ = [
    "REPORT_PAGE",
    "ROLES",
    "AuditEntry",
    "BBox",
    "BadCursor",
    "Busy",
    "Conflict",
    "IdempotentAnswer",
    "IncidentFilter",
    "KeyRecord",
    "NotFound",
    "ReportColumns",
    "ReportSelection",
    "ReportVersion",
    "SQLiteStore",
    "Store",
    "StoreError",
    "UnknownIncident",
    "UnknownKey",
    "UnknownReport",
    "UnknownZone",
    "UnsupportedDatabase",
    "hash_key",
    "iter_report_pages",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgis")


def open_store(url: str, read_url: str | None = None) -> Store:
    """Open the store that `url` names (see the module docstring for the forms); `read_url`,
    a replica of a PostGIS `url`, serves its reads."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if read_url and scheme == "sqlite":
        raise UnsupportedDatabase("a read replica (TRUCE_DATABASE_READ_URL) needs PostGIS")
    if scheme == "sqlite":
        # sqlite:///rel/path -> path "/rel/path" -> "rel/path"; sqlite:////abs -> "//abs" -> "/abs".
        if parts.netloc:
            raise UnsupportedDatabase(
                f"a SQLite URL has no host: write sqlite:///relative.db or sqlite:////abs.db, "
                f"not {url!r}"
            )
        path = unquote(parts.path)[1:]
        if not path or path == ":memory:":
            raise UnsupportedDatabase(
                "a SQLite URL needs a file path (sqlite:///truce.db); in-memory databases "
                "cannot be shared between the server's threads"
            )
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(options) - {"synchronous", "busy_timeout"}
        if unknown:
            raise UnsupportedDatabase(
                f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}; "
                "known: synchronous, busy_timeout"
            )
        try:
            busy_timeout_s = float(options.get("busy_timeout", "30"))
            return SQLiteStore(
                path,
                synchronous=options.get("synchronous", "full"),
                busy_timeout_s=busy_timeout_s,
            )
        except ValueError as exc:
            raise UnsupportedDatabase(f"bad SQLite URL {url!r}: {exc}") from None
    if scheme.split("+")[0] in _POSTGRES_SCHEMES:
        from app.store.postgis import PostGISStore

        return PostGISStore(url, read_url=read_url)
    raise UnsupportedDatabase(
        f"unsupported database URL {url!r}: expected sqlite:///path/to/truce.db "
        "or postgresql://host/database"
    )
