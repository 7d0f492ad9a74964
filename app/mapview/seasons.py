"""A judged season, kept between requests, and the answers of `/map/data/…` drawn from it.

A `Season` is `prepare` run once over every stored report of a party/zone filter (read as
columns, `Store.report_columns`): the engine's findings, statuses, track events and summaries.
A map that pans, zooms and moves its slider costs a binary search and a mask per request
(`app.mapview.season`), and the payload of the few reports in view.

A season knows the position of the store's report feed it holds (`position`) and what it was
judged under (`basis`: the zones, the parties, the geodata). When only reports were written
since, it is *advanced* (`Season.advance`, `app.mapview.increment`): the new and changed
reports are judged, superseded versions replaced, retracted ones dropped, and only the units
they touch laid out again. A zone or party change re-judges every report: `SeasonCache` does
that once, and for a big season in a thread of its own while the previous season is served,
marked `stale`. A zone filter's season is cut from its party's season, not judged.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from app.domain import Zone
from app.mapview import season as pure
from app.mapview.increment import Changes, advance
from app.mapview.layers import zone_layers_by_kind
from app.mapview.model import MapData, MapModel, MapQuery, _range, _steps, lay_out, prepare
from app.mapview.payload import payload
from app.mapview.seconds import in_force, overlaps, to_seconds
from app.mapview.style import VIOLATION, WARNING

#: Keys of `payload` that only the page needs (the data answers leave them out).
_PAGE_ONLY = ("steps", "windows", "templates", "sizes", "colors", "start", "end", "opening")

#: The most slider stops a page carries (beyond this, report times are rounded up).
MAX_STEPS = 2000


@dataclass(slots=True)
class Season:
    """A judged season (`model`: every report of the filter, in time order) with the columns a
    view is cut from, and `token`: what it was judged from (changes with any write)."""

    model: MapModel
    token: str
    t: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    party: np.ndarray
    status: np.ndarray
    certain: np.ndarray
    possible: np.ndarray
    track: np.ndarray
    #: Every zone version the season was judged against (of the zone filter, if any).
    zones: list[Zone]
    #: The report feed position the season holds every write up to (`Store.reports_after`).
    position: int = 0
    #: What the season was judged under: the zones token (of `index`), the parties token, the
    #: geodata. Any change re-judges the season whole.
    basis: tuple[object, ...] = ()
    #: What it was judged from (zones, index, parties, layers; no reports): what an advance
    #: judges and lays out with.
    data: MapData | None = None
    #: Served while a newer season is being judged (after a zone or party change).
    stale: bool = False

    @classmethod
    def judge(
        cls,
        data: MapData,
        query: MapQuery,
        token: str,
        *,
        position: int = 0,
        basis: tuple[object, ...] = (),
    ) -> Season:
        """`prepare` over `data`, and the columns views are cut from."""
        return cls.of(prepare(data, query), data, token, position=position, basis=basis)

    @classmethod
    def of(
        cls,
        model: MapModel,
        data: MapData,
        token: str,
        *,
        position: int = 0,
        basis: tuple[object, ...] = (),
    ) -> Season:
        """The season of a laid-out `model` (judged from `data`)."""
        query = model.query
        r = model.reports
        codes = pd.Index([p.code for p in model.parties])
        party = codes.get_indexer(pd.Index(r["party"])).astype(np.int32)
        track = np.full(len(r), -1, np.int64)
        has_unit = r["unit"].notna().to_numpy()
        if has_unit.any():
            keyed = r.loc[has_unit, ["party", "unit"]].astype(str)
            # Codes in (party, unit) order, not order of appearance: a season advanced a few
            # reports at a time numbers its tracks as one judged whole does.
            labels, _ = pd.factorize(keyed["party"] + "\x1f" + keyed["unit"], sort=True)
            track[has_unit] = labels
        return cls(
            model=model,
            token=token,
            t=r["t"].to_numpy(np.int64),
            lon=r["lon"].to_numpy(np.float64),
            lat=r["lat"].to_numpy(np.float64),
            party=party,
            status=r["status"].to_numpy(np.int8),
            certain=r["certain"].to_numpy(bool),
            possible=r["possible"].to_numpy(bool),
            track=track,
            zones=[z for z in data.zones if query.zone is None or z.id == query.zone],
            position=position,
            basis=basis,
            data=replace(data, reports=[], columns=None),
        )

    def advance(self, changes: Changes, position: int, token: str) -> Season:
        """This season (of no zone filter) with `changes`, the feed's writes up to `position`:
        the changed reports judged with the season's index, the rest carried over."""
        data = self.data
        if data is None or data.index is None or self.model.query.zone is not None:
            raise ValueError("only a party's season judged with an index can be advanced")
        m = self.model
        if not len(changes):
            return replace(self, position=position, token=token, stale=False)
        moved = advance(
            m.reports, m.findings, m.events, m.summary, changes, data.index, m.query.party
        )
        model = lay_out(
            moved.frame, moved.findings, data, m.query, tracks=(moved.events, moved.summary)
        )
        return Season.of(model, data, token, position=position, basis=self.basis)

    def cut_zone(self, zone: str, token: str) -> Season:
        """The season of one zone (its findings, the reports that have one and every report of
        the units among them), cut from this season of every zone: nothing judged again."""
        data = self.data
        if data is None or self.model.query.zone is not None:
            raise ValueError("a zone's season is cut from a season of every zone")
        query = replace(self.model.query, zone=zone)
        model = lay_out(self.model.reports, self.model.findings, data, query)
        return Season.of(model, data, token, position=self.position, basis=self.basis)

    # -- views ---------------------------------------------------------------------------

    def rows(self, bbox: pure.BBox | None, since: int | None, until: int | None) -> np.ndarray:
        """Row positions of the reports in `bbox` with since <= t < until, in time order."""
        span = pure.window(self.t, since, until)
        inside = pure.in_view(self.lon[span], self.lat[span], bbox)
        rows: np.ndarray = np.flatnonzero(inside) + span.start
        return rows

    def counts(self, rows: np.ndarray) -> dict[str, int]:
        """What the slider's label says of `rows`: reports, violations inside and possible
        apart, warnings, uncertain (`possible`) reports."""
        status = self.status[rows]
        violation = status == VIOLATION
        certain = self.certain[rows]
        return {
            "reports": len(rows),
            "violationsInside": int((violation & certain).sum()),
            "violationsPossible": int((violation & ~certain).sum()),
            "warnings": int((status == WARNING).sum()),
            "possible": int(self.possible[rows].sum()),
        }

    def window_counts(self, since: int | None, until: int | None) -> dict[str, int]:
        """`counts` of the whole map (every place) in the window."""
        span = pure.window(self.t, since, until)
        return self.counts(np.arange(span.start, span.stop))

    def reports(
        self, bbox: pure.BBox | None, since: int | None, until: int | None, limit: int
    ) -> dict[str, Any]:
        """The payload of the reports in view (the first `limit` in time order), with their
        findings, tracks and events, as `payload` writes it for the page; `truncated` when the
        view held more; `matched` how many it held."""
        rows = self.rows(bbox, since, until)
        shown = rows[:limit]
        answer = {k: v for k, v in payload(self.sub_model(shown)).items() if k not in _PAGE_ONLY}
        answer["counts"] = self.window_counts(since, until)
        answer["view"] = self.counts(rows)
        answer["matched"] = len(rows)
        answer["truncated"] = len(rows) > limit
        return answer

    def cells(
        self, bbox: pure.BBox | None, since: int | None, until: int | None, zoom: float
    ) -> dict[str, Any]:
        """The reports in view counted per grid cell at `zoom` (`season.cells`)."""
        rows = self.rows(bbox, since, until)
        parties = self.model.parties
        grid = pure.cells(
            self.lon[rows],
            self.lat[rows],
            self.party[rows],
            self.status[rows],
            self.certain[rows],
            len(parties),
            pure.cell_size(zoom),
        )
        return {
            "parties": [{"code": p.code, "name": p.name, "color": p.color} for p in parties],
            "size": pure.cell_size(zoom),
            "cells": {
                "lon": np.round(grid.lon, 5),
                "lat": np.round(grid.lat, 5),
                "count": grid.count,
                "inside": grid.inside,
                "possible": grid.possible,
                "warnings": grid.warnings,
                # Flattened row by row: by_party[c * len(parties) + k].
                "byParty": grid.by_party.ravel(),
            },
            "counts": self.window_counts(since, until),
            "view": self.counts(rows),
            "matched": len(rows),
        }

    def tracks(
        self, bbox: pure.BBox | None, since: int | None, until: int | None, zoom: float
    ) -> dict[str, Any]:
        """Every track with a report in view, over the window, simplified to `zoom`."""
        span = pure.window(self.t, since, until)
        in_box = pure.in_view(self.lon[span], self.lat[span], bbox)
        track = self.track[span]
        seen = np.unique(track[in_box & (track >= 0)])
        keep = np.isin(track, seen)
        lines = pure.simplify_tracks_within(
            self.lon[span][keep],
            self.lat[span][keep],
            track[keep],
            pure.TRACK_TOLERANCE_PX * pure.degrees_per_pixel(zoom),
            pure.MAX_TRACK_VERTICES,
        )
        # The party and unit of each track, from its first row (`lines.track` is sorted, as
        # np.unique's codes are).
        positions = np.flatnonzero(keep) + span.start
        _, first = np.unique(self.track[positions], return_index=True)
        rows = positions[first]
        units = self.model.reports["unit"].to_numpy(object)
        return {
            "parties": [
                {"code": p.code, "name": p.name, "color": p.color} for p in self.model.parties
            ],
            "tracks": {
                "party": self.party[rows] if len(rows) else np.empty(0, np.int32),
                "unit": units[rows].tolist(),
                "offsets": lines.offsets,
                "lon": np.round(lines.lon, 5),
                "lat": np.round(lines.lat, 5),
            },
        }

    def events(
        self, bbox: pure.BBox | None, since: int | None, until: int | None
    ) -> dict[str, Any]:
        """Entries into and exits from zones in view and window, in time order."""
        e = self.model.events
        if not len(e):
            return {"t": [], "kind": [], "zone": [], "party": [], "unit": [], "lon": [], "lat": []}
        at = (e["at"].astype("int64") // 10**9).to_numpy(np.int64)
        report = e["report_id"].to_numpy(np.int64)
        keep = np.ones(len(e), bool)
        if since is not None:
            keep &= at >= since
        if until is not None:
            keep &= at < until
        keep &= pure.in_view(self.lon[report], self.lat[report], bbox)
        kept = e[keep]
        return {
            "t": at[keep],
            "kind": kept["kind"].astype(str).tolist(),
            "zone": kept["zone_id"].astype(str).tolist(),
            "party": kept["party"].astype(str).tolist(),
            "unit": kept["unit"].astype(str).tolist(),
            "lon": np.round(self.lon[report[keep]], 6),
            "lat": np.round(self.lat[report[keep]], 6),
        }

    def sub_model(self, rows: np.ndarray) -> MapModel:
        """The model cut to `rows` (positions, ascending): its reports, their findings and
        events renumbered, the summaries of their units."""
        m = self.model
        rows = np.asarray(rows, np.int64)
        position = np.full(len(m.reports), -1, np.int64)
        position[rows] = np.arange(len(rows))
        f = m.findings
        f_keep = position[f["report"].to_numpy(np.int64)] >= 0 if len(f) else np.zeros(0, bool)
        findings = f[f_keep].assign(report=position[f["report"].to_numpy(np.int64)[f_keep]])
        e = m.events
        if len(e):
            e_report = e["report_id"].to_numpy(np.int64)
            e_keep = position[e_report] >= 0
            events = e[e_keep].assign(report_id=position[e_report[e_keep]])
        else:
            events = e
        return replace(
            m,
            reports=m.reports.iloc[rows].reset_index(drop=True),
            findings=findings.reset_index(drop=True),
            events=events.reset_index(drop=True),
        )

    def page_model(self, query: MapQuery, *, now: datetime | None = None) -> MapModel:
        """The model the page is built from: no reports inline (map.js fetches them), the
        slider's range from `query` (as `prepare` sets it), its stops thinned to `MAX_STEPS`,
        and the opening view framing the reports up to the opening moment, when there are any.
        """
        m = self.model
        now_s = to_seconds(now or datetime.now(UTC))
        start, end, opening = _range(self.t, query, now_s, [])
        if query.since is None and query.until is None and query.at is None and not len(self.t):
            start, end, opening = m.start, m.end, m.opening
        drawn = [z for z in self.zones if overlaps(z, start, end)]
        fixed = _steps(np.empty(0, np.int64), drawn, m.layers, start, end, opening)
        steps = pure.thin_steps(self.t[(self.t >= start) & (self.t <= end)], fixed, MAX_STEPS)
        steps = steps[(steps >= start) & (steps <= end)]
        rows = self.rows(None, start, opening + 1)
        bounds = m.bounds
        if len(rows):
            lon, lat = self.lon[rows], self.lat[rows]
            # The middle 98 %: a few stray reports far away do not shrink the rest to a dot.
            q = [0.01, 0.99] if len(rows) > 100 else [0.0, 1.0]
            west, east = np.quantile(lon, q)
            south, north = np.quantile(lat, q)
            bounds = (float(west), float(south), float(east), float(north))
        empty = self.sub_model(np.empty(0, np.int64))
        counts = dict(m.counts)
        window = self.window_counts(start, end + 1)
        counts.update(
            reports=window["reports"],
            violations_inside=window["violationsInside"],
            violations_possible=window["violationsPossible"],
        )
        return replace(
            empty,
            zones=zone_layers_by_kind(drawn, m.parties),
            zones_at_opening=[(z.id, z.version) for z in drawn if in_force(z, opening)],
            query=query,
            start=start,
            end=end,
            opening=opening,
            steps=steps,
            bounds=bounds,
            counts=counts,
        )


def season_token(*parts: object) -> str:
    """A short stable digest of what a season was judged from."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


#: A season of at least this many reports is judged again in a thread of its own after a zone
#: or party change, the previous one served meanwhile; a smaller one is judged on the request.
BACKGROUND_FROM = 50_000


class SeasonCache:
    """The seasons of the last few queries, each kept up to date with the store.

    `get` answers from the season kept for a query while nothing was written; advances it when
    only reports were (one advance at a time per query: others wait for it); and judges it
    again after a zone or party change: on the request when there is none yet or it is small,
    else in a background thread (one at a time per process) while the previous season is
    served marked `stale`.
    """

    def __init__(self, size: int = 4, background_from: int = BACKGROUND_FROM) -> None:
        """Keep `size` parties' seasons at most (and as many zones' cuts); judge seasons of
        `background_from` reports or more again in the background."""
        self._size = size
        self._background_from = background_from
        self._seasons: OrderedDict[MapQuery, Season] = OrderedDict()
        self._lock = threading.Lock()
        self._locks: dict[MapQuery, threading.Lock] = {}
        self._rebuild: threading.Thread | None = None
        #: Seasons judged whole, advanced and cut (for a zone) since the cache was made (what
        #: the tests and the benchmark look at).
        self.judged = 0
        self.advanced = 0
        self.cut = 0

    def peek(self, query: MapQuery) -> Season | None:
        """The season kept for `query`, if any (not brought up to date)."""
        with self._lock:
            return self._seasons.get(query)

    def get(
        self,
        query: MapQuery,
        head: int,
        basis: tuple[object, ...],
        build: Callable[[], Season],
        step: Callable[[Season], Season | None],
        *,
        cut: bool = False,
    ) -> Season:
        """The season of `query` holding the feed up to `head` under `basis`.

        `build()` judges it whole; `step(season)` advances a season of the same basis to the
        feed's end, or gives None when the backlog is too long (then it is judged whole).
        A `cut` season (one zone's, cut from a party's season) is made again on the request.
        """
        with self._lock:
            found = self._seasons.get(query)
            lock = self._locks.setdefault(query, threading.Lock())
        if found is not None and found.basis == basis and found.position >= head:
            return self._keep(query, found)
        big = found is not None and len(found.t) >= self._background_from
        if found is not None and found.basis != basis and big and not cut:
            self._rebuild_in_background(query, basis, build)
            with self._lock:
                latest = self._seasons.get(query, found)
            return latest if latest.basis == basis else replace(latest, stale=True)
        with lock:
            with self._lock:
                found = self._seasons.get(query)
            if found is not None and found.basis == basis and found.position >= head:
                return self._keep(query, found)
            if found is not None and found.basis == basis:
                advanced = step(found)
                if advanced is not None:
                    self.advanced += 1
                    return self._keep(query, advanced)
            made = build()
            if cut:
                self.cut += 1
            else:
                self.judged += 1
            return self._keep(query, made)

    def settle(self, timeout: float = 600.0) -> None:
        """Wait (up to `timeout` seconds) for a background judgement to finish."""
        thread = self._rebuild
        if thread is not None:
            thread.join(timeout)

    def _keep(self, query: MapQuery, season: Season) -> Season:
        with self._lock:
            kept = self._seasons.get(query)
            # Never replace a season by an older one (a slow judgement finishing late).
            if kept is None or kept.basis != season.basis or kept.position <= season.position:
                self._seasons[query] = season
                kept = season
            self._seasons.move_to_end(query)
            # Parties' seasons and zones' cuts are counted apart: cuts never push out the
            # seasons they are cut from.
            kind = [q for q in self._seasons if (q.zone is None) == (query.zone is None)]
            for old in kind[: max(0, len(kind) - self._size)]:
                del self._seasons[old]
                self._locks.pop(old, None)
        return kept

    def _rebuild_in_background(
        self, query: MapQuery, basis: tuple[object, ...], build: Callable[[], Season]
    ) -> None:
        """Judge the season of `query` in a thread, unless one judgement already runs."""
        with self._lock:
            if self._rebuild is not None and self._rebuild.is_alive():
                return

            def run() -> None:
                season = build()
                self.judged += 1
                with self._lock:
                    self._seasons[query] = season
                    self._seasons.move_to_end(query)

            self._rebuild = threading.Thread(target=run, name="truce-season", daemon=True)
            self._rebuild.start()
