"""The roles an API key may have, defined once for the settings, the store, the API and the CLI.

Roles nest, weakest first: `admin` ⊇ `observer` ⊇ `viewer` (viewer reads, observer also files
reports, admin also manages zones, parties and keys).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ROLES", "Role"]


class Role(StrEnum):
    """An API key's role; members are in order, weakest first, and each includes the earlier."""

    VIEWER = "viewer"
    OBSERVER = "observer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for the weakest role, counting up."""
        return _RANK[self]

    def includes(self, other: Role) -> bool:
        """Whether a key with this role may do what `other` may."""
        return self.rank >= other.rank


_RANK = {role: rank for rank, role in enumerate(Role)}

#: Every role's name, weakest first (what a store accepts for a key).
ROLES: tuple[str, ...] = tuple(role.value for role in Role)
