"""API keys and roles: who may do what.

A key comes in the `X-API-Key` header. It is matched against the keys of the settings and then
against the keys stored in the database (by their SHA-256, the only form the store keeps). The
settings keys are compared by their digests with `hmac.compare_digest`, every one of them every
time, so the answer's timing tells nothing about how much of a key was right. Keys are never logged
and never echoed in an answer: the audit log names a settings key by a short prefix of its hash and
a stored key by its id and label.

A client address that sends too many wrong keys is refused for a while (429, see
`app.api.limits.AuthThrottle`), and keys of the settings shorter than `MIN_KEY_CHARS` are
warned about at start.

Roles nest: admin ⊇ observer ⊇ viewer. Writes always need a key with the role; reads need a
viewer key unless the settings allow public reading. A missing or unknown key is 401 (with
`WWW-Authenticate: ApiKey`), a key with too weak a role is 403.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from app.api.limits import AuthThrottle
from app.errors import Forbidden, Unauthorized
from app.roles import ROLES, Role
from app.settings import ApiKey, Settings
from app.store import Store, hash_key

__all__ = [
    "ANONYMOUS",
    "API_KEY_HEADER",
    "AdminKey",
    "KeyRing",
    "ObserverKey",
    "Principal",
    "ViewerKey",
    "authorize",
    "hash_key",
    "require_role",
    "warn_short_keys",
]

log = logging.getLogger("truce.api")

#: Settings keys shorter than this are warned about at start (a guessable secret).
MIN_KEY_CHARS = 16


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: their role (None when anonymous) and the name the audit log gives them."""

    role: Role | None
    actor: str

    def allows(self, role: Role) -> bool:
        """Whether this principal's role includes `role`."""
        return self.role is not None and self.role.includes(role)


#: A reader without a key, when the settings allow public reading.
ANONYMOUS = Principal(role=None, actor="anonymous")


class KeyRing:
    """The keys of the settings and of the store, matched in constant time."""

    def __init__(self, keys: Sequence[ApiKey], store: Store) -> None:
        """Keep only the digests of the settings keys."""
        self._configured = []
        for key in keys:
            digest = hashlib.sha256(key.key.get_secret_value().encode("utf-8")).digest()
            # The audit log's name for the key: its role and 8 hex digits of its hash.
            actor = f"settings-key:{key.role}:{digest.hex()[:8]}"
            self._configured.append((digest, Principal(role=key.role, actor=actor)))
        self._store = store

    def identify(self, secret: str) -> Principal | None:
        """The principal that `secret` is the key of, or None."""
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
        found: Principal | None = None
        for key_digest, principal in self._configured:
            # No early exit: every key is compared, whatever matched.
            if hmac.compare_digest(digest, key_digest) and found is None:
                found = principal
        if found is not None:
            return found
        record = self._store.find_key(digest.hex())
        if record is None or record.role not in ROLES:
            return None
        return Principal(role=Role(record.role), actor=f"key:{record.id}:{record.label}")


def warn_short_keys(keys: Sequence[ApiKey]) -> list[int]:
    """Log a warning for each settings key under `MIN_KEY_CHARS` characters; their positions.

    The warning names the entry's position and role, never the key.
    """
    short = []
    for position, key in enumerate(keys, start=1):
        length = len(key.key.get_secret_value())
        if length < MIN_KEY_CHARS:
            short.append(position)
            log.warning(
                "TRUCE_API_KEYS entry %d (%s) is only %d characters: use at least %d random "
                "characters (e.g. `truce keys create`), or it can be guessed",
                position,
                key.role,
                length,
                MIN_KEY_CHARS,
            )
    return short


def client_address(request: Request) -> str:
    """The client's address as the server sees it (the proxy's, behind one)."""
    return request.client.host if request.client is not None else "unknown"


#: The header that carries the key.
API_KEY_HEADER = "X-API-Key"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key; roles viewer (read), observer (also file reports), admin (all).",
)


def authorize(request: Request, role: Role, key: str | None) -> Principal:
    """The principal of `key` if its role includes `role`; else 401 (no or unknown key) or 403."""
    settings: Settings = request.app.state.settings
    if not key:
        if role is Role.VIEWER and settings.public_read:
            return ANONYMOUS
        raise Unauthorized("an API key is required in the X-API-Key header", field="X-API-Key")
    keyring: KeyRing = request.app.state.keyring
    # Wrong keys are counted per address; over the limit, no key is even looked at (429).
    throttle: AuthThrottle | None = getattr(request.app.state, "throttle", None)
    if throttle is not None:
        throttle.check(client_address(request))
    principal = keyring.identify(key)
    if principal is None:
        if throttle is not None:
            throttle.failed(client_address(request))
        raise Unauthorized("the API key is not valid", field="X-API-Key")
    if not principal.allows(role):
        raise Forbidden(
            f"this needs the {role} role; the key given has the {principal.role} role",
            field="X-API-Key",
        )
    return principal


def require_role(role: Role) -> Callable[[Request, str | None], Awaitable[Principal]]:
    """A dependency that lets through the keys whose role includes `role`."""

    async def dependency(
        request: Request, key: Annotated[str | None, Security(api_key_header)]
    ) -> Principal:
        return authorize(request, role, key)

    return dependency


ViewerKey = Annotated[Principal, Depends(require_role(Role.VIEWER))]
ObserverKey = Annotated[Principal, Depends(require_role(Role.OBSERVER))]
AdminKey = Annotated[Principal, Depends(require_role(Role.ADMIN))]
