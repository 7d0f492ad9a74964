"""Registered parties: who a report's `party` names, matched through codes and aliases.

A party (`app.domain.Party`) has a short code, a name, a map colour and aliases: exact names
("Azerbaijan") or fnmatch patterns ("Military Forces of Azerbaijan*", as ACLED writes actors).
`PartyRegistry.resolve` matches a value case-insensitively (surrounding blanks aside) against the
codes first, then the exact aliases, then the patterns (in code order), and gives the code.

`resolve_batch` applies the registry to a whole `ReportBatch`: each *distinct* value is resolved
once (`pd.factorize`), so 1e5 reports of a few parties cost a few lookups and one take. A value
that names no party refuses the batch, naming the report (its JSON pointer or file row), the value
and the known codes. An empty registry accepts every value as sent: a new database without
parties works as before, and registering parties turns matching on.

Pure: no I/O; the service reads the parties from the store and calls these.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from app.batch import ReportBatch
from app.domain import Party, Report
from app.errors import InvalidInput, InvalidReport
from app.validate import CONTROL_CHARACTERS, MAX_CODE_CHARS, MAX_TEXT_CHARS, describe

__all__ = [
    "DEFAULT_COLOR",
    "MAX_ALIASES",
    "PartyRegistry",
    "UnknownParty",
    "check_party",
    "is_pattern",
    "resolve_batch",
]

#: The colour of a party registered without one.
DEFAULT_COLOR = "#666666"
#: Aliases of one party.
MAX_ALIASES = 256

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_GLOB = frozenset("*?[")


class UnknownParty(InvalidInput):
    """A report's party that is neither a registered code nor an alias of one."""

    title = "Unknown party"


def is_pattern(alias: str) -> bool:
    """Whether an alias is an fnmatch pattern (has `*`, `?` or `[`) rather than an exact name."""
    return not _GLOB.isdisjoint(alias)


def _key(value: str) -> str:
    return value.strip().casefold()


