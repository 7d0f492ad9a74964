"""The interactive map: zones by kind, reference layers, reports, findings and tracks, offline.

Built by plain functions, in two steps:

1. `prepare(data, query)` turns zones, reports, parties and reference layers into a `MapModel`:
   plain arrays and GeoJSON, computed with whole-array calls (the engine's `check`, the track
   functions, numpy and pandas), never a Python loop over reports. 100,000 reports take a few
   seconds.
2. `build_map(model)` makes the folium map. Zones, reference layers and the legend are folium
   objects; reports, findings and tracks travel as one compact columnar JSON that
   `app/static/truce/map.js` turns into markers, clusters and a time slider in the browser.

`map_html` renders the page with its assets linked under `/static/` (for the API) or inlined (for
a standalone file, `write_map_html`). Nothing here reaches the network; the only files read are
the assets themselves (see `app.assets`).

What the map shows, and how (the legend on the map says the same):

- zones in force at the slider's time, styled by kind (colour and dash pattern); popups give
  name, kind, authorized parties, validity, warning distance, agreement and source;
- reference layers: the line of contact and observation posts (each shown while in force), and
  place labels with both names; an outline basemap from every zone and line, for orientation
  when there are no tiles (the default: no tile server is contacted unless `tiles` names one);
- reports: fill colour by party, shape by kind, outline dash by source, opacity by confidence;
  plain reports cluster; violations are larger with a red halo and never cluster with the rest;
  `approaching` reports carry an amber ring; `possible` ones get their uncertainty circle;
- tracks: each unit's path in time order, with `entered` / `exited` events;
- a time slider over every moment when something changes (a report, a zone version, a line),
  with a window ("everything before", or the last hour, day, week...), and play.

The package, one concern a module (the arrows point down: each imports only those below it):

- `render`: step 2, the folium elements, `build_map`, `map_html`, `write_map_html`;
- `legend`: the legend's HTML;
- `payload`: the columnar JSON for map.js (reports, findings, tracks);
- `sources`: `map_data_from_service`, the map's data from the service (its zone index and
  stored reports) and `geodata/`;
- `model`: step 1, `MapQuery`, `MapData`, `MapModel` and `prepare`;
- `layers`: zones and reference layers as styled GeoJSON, the outline basemap, the bounds;
- `popups`: the escaped HTML of popups and place labels;
- `style`: colours, report statuses, zone and reference styles, marker shapes, `marker_svg`;
- `seconds`: moments as seconds since the epoch, and zone validity in them.
"""

from app.mapview.model import MapData, MapModel, MapQuery, prepare
from app.mapview.popups import place_label
from app.mapview.render import OFFLINE_TILES, build_map, is_offline, map_html, write_map_html
from app.mapview.sources import MAX_MAP_REPORTS, map_data_from_service
from app.mapview.style import (
    REPORT_SHAPES,
    VIOLATION,
    VIOLATION_COLOR,
    WARNING,
    ZONE_STYLES,
    ZoneStyle,
    marker_svg,
)

__all__ = [
    "MAX_MAP_REPORTS",
    "OFFLINE_TILES",
    "REPORT_SHAPES",
    "VIOLATION",
    "VIOLATION_COLOR",
    "WARNING",
    "ZONE_STYLES",
    "MapData",
    "MapModel",
    "MapQuery",
    "ZoneStyle",
    "build_map",
    "is_offline",
    "map_data_from_service",
    "map_html",
    "marker_svg",
    "place_label",
    "prepare",
    "write_map_html",
]
