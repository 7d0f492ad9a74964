"""Where the map's data comes from: the service's zone index and stored reports (capped), and
the parties and reference layers of `geodata/`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from app.domain import Report
from app.mapview.model import MapData
from app.scenario import GEODATA, load_scenario
from app.service import Service
from app.store import REPORT_PAGE

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
    of the range; parties and reference layers from `geodata` (none when it is missing, as in an
    installed wheel); and whether the reports were cut at `MAX_MAP_REPORTS`.

    The index is `Service.index()`, rebuilt only when the zones changed, so a map costs no index
    build of its own.
    """
    reports: list[Report] = []
    cursor: str | None = None
    more = True
    while more and len(reports) < MAX_MAP_REPORTS:
        page, cursor = service.list_reports(
            since=since, until=until, party=party, limit=REPORT_PAGE, after=cursor
        )
        reports += page
        more = cursor is not None
    try:
        scenario = load_scenario(geodata)
        parties, layers = scenario.parties, scenario.layers
    except FileNotFoundError:
        parties, layers = [], {}
    index = service.index()
    data = MapData(
        zones=index.zones,
        reports=reports[:MAX_MAP_REPORTS],
        parties=parties,
        layers=layers,
        index=index,
    )
    return data, len(reports) > MAX_MAP_REPORTS or more