class PartyRegistry:
    """The registered parties and the matching of values to their codes (see the module doc)."""

    def __init__(self, parties: Iterable[Party]) -> None:
        """Index `parties` (any order; matched in code order)."""
        self.parties: tuple[Party, ...] = tuple(sorted(parties, key=lambda p: p.code))
        self._exact: dict[str, str] = {_key(p.code): p.code for p in self.parties}
        self._patterns: list[tuple[str, str]] = []
        for party in self.parties:
            for alias in party.aliases:
                if is_pattern(alias):
                    self._patterns.append((_key(alias), party.code))
                else:
                    # A code wins over an alias, and the first party (by code) over later ones.
                    self._exact.setdefault(_key(alias), party.code)

    def __len__(self) -> int:
        return len(self.parties)

    def __bool__(self) -> bool:
        return bool(self.parties)

    @property
    def codes(self) -> list[str]:
        """The registered codes, sorted."""
        return [p.code for p in self.parties]

    def get(self, code: str) -> Party | None:
        """The party with exactly this code, or None."""
        return next((p for p in self.parties if p.code == code), None)

    def resolve(self, value: str) -> str | None:
        """The code that `value` names (code, exact alias, then pattern), or None."""
        key = _key(value)
        code = self._exact.get(key)
        if code is not None:
            return code
        for pattern, code in self._patterns:
            if fnmatch.fnmatchcase(key, pattern):
                return code
        return None

    def resolve_many(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes for an array of values, each distinct value resolved once.

        Returns (codes, unknown): an object array of codes (the value itself where unknown) and a
        boolean mask of the values that name no party.
        """
        values = np.asarray(values, dtype=object)
        if not len(values):
            return values.copy(), np.zeros(0, dtype=bool)
        if len(values) == 1:  # a single check: no factorising
            code = self.resolve(values[0]) if isinstance(values[0], str) else None
            return np.array([values[0] if code is None else code], dtype=object), np.array(
                [code is None]
            )
        positions, distinct = pd.factorize(values, use_na_sentinel=False)
        found = [self.resolve(v) if isinstance(v, str) else None for v in distinct.tolist()]
        known = np.array([code is not None for code in found], dtype=bool)
        table = np.array(
            [v if code is None else code for v, code in zip(distinct.tolist(), found, strict=True)],
            dtype=object,
        )
        return table[positions], ~known[positions]


def resolve_batch(registry: PartyRegistry, batch: ReportBatch) -> ReportBatch:
    """`batch` with every party as its registered code; the same batch when nothing changes.

    An empty registry changes nothing. Raises `UnknownParty` (or the origin's error for a file,
    naming its row) for the first report whose party is not registered, with the value, how many
    other unknown values there are, and the known codes.
    """
    if not registry or not len(batch):
        return batch
    codes, unknown = registry.resolve_many(batch.party)
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        value = batch.party[first]
        others = sorted({str(v) for v in batch.party[unknown].tolist()} - {str(value)})
        more = ""
        if others:
            shown = ", ".join(repr(v) for v in others[:8]) + (", ..." if len(others) > 8 else "")
            more = f" ({len(others)} other unknown value(s): {shown})"
        message = (
            f"unknown party {value!r}{more}: known parties are {', '.join(registry.codes)}; "
            "send a code or an alias of one, or register the party (PUT /parties/{code}, "
            "truce parties set)"
        )
        error = batch.origin.fail(first, message, "party")
        if isinstance(error, InvalidReport):
            # A request body's report: answered as an unknown party, with the same field.
            raise UnknownParty(error.message, field=error.field, index=error.index)
        raise error
    changed = np.flatnonzero(codes != batch.party)
    if not len(changed):
        return batch
    built = batch.build_reports
    build = None if built is None else _with_parties(built, changed, codes)
    return dataclasses.replace(batch, party=codes, build_reports=build)


def _with_parties(
    built: Callable[[], list[Report]], changed: np.ndarray, codes: np.ndarray
) -> Callable[[], list[Report]]:
    """`built`, with the reports at `changed` given their resolved party."""

    def build() -> list[Report]:
        reports = list(built())
        for i in changed.tolist():
            reports[i] = dataclasses.replace(reports[i], party=codes[i])
        return reports

    return build


# -- validation of a party to register ---------------------------------------------------------


def check_party(party: Party, others: Sequence[Party] = ()) -> Party:
    """`party` with its fields trimmed, or `InvalidInput` naming the bad field.

    `others` are the other registered parties: an exact alias may not be another party's code or
    exact alias (a value would then name two parties).
    """
    code = party.code.strip() if isinstance(party.code, str) else party.code
    if not isinstance(code, str) or not _CODE.match(code) or len(code) > MAX_CODE_CHARS:
        raise InvalidInput(
            f"a party code is 1 to {MAX_CODE_CHARS} letters, digits, '-', '_', '.' or ':', "
            f"starting with a letter or digit; got {describe(party.code)}",
            field="code",
        )
    name = party.name.strip() if isinstance(party.name, str) else ""
    if not name or len(name) > MAX_TEXT_CHARS or CONTROL_CHARACTERS.search(name):
        raise InvalidInput(
            f"must be 1 to {MAX_TEXT_CHARS} characters without control characters",
            field="name",
        )
    if not isinstance(party.color, str) or not _COLOR.match(party.color):
        raise InvalidInput(
            f"must be a colour as #rrggbb, got {describe(party.color)}", field="color"
        )
    if len(party.aliases) > MAX_ALIASES:
        raise InvalidInput(f"at most {MAX_ALIASES} aliases", field="aliases")
    taken = {_key(p.code): p.code for p in others if p.code != code}
    for other in others:
        if other.code != code:
            for alias in other.aliases:
                if not is_pattern(alias):
                    taken.setdefault(_key(alias), other.code)
    aliases: list[str] = []
    for i, alias in enumerate(party.aliases):
        text = alias.strip() if isinstance(alias, str) else ""
        if not text or len(text) > MAX_TEXT_CHARS or CONTROL_CHARACTERS.search(text):
            raise InvalidInput(
                f"an alias is 1 to {MAX_TEXT_CHARS} characters without control characters",
                field=f"aliases/{i}",
            )
        owner = None if is_pattern(text) else taken.get(_key(text))
        if owner is not None:
            raise InvalidInput(
                f"alias {text!r} already names party {owner!r}", field=f"aliases/{i}"
            )
        if _key(text) not in {_key(a) for a in aliases}:
            aliases.append(text)
    return Party(code=code, name=name, color=party.color.lower(), aliases=tuple(aliases))
