"""The map's data from a store: every zone version, the reports of a range (capped), and the
parties and reference layers from `geodata/`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from app.domain import Report
from app.mapview.model import MapData
from app.scenario import GEODATA, load_scenario
from app.store.base import Store, iter_report_pages

#: The most reports one map page carries; past this the page says it is truncated.
MAX_MAP_REPORTS = 250_000


def map_data_from_store(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    party: str | None = None,
    geodata: Path = GEODATA,
) -> tuple[MapData, bool]:
    """Every zone version and the reports of the range from `store`, parties and reference
    layers from `geodata` (none when it is missing, as in an installed wheel); and whether the
    reports were cut at `MAX_MAP_REPORTS`."""
    reports: list[Report] = []
    pages = iter_report_pages(store, since=since, until=until, party=party)
    for page in pages:
        reports += page
        if len(reports) >= MAX_MAP_REPORTS:
            break
    try:
        scenario = load_scenario(geodata)
        parties, layers = scenario.parties, scenario.layers
    except FileNotFoundError:
        parties, layers = [], {}
    data = MapData(
        zones=store.zones_for_index(),
        reports=reports[:MAX_MAP_REPORTS],
        parties=parties,
        layers=layers,
    )
    return data, len(reports) > MAX_MAP_REPORTS or next(pages, None) is not None
