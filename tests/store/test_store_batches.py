"""Large batches in both stores: new ids over many months sent out of time order (PostGIS's COPY
path, rows sent in time order), then batches mixing new ids, duplicates and repeats (the path
that compares contents), with the same answers, feed positions and audit entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain import Report
from app.store import Conflict, Store
from tests.factories import make_report

T0 = datetime(2021, 1, 1, 12, tzinfo=UTC)


def _spread(prefix: str, n: int) -> list[Report]:
    """`n` reports whose times run against their ids, over about n/4 months."""
    return [
        make_report(
            f"{prefix}{i:03d}",
            lon=46.0 + i / 1000,
            observed_at=T0 + timedelta(days=7 * (n - i)),
            unit=f"u{i % 3}",
        )
        for i in range(n)
    ]


def test_a_batch_of_new_ids_over_many_months_is_stored_whole_in_id_order(store: Store) -> None:
    reports = _spread("a", 60)  # 60 weeks: 14 or 15 months, newest first
    stored, duplicates = store.add_reports(list(reversed(reports)), "op")
    assert duplicates == [] and [r.id for r in stored] == [r.id for r in reversed(reports)]
    assert store.count_reports() == 60
    page, _ = store.list_reports(limit=1_000)
    assert {r.id: r for r in page} == {r.id: r for r in reports}
    # The commit-order feed numbers a batch's new reports in id order, whatever their times.
    feed, position = store.reports_after(0, 1_000)
    assert [v.report.id for v in feed] == sorted(r.id for r in reports)
    assert store.reports_after(position, 1_000) == ([], position)
    (entry,) = [e for e in store.audit_log(limit=100) if e.action == "reports.add"]
    assert entry.detail == "stored 60, duplicates 0" and entry.actor == "op"


def test_batches_mixing_new_duplicate_and_repeated_ids_answer_alike(store: Store) -> None:
    first = _spread("b", 20)
    store.add_reports(first, "op")
    more = _spread("c", 20)
    # New ids, stored ones again, and one new id twice with the same content.
    mixed = [*more[:10], *first[:5], more[10], *more[10:]]
    stored, duplicates = store.add_reports(mixed, "op")
    assert [r.id for r in stored] == [r.id for r in more]
    assert duplicates == [r.id for r in first[:5]] + [more[10].id]
    assert store.count_reports() == 40
    # A stored id with other content refuses the whole batch, new ids included.
    changed = make_report(first[3].id, lon=45.0, observed_at=first[3].observed_at)
    with pytest.raises(Conflict) as refused:
        store.add_reports([*_spread("d", 12), changed], "op")
    assert refused.value.index == 12
    assert store.count_reports() == 40
    # An id twice in one batch with different contents: refused, nothing stored.
    twice = _spread("e", 12)
    with pytest.raises(Conflict):
        store.add_reports([*twice, make_report("e000", lon=47.0, observed_at=T0)], "op")
    assert store.count_reports() == 40
