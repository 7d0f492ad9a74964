"""Settings of the service, from the environment with the prefix `TRUCE_` (or passed in tests).

Every setting has a working default, so `truce serve` runs with none set:

- `TRUCE_DATABASE_URL`: ``sqlite:///data/truce.sqlite`` (relative to the working directory; the
  directory is created on first start), or ``postgresql://user@host:5432/db`` for the PostGIS
  store (options `pool_min`, `pool_max`, `pool_timeout` in its query; see docs/deployment.md);
- `TRUCE_DATABASE_READ_URL`: a streaming replica of the PostGIS primary for reads (lists, the
  report feed, incursions, map data); default none: every read goes to the primary;
- `TRUCE_API_KEYS`: ``key:role,key:role`` with the roles of `app.roles` (``viewer``,
  ``observer``, ``admin``; default none: only keys stored in the database, and public reads if
  allowed);
- `TRUCE_PUBLIC_READ`: whether reads need no key (default false);
- `TRUCE_MAX_BODY_BYTES` (32 MiB) and `TRUCE_MAX_FEATURES` (100,000): larger requests get 413;
- `TRUCE_MAX_HEADER_BYTES` (16 KiB): a request line and headers over it get 431;
- `TRUCE_READ_TIMEOUT_S` (30): a request head must arrive whole, and a body must not pause,
  for longer than this (else 408 and the connection is closed);
- `TRUCE_KEEP_ALIVE_S` (75): idle keep-alive connections are kept this long, longer than
  the pools of common clients keep them, so that a client never reuses a closed one;
- `TRUCE_HEAVY_REQUESTS` (2), `TRUCE_HEAVY_WAIT_S` (2), `TRUCE_HEAVY_BODY_BYTES` (64 KiB): at
  most this many heavy requests (`/map`, `/incursions`, checks and report batches with bodies
  over the size) run at once in a process; others wait this long, then get 503;
- `TRUCE_AUTH_FAILURES` (20) in `TRUCE_AUTH_WINDOW_S` (60): wrong keys from one address
  allowed in the window, after which its keyed requests get 429 until the window has passed;
- `TRUCE_IDEMPOTENCY_HOURS` (24): how long the answer to a write with an `Idempotency-Key`
  is kept for its retries;
- `TRUCE_PUBLIC_URL`: the URL clients reach the API at (``https://truce.example.org`` or with a
  path); links in answers (`next` pages, `Location`) start with it. Unset (the default), links
  are relative ("/zones/..."): never taken from the request's `Host`, which the client controls;
- `TRUCE_TILES`: the map's basemap: ``offline`` (default: outlines and place names drawn from
  `geodata/`, no tiles), a folium provider name, or the URL template of a tile server;
- `TRUCE_STALE_AFTER` (24 hours): a unit in a zone and not reported for this long is `stale`
  in its track; an ISO 8601 duration (``PT24H``, ``P1D``) or seconds;
- `TRUCE_TRACK_STALE_AFTER` (default: `TRUCE_STALE_AFTER`): a unit in an open incident and not
  reported for this long raises one `track.stale` event; `TRUCE_STALE_SWEEP_S` (60): how often
  each service process looks for such units;
- `TRUCE_EVENTS_POLL_S` (0.1) and `TRUCE_EVENTS_HEARTBEAT_S` (15): how often each process reads
  the latest event id for its `GET /events` streams, and after how long without events a stream
  sends a heartbeat comment;
- `TRUCE_DELIVER` (true): deliver webhooks (and publish events to MQTT) in the service
  process; false leaves it to `truce deliver` processes. `TRUCE_WEBHOOK_TIMEOUT_S` (10),
  `TRUCE_WEBHOOK_LEASE_S` (30: how long a killed deliverer keeps a subscription),
  `TRUCE_WEBHOOK_RETRY_BASE_S` (1), `TRUCE_WEBHOOK_RETRY_CAP_S` (3600),
  `TRUCE_WEBHOOK_RETRY_WINDOW` (72 hours, then the subscription is held as failed),
  `TRUCE_WEBHOOK_CONCURRENCY` (64 sends at once), `TRUCE_WEBHOOK_PRIVATE_TARGETS` (true:
  loopback and private addresses may be webhook targets; link-local never);
- `TRUCE_MQTT_URL`: ``mqtt://host:1883`` (or ``mqtts://``, with ``user:password@``): positions
  from `{root}/reports/{party}/{unit}` are filed as reports and events published on
  `{root}/events/{type}`; default none (no MQTT). `TRUCE_MQTT_TOPIC_ROOT` (``truce``): that
  root (its own levels allowed, as ``site/a``; no wildcard, NUL, or leading or trailing
  ``/``), so deployments or test runs sharing a broker see only their own topics.
  `TRUCE_MQTT_BATCH` (5000) and `TRUCE_MQTT_BATCH_MS` (50): positions are filed in batches of
  up to this many, or this old;
  `TRUCE_MQTT_CLIENT_ID` (``truce-bridge``): the bridge's persistent session at the broker (each
  process that runs the bridge needs its own) and `TRUCE_MQTT_SESSION_EXPIRY_S` (604800, a week):
  how long the broker keeps the session, and the positions sent to it, while the bridge is down;
- `TRUCE_LOAD_SCENARIO`: load the founding scenario from `geodata/` into an empty database;
  `TRUCE_GEODATA_DIR` says where that directory is when the package is installed without it
  (as in the container image).

API keys are kept as `SecretStr`, so printing or logging the settings never shows them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.roles import ROLES, Role

__all__ = ["MIB", "ApiKey", "Settings", "parse_api_keys"]

MIB = 1024 * 1024


class ApiKey(BaseModel):
    """One configured key and its role. The secret never appears in a repr or a message."""

    model_config = ConfigDict(frozen=True)

    key: SecretStr
    role: Role


def parse_api_keys(value: str) -> list[ApiKey]:
    """Read ``key:role,key:role`` (spaces around items ignored; a key may itself contain ':').

    Errors name the entry by its position, never by the key, which is a secret.
    """
    keys: list[ApiKey] = []
    for position, item in enumerate(value.split(","), start=1):
        item = item.strip()
        if not item:
            continue
        # The role is after the *last* colon, so that keys may contain colons.
        secret, colon, role = item.rpartition(":")
        secret, role = secret.strip(), role.strip().lower()
        if not colon or not secret:
            raise ValueError(f"API key entry {position} must read key:role")
        if role not in ROLES:
            raise ValueError(
                f"API key entry {position}: role {role!r} is not one of {', '.join(ROLES)}"
            )
        keys.append(ApiKey(key=SecretStr(secret), role=Role(role)))
    return keys


class Settings(BaseSettings):
    """The service's settings (see the module docstring for each one)."""

    model_config = SettingsConfigDict(
        env_prefix="TRUCE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A bad TRUCE_API_KEYS must not print the keys in the error.
        hide_input_in_errors=True,
    )

    database_url: str = Field(
        default="sqlite:///data/truce.sqlite",
        description="sqlite:///relative/path, sqlite:////absolute/path or postgresql://...",
    )
    database_read_url: str | None = Field(
        default=None, description="postgresql://... of a read replica of the PostGIS primary"
    )
    # NoDecode: the environment gives "key:role,key:role", not JSON.
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(
        default_factory=list, description="key:role,key:role"
    )
    public_read: bool = Field(default=False, description="allow reads without a key")
    max_body_bytes: int = Field(
        default=32 * MIB, ge=1, description="largest request body, in bytes"
    )
    max_features: int = Field(default=100_000, ge=1, description="most features in one request")
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="largest request line and headers, in bytes"
    )
    read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds for a request head to arrive whole, and that a body may pause",
    )
    keep_alive_s: int = Field(
        default=75, ge=1, description="seconds an idle keep-alive connection is kept open"
    )
    heavy_requests: int = Field(
        default=2, ge=1, description="heavy requests (map, incursions, big bodies) run at once"
    )
    heavy_wait_s: float = Field(
        default=2.0, ge=0, description="seconds a heavy request waits for its turn before 503"
    )
    heavy_body_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        description="a check or report batch with a body over this size is a heavy request",
    )
    auth_failures: int = Field(
        default=20, ge=1, description="wrong API keys allowed from one address in the window"
    )
    auth_window_s: float = Field(
        default=60.0, gt=0, description="the window of TRUCE_AUTH_FAILURES, in seconds"
    )
    idempotency_hours: float = Field(
        default=24.0, gt=0, description="hours an Idempotency-Key's answer is kept"
    )
    public_url: str | None = Field(
        default=None,
        description="the public base URL for links in answers (default: relative links)",
    )
    tiles: str = Field(
        default="offline",
        description="map tiles: 'offline' (outlines and place names from geodata/), "
        "a folium provider name or a URL template of a tile server",
    )
    geodata_dir: Path | None = Field(
        default=None,
        description="the scenario directory to load (default: geodata/ beside the package)",
    )
    stale_after: timedelta = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="a unit in a zone and not reported for this long is stale: an ISO 8601 "
        "duration (PT24H) or seconds",
    )
    track_stale_after: timedelta | None = Field(
        default=None,
        gt=timedelta(0),
        description="a unit in an open incident and not reported for this long raises one "
        "track.stale event: an ISO 8601 duration or seconds (default: TRUCE_STALE_AFTER, so "
        "the event and the `stale` state of /tracks agree)",
    )
    stale_sweep_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="seconds between two sweeps for stale tracks in each service process",
    )
    events_poll_s: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="seconds between two reads of the latest event id, in each process, for the "
        "GET /events streams it serves, when the store cannot tell it of other processes' "
        "events (SQLite; its own process's events wake the streams at once)",
    )
    events_fallback_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="seconds between two reads of the latest event id while the store tells "
        "every process of new events itself (PostGIS, by LISTEN/NOTIFY): the net under a lost "
        "notification",
    )
    events_heartbeat_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="seconds without events after which GET /events sends a heartbeat comment",
    )
    load_scenario: bool = Field(
        default=False, description="load geodata/ into an empty database on first start"
    )
    deliver: bool = Field(
        default=True, description="deliver webhooks and MQTT events in the service process"
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="seconds per webhook send")
    webhook_lease_s: float = Field(
        default=30.0, gt=0, description="seconds a deliverer's lease on a subscription lasts"
    )
    webhook_retry_base_s: float = Field(
        default=1.0, gt=0, description="first retry delay of a failed delivery, in seconds"
    )
    webhook_retry_cap_s: float = Field(
        default=3600.0, gt=0, description="longest retry delay, in seconds"
    )
    webhook_retry_window: timedelta = Field(
        default=timedelta(hours=72),
        gt=timedelta(0),
        description="how long an event is retried before its subscription is held as failed",
    )
    webhook_concurrency: int = Field(default=64, ge=1, description="webhook sends at once")
    webhook_private_targets: bool = Field(
        default=True, description="allow loopback and private addresses as webhook targets"
    )
    mqtt_url: str | None = Field(
        default=None, description="mqtt://host:1883 of the broker (default: no MQTT)"
    )
    mqtt_batch: int = Field(default=5000, ge=1, description="most positions filed at once")
    mqtt_batch_ms: float = Field(
        default=50.0, ge=0, description="longest a position waits for its batch, in ms"
    )
    mqtt_client_id: str = Field(
        default="truce-bridge",
        min_length=1,
        description="MQTT client id of the bridge's persistent session (one per process)",
    )
    mqtt_topic_root: str = Field(
        default="truce",
        description="first level(s) of every MQTT topic: {root}/reports/+/+, {root}/events/...",
    )
    mqtt_session_expiry_s: int = Field(
        default=604800,
        ge=0,
        le=4294967295,
        description="how long the broker keeps the bridge's session while it is down, in s",
    )

    @property
    def track_stale_after_or_default(self) -> timedelta:
        """How long a unit in an open incident may go unreported before `track.stale`."""
        return self.track_stale_after or self.stale_after

    @field_validator("public_url")
    @classmethod
    def _read_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or "?" in rest or "#" in rest:
            raise ValueError("must be an http(s) URL with no query or fragment")
        if not value.isascii() or any(c.isspace() for c in value):
            raise ValueError("must be ASCII with no spaces (percent-encode the rest)")
        return value

    @field_validator("mqtt_topic_root")
    @classmethod
    def _read_topic_root(cls, value: str) -> str:
        # The root is written into a subscription: a wildcard in it would widen what the bridge
        # files, and a leading or trailing / adds an empty level: a different topic
        # from the one trackers are told.
        if not value:
            raise ValueError("must not be empty")
        if any(c in value for c in "+#\0"):
            raise ValueError("must not hold the wildcards + or #, nor NUL")
        if value.startswith("/") or value.endswith("/"):
            raise ValueError("must not start or end with /")
        return value

    @field_validator("stale_after", "track_stale_after", "webhook_retry_window", mode="before")
    @classmethod
    def _read_seconds(cls, value: Any) -> Any:
        # The environment gives strings: a plain number is seconds, anything else ISO 8601.
        if isinstance(value, str):
            if not value.strip():
                return None  # set but empty: the default
            try:
                return float(value)
            except ValueError:
                return value.strip()
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _read_api_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_api_keys(value)
        return value
