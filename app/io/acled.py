"""ACLED exports: their columns, `geo_precision` radii, `sub_event_type` kinds, and party maps.

A party map takes ACLED actor names (or fnmatch patterns) to party codes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import orjson

from app.domain import ReportKind
from app.io.problems import FileProblem

#: The 31 columns of an ACLED CSV export.
ACLED_COLUMNS: tuple[str, ...] = (
    "event_id_cnty",
    "event_date",
    "year",
    "time_precision",
    "disorder_type",
    "event_type",
    "sub_event_type",
    "actor1",
    "assoc_actor_1",
    "inter1",
    "actor2",
    "assoc_actor_2",
    "inter2",
    "interaction",
    "civilian_targeting",
    "iso",
    "region",
    "country",
    "admin1",
    "admin2",
    "admin3",
    "location",
    "latitude",
    "longitude",
    "geo_precision",
    "source",
    "source_scale",
    "notes",
    "fatalities",
    "tags",
    "timestamp",
)


ACLED_REQUIRED = (
    "event_id_cnty",
    "event_date",
    "actor1",
    "latitude",
    "longitude",
    "geo_precision",
)


ACLED_MARKERS = frozenset({"event_id_cnty", "event_date", "actor1", "latitude", "longitude"})


#: ACLED `geo_precision` to an uncertainty radius in metres. ACLED's codebook: 1 = the event's
#: town or village is known and its coordinates are used; 2 = the event was near a town or in a
#: part of a region, and the nearest town's coordinates are used; 3 = only a larger region is
#: known (a province), and its capital's coordinates are used. The radii are ours: 2 km covers a
#: village or small town, 10 km the surroundings of a town, 50 km a province of the region
#: (Karabakh's districts are 30-60 km across). They are deliberately generous: a radius too small
#: would turn a vague report into a sure `inside`.
ACLED_UNCERTAINTY_M: dict[int, float] = {1: 2_000.0, 2: 10_000.0, 3: 50_000.0}


#: ACLED `sub_event_type` to a report kind; any other is `other`.
ACLED_KINDS: dict[str, ReportKind] = {
    "armed clash": ReportKind.TROOPS,
    "government regains territory": ReportKind.TROOPS,
    "non-state actor overtakes territory": ReportKind.TROOPS,
    "non-violent transfer of territory": ReportKind.TROOPS,
    "shelling/artillery/missile attack": ReportKind.ARTILLERY,
    "air/drone strike": ReportKind.STRIKE,
    "remote explosive/landmine/ied": ReportKind.STRIKE,
    "grenade": ReportKind.STRIKE,
    "headquarters or base established": ReportKind.FORTIFICATION,
}


def party_mapper(mapping: Mapping[str, str] | None) -> Callable[[str], str | None]:
    """The party code of an actor by `mapping`: exact, then case-folded, then glob patterns."""
    exact = dict(mapping or {})
    folded = {k.strip().casefold(): v for k, v in exact.items()}
    patterns = [(k.strip().casefold(), v) for k, v in exact.items() if any(c in k for c in "*?[")]

    def lookup(actor: str) -> str | None:
        if actor in exact:
            return exact[actor]
        key = actor.strip().casefold()
        if key in folded:
            return folded[key]
        for pattern, code in patterns:
            if fnmatch.fnmatchcase(key, pattern):
                return code
        return None

    return lookup


def parse_party_map(items: Sequence[str]) -> dict[str, str]:
    """A party map from `--party-map` values: JSON files of {actor: code}, or 'ACTOR=CODE' items.

    Later items win. An actor may be an fnmatch pattern ("Military Forces of Azerbaijan*").
    """
    found: dict[str, str] = {}
    for item in items:
        candidate = Path(item)
        if "=" not in item or (candidate.suffix.lower() == ".json" and candidate.exists()):
            if not candidate.exists():
                raise FileProblem(
                    f"--party-map {item!r}: no such file, and not of the form 'ACTOR=CODE'"
                )
            try:
                obj = orjson.loads(candidate.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise FileProblem(f"{candidate.name}: is not a JSON party map: {exc}") from None
            if not isinstance(obj, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in obj.items()
            ):
                raise FileProblem(
                    f"{candidate.name}: a party map must be a JSON object of actor names to "
                    'party codes, such as {"Military Forces of Azerbaijan (2003-)": "AZE"}'
                )
            found.update({k: v.strip() for k, v in obj.items()})
            continue
        actor, _, code = item.rpartition("=")
        if not actor.strip() or not code.strip():
            raise FileProblem(f"--party-map {item!r}: expected 'ACTOR=CODE' or a JSON file")
        found[actor.strip()] = code.strip()
    return found
