"""The rule for importing zone versions from a file (or another database) over stored ones.

Importing is idempotent and never rewrites history:

- a version whose content is already stored (any stored version of the same zone, the version
  number aside) is a *duplicate* and is skipped, so importing a file twice changes nothing;
- a version numbered above the latest stored one is *new*: a zone with no history is created from
  its first new version, and every other new version is stored after it, in version order;
- any other version (a number already taken, with other content) is refused with `Conflict`
  naming the zone, the version and the number to give the change; nothing is stored then.

`plan_zone_import` applies the rule without touching the store; `Service.import_zones` reads the
histories, plans and stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.domain import Zone
from app.store import Conflict

__all__ = ["ZoneImport", "ZoneImportPlan", "plan_zone_import", "same_zone"]


def same_zone(a: Zone, b: Zone) -> bool:
    """The same zone content, the version number aside (no agreement and "" are the same)."""
    return (
        a.id == b.id
        and a.name == b.name
        and a.kind == b.kind
        and a.valid_from == b.valid_from
        and a.valid_to == b.valid_to
        and a.authorized_parties == b.authorized_parties
        and a.warning_distance_m == b.warning_distance_m
        and a.boundary_uncertainty_m == b.boundary_uncertainty_m
        and (a.agreement or None) == (b.agreement or None)
        and (a.source or None) == (b.source or None)
        and a.geometry.geom_type == b.geometry.geom_type
        and bool(a.geometry.equals_exact(b.geometry, 0.0))
    )


@dataclass(frozen=True, slots=True)
class ZoneImportPlan:
    """What to store: zones to create, later versions to add in order, and the duplicates."""

    create: list[Zone] = field(default_factory=list)
    add: list[Zone] = field(default_factory=list)
    #: "id vN" of each version already stored, by zone id and version.
    duplicates: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ZoneImport:
    """What an import stored: zones created, new versions added (as stored), and duplicates."""

    created: list[Zone]
    added: list[Zone]
    duplicates: list[str]


def plan_zone_import(
    zones: Sequence[Zone], histories: Mapping[str, Sequence[Zone]]
) -> ZoneImportPlan:
    """Apply the rule of the module docstring to `zones`, given each id's stored versions.

    Raises:
        Conflict: for the first version that differs from the stored version of its number,
            with the index of that zone in `zones`.
    """
    position = {id(zone): i for i, zone in enumerate(zones)}
    by_id: dict[str, list[Zone]] = {}
    for zone in sorted(zones, key=lambda z: (z.id, z.version)):
        by_id.setdefault(zone.id, []).append(zone)
    plan = ZoneImportPlan()
    for zone_id, versions in by_id.items():
        history = histories.get(zone_id, ())
        latest = max((z.version for z in history), default=0)
        fresh: list[Zone] = []
        for zone in versions:
            if any(same_zone(zone, old) for old in history):
                plan.duplicates.append(f"{zone.id} v{zone.version}")
            elif zone.version > latest:
                fresh.append(zone)
            else:
                raise Conflict(
                    f"zone {zone.id!r} version {zone.version} differs from the stored version "
                    f"{zone.version}; give the change the next version number ({latest + 1}) "
                    "to file it as a new version",
                    field="properties/version",
                    index=position[id(zone)],
                )
        if fresh and not history:
            plan.create.append(fresh[0])
            fresh = fresh[1:]
        plan.add.extend(fresh)
    return plan
