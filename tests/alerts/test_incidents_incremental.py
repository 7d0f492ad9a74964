"""Incidents kept write by write equal incidents computed from all the reports at once.

Each write only recomputes a window of the unit's track (from the earliest report it touches,
widened to the start of any episode in progress then): filing a track in a shuffled order,
with late reports, corrections and retractions, must end with the same episodes as filing the
final reports in one batch into an empty store.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain import Report
from app.store import IncidentFilter, SQLiteStore, Store
from tests.factories import AT, make_report, make_zone, square

ZONES = [square(46.0, 39.0, 0.1), square(46.2, 39.0, 0.1)]
SPOTS = [
    (46.05, 39.05, 0.0),  # deep in the first zone
    (46.0005, 39.05, 200.0),  # on its west edge: possible
    (45.995, 39.05, 0.0),  # approaching it
    (46.25, 39.05, 0.0),  # deep in the second zone
    (46.15, 39.05, 0.0),  # between them: approaching both
    (45.5, 39.05, 0.0),  # far away
]


def _zoned(store: Store) -> Store:
    store.add_zones([make_zone(g, zone_id=f"z{n}") for n, g in enumerate(ZONES)], "admin")
    return store


def _track(rng: random.Random, n: int) -> list[Report]:
    reports = []
    for i in range(n):
        lon, lat, u = rng.choice(SPOTS)
        unit = rng.choice(["u1", "u1", "u2", None])
        reports.append(
            make_report(
                f"r{i:03d}",
                lon,
                lat,
                unit=unit,
                uncertainty_m=u,
                observed_at=AT + timedelta(minutes=10 * i),
            )
        )
    return reports


def _episodes(store: Store) -> list[tuple[Any, ...]]:
    incidents = store.list_incidents(IncidentFilter(), limit=10_000)[0]
    return sorted(
        (
            i.party,
            i.unit or "",
            i.zone_id,
            i.state,
            i.opened_at,
            i.last_seen_at,
            i.closed_at or AT,
            i.verdict,
            round(i.depth_m, 6),
            i.report_ids,
        )
        for i in incidents
        if i.close_reason not in ("corrected", "retracted", "superseded")
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_write_by_write_equals_all_at_once(store: Store, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    final = {r.id: r for r in _track(rng, 40)}
    incremental = _zoned(store)
    order = list(final.values())
    rng.shuffle(order)  # late reports everywhere
    for report in order:
        incremental.add_reports([report], "obs")
    for report_id in rng.sample(sorted(final), 6):  # corrections: moved, or a time shifted
        lon, lat, u = rng.choice(SPOTS)
        moved = make_report(
            report_id,
            lon,
            lat,
            unit=final[report_id].unit,
            uncertainty_m=u,
            observed_at=final[report_id].observed_at + timedelta(minutes=rng.choice([0, 25])),
        )
        incremental.correct_report(moved, "obs")
        final[report_id] = moved
    for report_id in rng.sample(sorted(final), 4):
        incremental.retract_report(report_id, "test", "obs")
        del final[report_id]
    # The same final reports, in one batch, into an empty store (a SQLite file: the test's
    # own PostGIS database is taken by the incremental side).
    with SQLiteStore(tmp_path / "batch.sqlite") as batch_store:
        _zoned(batch_store).add_reports(list(final.values()), "obs")
        assert _episodes(incremental) == _episodes(batch_store)
    assert _episodes(incremental), "the track should give some incidents"


@pytest.mark.parametrize("seed", [4, 5])
def test_batches_of_many_units_equal_all_at_once(store: Store, tmp_path: Path, seed: int) -> None:
    """Batches that mix units in a zone with units that are not (left out of the recompute
    when nothing of theirs can change), in a shuffled order: the same episodes as one batch."""
    rng = random.Random(seed)
    reports = []
    for i in range(240):
        unit = f"u{rng.randrange(12)}"
        # Units u0-u5 go anywhere; u6-u11 mostly keep out of the zones, now and then inside.
        spots = SPOTS if unit < "u6" else [*SPOTS[2:3], *SPOTS[4:], *SPOTS[4:], SPOTS[0]]
        lon, lat, u = rng.choice(spots)
        at = AT + timedelta(minutes=10 * rng.randrange(400))
        reports.append(
            make_report(f"m{i:03d}", lon, lat, unit=unit, uncertainty_m=u, observed_at=at)
        )
    order = list(reports)
    rng.shuffle(order)
    incremental = _zoned(store)
    for start in range(0, len(order), 17):
        incremental.add_reports(order[start : start + 17], "obs")
    with SQLiteStore(tmp_path / "batch.sqlite") as batch_store:
        _zoned(batch_store).add_reports(reports, "obs")
        assert _episodes(incremental) == _episodes(batch_store)
    assert len(_episodes(incremental)) > 5, "the units should give incidents"


def test_late_report_before_a_long_stay_equals_all_at_once(store: Store, tmp_path: Path) -> None:
    """A late report before a stay in a zone longer than the reports a write reads ahead of
    it (`Touched.AHEAD`): the window's end lies beyond them, and the track is read whole."""
    inside, possible, away = SPOTS[0], SPOTS[1], SPOTS[5]
    spots = [away, inside] + [possible, inside] * 20 + [away, inside, away]
    reports = [
        make_report(
            f"s{i:03d}", lon, lat, unit="u1", uncertainty_m=u, observed_at=AT + timedelta(minutes=i)
        )
        for i, (lon, lat, u) in enumerate(spots)
    ]
    late = make_report("late", *away[:2], unit="u1", observed_at=AT + timedelta(seconds=30))
    incremental = _zoned(store)
    incremental.add_reports(reports, "obs")
    incremental.add_reports([late], "obs")  # out between the first two: nothing changes
    closing = make_report(
        "late2", *away[:2], unit="u1", observed_at=AT + timedelta(minutes=10, seconds=30)
    )
    incremental.add_reports([closing], "obs")  # splits the long stay in two
    with SQLiteStore(tmp_path / "batch.sqlite") as batch_store:
        _zoned(batch_store).add_reports([*reports, late, closing], "obs")
        assert _episodes(incremental) == _episodes(batch_store)
    assert len(_episodes(incremental)) == 3
