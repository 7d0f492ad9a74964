"""Settings of the service, from the environment with the prefix `TRUCE_` (or passed in tests).

Every setting has a working default, so `truce serve` runs with none set:

- `TRUCE_DATABASE_URL`: ``sqlite:///data/truce.sqlite`` (relative to the working directory; the
  directory is created on first start);
- `TRUCE_API_KEYS`: ``key:role,key:role`` with roles ``viewer``, ``observer``, ``admin``
  (default none: only keys stored in the database, and public reads if allowed);
- `TRUCE_PUBLIC_READ`: whether reads need no key (default false);
- `TRUCE_MAX_BODY_BYTES` (32 MiB) and `TRUCE_MAX_FEATURES` (100,000): larger requests get 413;
- `TRUCE_PUBLIC_URL`: the URL clients reach the API at (``https://truce.example.org`` or with a
  path); links in answers (`next` pages, `Location`) start with it. Unset (the default), links
  are relative ("/zones/..."): never taken from the request's `Host`, which the client controls;
- `TRUCE_TILES`: the map's basemap: ``offline`` (default: outlines and place names drawn from
  `geodata/`, no tiles), a folium provider name, or the URL template of a tile server;
- `TRUCE_LOAD_SCENARIO`: load the founding scenario from `geodata/` into an empty database;
  `TRUCE_GEODATA_DIR` says where that directory is when the package is installed without it
  (as in the container image).

API keys are kept as `SecretStr`, so printing or logging the settings never shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["MIB", "ApiKey", "Role", "Settings", "parse_api_keys"]

MIB = 1024 * 1024

#: Roles, weakest first; each includes the ones before it (admin ⊇ observer ⊇ viewer).
Role = Literal["viewer", "observer", "admin"]
_ROLES: tuple[str, ...] = get_args(Role)


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
        if role not in _ROLES:
            raise ValueError(
                f"API key entry {position}: role {role!r} is not one of {', '.join(_ROLES)}"
            )
        keys.append(ApiKey(key=SecretStr(secret), role=role))  # type: ignore[arg-type]
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
        description="sqlite:///relative/path or sqlite:////absolute/path",
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
    load_scenario: bool = Field(
        default=False, description="load geodata/ into an empty database on first start"
    )

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

    @field_validator("api_keys", mode="before")
    @classmethod
    def _read_api_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_api_keys(value)
        return value
