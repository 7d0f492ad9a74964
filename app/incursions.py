"""The violations among the stored reports, kept up to date rather than worked out on every read.

A season of reports takes seconds to read back and judge, and an analyst asks for its incursions
again and again with other filters. `ViolationLog` keeps the violations found so far as columns and
brings them up to date on each read: the reports stored since its last read (the store's
`reports_after` position) are judged and appended; when the zones have changed (the index's token
moved), every stored report is judged again, so that a corrected zone corrects its incursions.

A corrected or retracted report comes through the same feed, as a new version in commit order:
the log drops the violations it holds for that report id and judges the new version (a
retraction, nothing). So a correction costs one small read and one `isin` over the violations,
not a judgement of the season again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.domain import Report
from app.findings import FindingColumns
from app.store import REPORT_PAGE, ReportVersion, Store

__all__ = ["Judge", "ViolationLog"]

#: Judges reports against the current zone index: the index's zone token, and the violations.
Judge = Callable[[Sequence[Report]], tuple[int, FindingColumns]]


@dataclass(frozen=True, slots=True)
class _Seen:
    token: int  # the zone token the violations were judged under
    position: int  # the store position of the last report judged
    violations: FindingColumns


class ViolationLog:
    """Every violation among the reports of one store, against the zones as they stand."""

    def __init__(
        self,
        store: Store,
        token: Callable[[], int],
        judge: Judge,
        page_size: int = REPORT_PAGE,
    ) -> None:
        """Follow `store`; `token` is the zones' current token, `judge` finds violations."""
        self._store = store
        self._token = token
        self._judge = judge
        self._page_size = page_size
        self._lock = threading.Lock()
        self._seen: _Seen | None = None

    def current(self) -> FindingColumns:
        """The violations of every stored report against the zones as they stand now, ordered
        by report time, report id and zone id."""
        with self._lock:  # one reader catches up; the others wait for its answer
            while True:
                token = self._token()
                seen = self._seen
                if seen is None or seen.token != token:
                    seen = _Seen(token, 0, FindingColumns.empty())
                parts, position, stale = [seen.violations], seen.position, False
                while not stale:
                    versions, position = self._store.reports_after(position, self._page_size)
                    if not versions:
                        break
                    live, changed = _latest(versions)
                    if changed:
                        # Earlier findings of corrected or retracted reports no longer hold.
                        parts = [p.take(~np.isin(p.report_id, changed)) for p in parts]
                    judged_under, violations = self._judge(live)
                    stale = judged_under != token  # the zones changed while catching up
                    parts.append(violations)
                if not stale:
                    if position != seen.position:
                        seen = _Seen(token, position, _in_order(FindingColumns.concat(parts)))
                    self._seen = seen
                    return seen.violations


def _latest(versions: Sequence[ReportVersion]) -> tuple[list[Report], list[str]]:
    """From a page of the feed: the reports to judge (each id's last version in the page,
    unless retracted), and the ids whose earlier findings must go (any version after the
    first)."""
    last: dict[str, ReportVersion] = {}
    for version in versions:  # in commit order: a later version replaces an earlier one
        last[version.report.id] = version
    changed = [v.report.id for v in versions if v.version > 1]
    if len(last) == len(versions) and not changed:
        return [v.report for v in versions], []  # the common page: new reports only
    return [v.report for v in last.values() if not v.retracted], changed


def _in_order(found: FindingColumns) -> FindingColumns:
    """Ordered by report time, report id and zone id (reports come in storage order)."""
    return found.take(np.lexsort((found.zone_id, found.report_id, found.time_ns)))
