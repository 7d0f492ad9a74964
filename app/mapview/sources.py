"""Where the map's data comes from: the service's zone index and stored reports (capped), and
the parties and reference layers of `geodata/`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from app.domain import Report
from app.mapview.increment import changes_from_versions
from app.mapview.model import MapData, MapQuery
from app.mapview.seasons import Season, SeasonCache, season_token
from app.scenario import GEODATA, load_scenario
from app.service import Service
from app.store import ReportVersion, iter_report_pages

#: The most reports one map page carries; past this the page says it is truncated.
MAX_MAP_REPORTS = 250_000


def map_data_from_service(
    service: Service,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    party: str | None = None,
    geodata: Path = GEODATA,
) -> tuple[MapData, bool]:
    """The service's current zone index (with every zone version in it) and the stored reports
    of the range; the registered parties (else those of `geodata`) and reference layers from
    `geodata` (none when it is missing, as in an installed wheel); and whether the reports were
    cut at `MAX_MAP_REPORTS`.

    The index is `Service.index()`, rebuilt only when the zones changed, so a map costs no index
    build of its own.
    """
    reports: list[Report] = []
    # Service.list_reports is the store's listing as it is: walked here a page at a time.
    pages = iter_report_pages(service.store, since=since, until=until, party=party)
    for page in pages:
        reports += page
        if len(reports) >= MAX_MAP_REPORTS:
            break
    try:
        scenario = load_scenario(geodata)
        parties, layers = scenario.parties, scenario.layers
    except FileNotFoundError:
        parties, layers = [], {}
    # The registered parties' names and colours, when there are any (the scenario's otherwise).
    parties = service.parties() or parties
    index = service.index()
    data = MapData(
        zones=index.zones,
        reports=reports[:MAX_MAP_REPORTS],
        parties=parties,
        layers=layers,
        index=index,
    )
    return data, len(reports) > MAX_MAP_REPORTS or next(pages, None) is not None


#: The most feed entries an advance reads (past this, the season is judged whole: a big import
#: is cheaper to judge with the rest than to merge in).
MAX_ADVANCE = 100_000
#: Feed entries per read.
FEED_PAGE = 10_000


def season_from_service(
    service: Service,
    cache: SeasonCache,
    *,
    party: str | None = None,
    zone: str | None = None,
    geodata: Path = GEODATA,
) -> Season:
    """The judged season of every stored report (of `party`; with `zone`, that zone's findings
    and the units that met it), kept in `cache` and brought up to date with the store's
    commit-order feed (`SeasonCache.get`).

    Every token is read before the data it stands for: a write in between is read again from
    the feed (which gives what the season already holds: nothing changes), never missed.
    """
    store = service.store
    head = store.reports_token()
    basis = (store.zones_changed_token(), store.parties_token(), str(geodata))
    query = MapQuery(party=party)

    def build() -> Season:
        position = store.reports_token()
        parties_token = store.parties_token()
        try:
            scenario = load_scenario(geodata)
            parties, layers = scenario.parties, scenario.layers
        except FileNotFoundError:
            parties, layers = [], {}
        zones_token, index = service.indexed()
        data = MapData(
            zones=index.zones,
            reports=[],
            parties=service.parties() or parties,
            layers=layers,
            index=index,
            columns=store.report_columns(party=party),
        )
        judged = (zones_token, parties_token, str(geodata))
        token = season_token(position, *judged)
        return Season.judge(data, query, token, position=position, basis=judged)

    def step(season: Season) -> Season | None:
        versions: list[ReportVersion] = []
        position = season.position
        while len(versions) <= MAX_ADVANCE:
            page, position = store.reports_after(position, FEED_PAGE)
            versions += page
            if len(page) < FEED_PAGE:
                return season.advance(
                    changes_from_versions(versions),
                    position,
                    season_token(position, *season.basis),
                )
        return None

    whole = cache.get(query, head, basis, build, step)
    if zone is None:
        return whole
    token = season_token(whole.token, zone)
    cut = cache.get(
        MapQuery(party=party, zone=zone),
        whole.position,
        ("cut", whole.token),
        lambda: whole.cut_zone(zone, token),
        lambda _: None,
        cut=True,
    )
    return replace(cut, stale=True) if whole.stale else cut
