"""The party registry (`app.parties`): matching order, batches, and what a party may be."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.batch import ReportBatch, Shape
from app.domain import Party
from app.errors import InvalidInput
from app.parties import PartyRegistry, UnknownParty, check_party, resolve_batch
from tests.factories import make_report

PARTIES = [
    Party(
        "RU-PK", "Peacekeepers", "#009e73", ("Russian peacekeepers", "Military Forces of Russia*")
    ),
    Party("AZE", "Azerbaijan", "#0072b2", ("Azerbaijan", "Military Forces of Azerbaijan*")),
    # An alias pattern that also matches the peacekeepers' own code: codes win.
    Party("ZZ", "Catch-all", "#000000", ("*",)),
]


def test_codes_then_exact_aliases_then_patterns_case_insensitively() -> None:
    registry = PartyRegistry(PARTIES)
    assert registry.resolve("ru-pk") == "RU-PK"
    assert registry.resolve("  Ru-Pk ") == "RU-PK"
    assert registry.resolve("RUSSIAN PEACEKEEPERS") == "RU-PK"
    assert registry.resolve("military forces of azerbaijan (2003-)") == "AZE"
    # Patterns are tried in code order: AZE's and RU-PK's before the catch-all of ZZ.
    assert registry.resolve("Military Forces of Russia (2000-)") == "RU-PK"
    assert registry.resolve("anyone") == "ZZ"
    assert PartyRegistry(PARTIES[:2]).resolve("anyone") is None


def test_a_large_batch_resolves_each_distinct_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = PartyRegistry(PARTIES[:2])
    rng = np.random.default_rng(3)
    values = np.array(["AZE", "ru-pk", "Azerbaijan", "Russian peacekeepers"], dtype=object)
    sent = values[rng.integers(0, len(values), 100_000)]
    calls: list[str] = []
    resolve = PartyRegistry.resolve

    def counting(self: PartyRegistry, value: str) -> str | None:
        calls.append(value)
        return resolve(self, value)

    monkeypatch.setattr(PartyRegistry, "resolve", counting)
    codes, unknown = registry.resolve_many(sent)
    assert sorted(calls) == sorted(values.tolist())
    assert not unknown.any()
    expected = np.where(np.isin(sent, ["AZE", "Azerbaijan"]), "AZE", "RU-PK")
    assert (codes == expected).all()


def test_a_batch_carries_the_codes_into_its_reports() -> None:
    reports = [make_report("a", party="azerbaijan"), make_report("b", party="RU-PK")]
    batch = ReportBatch.from_reports(reports, Shape.COLLECTION)
    resolved = resolve_batch(PartyRegistry(PARTIES[:2]), batch)
    assert resolved.party.tolist() == ["AZE", "RU-PK"]
    assert [r.party for r in resolved.reports()] == ["AZE", "RU-PK"]
    assert [r.party for r in batch.reports()] == ["azerbaijan", "RU-PK"]  # the input is kept
    # Nothing to change, or no party registered: the same batch.
    exact = ReportBatch.from_reports([make_report("c", party="AZE")])
    assert resolve_batch(PartyRegistry(PARTIES[:2]), exact) is exact
    assert resolve_batch(PartyRegistry([]), batch) is batch


def test_an_unknown_party_is_named_with_the_other_unknown_values() -> None:
    reports = [
        make_report("a", party="AZE"),
        make_report("b", party="Protesters"),
        make_report("c", party="Rioters"),
        make_report("d", party="Protesters"),
    ]
    batch = ReportBatch.from_reports(reports, Shape.COLLECTION)
    with pytest.raises(UnknownParty) as caught:
        resolve_batch(PartyRegistry(PARTIES[:2]), batch)
    error = caught.value
    assert error.field == "features/1/properties/party"
    assert error.index == 1
    assert "'Protesters'" in error.message and "'Rioters'" in error.message
    assert "AZE, RU-PK" in error.message


@pytest.mark.parametrize(
    ("party", "field"),
    [
        (Party("A B", "x"), "code"),
        (Party("A*", "x"), "code"),
        (Party("A", " "), "name"),
        (Party("A", "x", "#12345"), "color"),
        (Party("A", "x", aliases=("ok", " ")), "aliases/1"),
        (Party("A", "x", aliases=("AZERBAIJAN",)), "aliases/0"),
        (Party("A", "x", aliases=("aze",)), "aliases/0"),
    ],
)
def test_check_party_names_the_bad_field(party: Party, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_party(party, PARTIES[:2])
    assert caught.value.field == field


def test_check_party_trims_and_drops_repeated_aliases() -> None:
    party = check_party(Party(" OBS ", " Observers ", "#AABBCC", ("x", "X ", "y*")), PARTIES)
    assert party == Party("OBS", "Observers", "#aabbcc", ("x", "y*"))
    # A party may keep its own aliases when it is replaced.
    aze = dataclasses.replace(PARTIES[1], name="Azerbaijan Armed Forces")
    assert check_party(aze, PARTIES).aliases == aze.aliases
