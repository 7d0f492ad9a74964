"""Where the map's data comes from: the service's zone index and stored reports (capped), and
the parties and reference layers of `geodata/`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from app.domain import Report
from app.mapview.model import MapData, MapQuery
from app.mapview.seasons import Season, SeasonCache, season_token
from app.scenario import GEODATA, load_scenario
from app.service import Service
from app.store import iter_report_pages

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


def season_from_service(
    service: Service,
    cache: SeasonCache,
    *,
    party: str | None = None,
    zone: str | None = None,
    geodata: Path = GEODATA,
) -> Season:
    """The judged season of every stored report (of `party`; with `zone`, that zone's findings
    and the units that met it), kept in `cache` until a report, zone or party is written.

    The tokens are read before the data: a write in between costs one more judging, never a
    stale season.
    """
    store = service.store
    token = season_token(
        store.reports_token(), store.zones_changed_token(), store.parties_token(), str(geodata)
    )

    def build() -> Season:
        try:
            scenario = load_scenario(geodata)
            parties, layers = scenario.parties, scenario.layers
        except FileNotFoundError:
            parties, layers = [], {}
        index = service.index()
        data = MapData(
            zones=index.zones,
            reports=[],
            parties=service.parties() or parties,
            layers=layers,
            index=index,
            columns=store.report_columns(party=party),
        )
        return Season.judge(data, MapQuery(party=party, zone=zone), token)

    return cache.get(token, MapQuery(party=party, zone=zone), build)
