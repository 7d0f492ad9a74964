"""Step 2: the folium map of a `MapModel` (`build_map`), and its HTML page, linked (`map_html`)
or standalone (`write_map_html`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import branca.element
import folium
import folium.plugins
import orjson
from folium.template import Template

from app import assets
from app.mapview.legend import legend_html
from app.mapview.model import MapData, MapModel, MapQuery
from app.mapview.payload import payload

#: `tiles` values that mean "no tile server": the outline basemap from geodata only.
OFFLINE_TILES = frozenset({"", "none", "offline"})

#: Above this many violations (or warnings) in the map's range, they cluster among themselves
#: (in red or amber clusters, apart from the plain reports) so that the page stays responsive.
UNCLUSTERED_MAX = 3000


def is_offline(tiles: str | None) -> bool:
    """Whether `tiles` asks for no tile server (None, "", "none", "offline")."""
    return tiles is None or tiles.strip().lower() in OFFLINE_TILES


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no "</script>", no "<!--")."""
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


class _TruceLayers(folium.elements.JSCSSMixin, branca.element.MacroElement):
    """Hands the payload and the layers it fills to `TruceMap.init` (app/static/truce/map.js)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.truce = TruceMap.init({{ this._parent.get_name() }}, {
            {%- for key, layer in this.groups.items() %}
            {{ key }}: {{ layer.get_name() if layer is not none else "null" }},
            {%- endfor %}
            timed: [
                {%- for layer in this.timed %}
                {{ layer.get_name() }},
                {%- endfor %}
            ]
        }, {{ this.payload }}, {{ this.options }});
        {% endmacro %}
        """
    )
    default_js = [
        ("truce_season_js", "/static/truce/season.js"),
        ("truce_map_js", "/static/truce/map.js"),
    ]
    default_css = [("truce_map_css", "/static/truce/map.css")]

    def __init__(
        self,
        groups: dict[str, Any],
        timed: list[Any],
        data: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "TruceLayers"
        self.groups = groups
        self.timed = timed
        self.payload = _script_json(data)
        self.options = _script_json(options)


class _Legend(branca.element.MacroElement):
    """A collapsible legend control (HTML built here, escaped)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var legend = L.control({position: {{ this.position|tojson }}});
            var map = {{ this._parent.get_name() }};
            legend.onAdd = function () {
                var div = L.DomUtil.create("div", "truce-legend leaflet-bar");
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                var details = div.querySelector("details");
                // Collapsed on small screens (a phone): the map comes first.
                if (details && (window.innerWidth < 800 || window.innerHeight < 600)) {
                    details.open = false;
                }
                // Never over an open popup: folded while one is open, as it was after.
                var reopen = false;
                map.on("popupopen", function () {
                    if (details && details.open) { reopen = true; details.open = false; }
                });
                map.on("popupclose", function () {
                    if (details && reopen) { details.open = true; }
                    reopen = false;
                });
                return div;
            };
            legend.addTo(map);
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, position: str = "topleft") -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "Legend"
        self.html = html_text
        self.position = position


class _OutlineMiniMap(folium.plugins.MiniMap):
    """folium's MiniMap drawing the outline basemap instead of tiles."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }}_layer = L.geoJSON({{ this.outlines|tojson }}, {
                style: function (f) { return f.properties.style; }, interactive: false
            });
            var {{ this.get_name() }} = new L.Control.MiniMap(
                {{ this.get_name() }}_layer, {{ this.options|tojavascript }}
            );
            {{ this._parent.get_name() }}.addControl({{ this.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, outlines: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.outlines = outlines


_BIND_POPUP = folium.JsCode(
    """
    function (feature, layer) {
        var p = feature.properties || {};
        if (p._popup) { layer.bindPopup(p._popup, {maxWidth: 380}); }
        if (p._label) { layer.bindTooltip(p._label, {sticky: true}); }
    }
    """
)

_CLUSTER_ICON = """
    function (cluster) {
        var n = cluster.getChildCount();
        var size = n < 10 ? 30 : n < 100 ? 36 : n < 1000 ? 42 : 48;
        return L.divIcon({
            html: "<div><span>" + n + "</span></div>",
            className: "marker-cluster truce-cluster %s",
            iconSize: L.point(size, size)
        });
    }
"""


def _cluster(name: str, extra_class: str, show: bool = True) -> folium.plugins.MarkerCluster:
    return folium.plugins.MarkerCluster(  # type: ignore[no-untyped-call]
        name=name,
        show=show,
        icon_create_function=_CLUSTER_ICON % extra_class,
        options={
            "chunkedLoading": True,
            "showCoverageOnHover": False,
            "maxClusterRadius": 45,
            "spiderfyOnMaxZoom": True,
            "removeOutsideVisibleBounds": True,
        },
    )


_PLACE_LABEL = folium.JsCode(
    """
    function (feature, layer) {
        var p = feature.properties || {};
        layer.setIcon(L.divIcon({className: "truce-place", iconSize: [0, 0], html: p._html}));
        if (p._popup) { layer.bindPopup(p._popup, {maxWidth: 320}); }
    }
    """
)


def build_map(
    model: MapModel,
    *,
    tiles: str | None = None,
    title: str = "Truce",
    source: dict[str, Any] | None = None,
) -> folium.Map:
    """The folium map of a `MapModel`. `tiles`: None (offline outlines), a folium provider
    name ("OpenStreetMap", "CartoDB positron") or a URL template of the user's tile server.

    `source`, when given, tells map.js where the reports come from instead of the model's
    (then empty) inline payload: `{"url": ".../map/data", "party": ..., "zone": ...}` for the
    API, or `{"embedded": {...}}` for a standalone file's season (`app.mapview.embed`)."""
    offline = is_offline(tiles)
    m = folium.Map(
        location=[0.0, 0.0],
        zoom_start=2,
        tiles=None,
        control_scale=True,
        prefer_canvas=False,
        # Leaflet needs the map's own zoom limits (marker clusters ask for them); folium's
        # max_zoom only reaches a tile layer, and there may be none.
        maxZoom=19,
        minZoom=2,
    )
    if model.bounds is not None:
        west, south, east, north = model.bounds
        m.fit_bounds([[south, west], [north, east]], padding=(30, 30))
    if not offline:
        assert tiles is not None
        attribution = None if "{" not in tiles else f"Tiles: {tiles.split('/')[2]}"
        folium.TileLayer(tiles, name="Tiles", attr=attribution, max_zoom=19).add_to(m)
    folium.GeoJson(model.outlines, name="Outlines (geodata)", interactive=False, show=True).add_to(
        m
    )

    timed: list[Any] = []
    for kind, collection in model.zones.items():
        layer = folium.GeoJson(collection, name=f"Zones: {kind.value}", on_each_feature=_BIND_POPUP)
        layer.add_to(m)
        timed.append(layer)

    for name, collection in model.layers.items():
        if name == "places":
            folium.GeoJson(
                collection,
                name="Places (both names)",
                on_each_feature=_PLACE_LABEL,
                marker=folium.Marker(icon=folium.DivIcon(class_name="truce-place")),
            ).add_to(m)
            continue
        title_of = {"line_of_contact": "Line of contact", "observation_posts": "Observation posts"}
        layer = folium.GeoJson(
            collection,
            name=title_of.get(name, name.replace("_", " ").capitalize()),
            on_each_feature=_BIND_POPUP,
            marker=folium.CircleMarker(radius=6) if name == "observation_posts" else None,
        )
        layer.add_to(m)
        timed.append(layer)

    counts = model.counts
    groups: dict[str, Any] = {
        "reports": _cluster("Reports", "truce-cluster-plain"),
        "violations": folium.FeatureGroup(name="Violations")
        if counts["violations"] <= UNCLUSTERED_MAX
        else _cluster("Violations", "truce-cluster-violation"),
        "warnings": folium.FeatureGroup(name="Warnings (approaching)")
        if counts["warnings"] <= UNCLUSTERED_MAX
        else _cluster("Warnings (approaching)", "truce-cluster-warning"),
        "uncertainty": folium.FeatureGroup(name="Uncertainty (possible)"),
        "tracks": folium.FeatureGroup(name="Tracks"),
    }
    for layer in groups.values():
        layer.add_to(m)
    _TruceLayers(
        groups,
        timed,
        payload(model),
        {
            "title": title,
            "offline": offline,
            "query": _describe(model.query),
            "source": source,
        },
    ).add_to(m)

    folium.plugins.Fullscreen(position="topleft").add_to(m)  # type: ignore[no-untyped-call]
    folium.plugins.MeasureControl(  # type: ignore[no-untyped-call]
        position="topleft",
        primary_length_unit="kilometers",
        secondary_length_unit="meters",
        primary_area_unit="sqkilometers",
        secondary_area_unit="hectares",
    ).add_to(m)
    _Legend(legend_html(model)).add_to(m)  # under the buttons on the left
    minimap_options: dict[str, Any] = {
        "position": "bottomright",
        "toggle_display": True,
        "zoom_level_offset": -4,
        "width": 140,
        "height": 140,
    }
    if offline:
        _OutlineMiniMap(model.outlines, **minimap_options).add_to(m)
    else:
        folium.plugins.MiniMap(  # type: ignore[no-untyped-call]
            tile_layer=folium.TileLayer(tiles, attr="tiles"), **minimap_options
        ).add_to(m)
    folium.plugins.MousePosition(  # type: ignore[no-untyped-call]
        position="bottomright",
        separator=" · ",
        prefix="lon, lat:",
        lng_first=True,
        num_digits=5,
        empty_string="",
    ).add_to(m)
    folium.LayerControl(position="topright", collapsed=True).add_to(m)
    return m


def _describe(query: MapQuery) -> dict[str, str | None]:
    return {
        "at": None if query.at is None else query.at.isoformat(),
        "since": None if query.since is None else query.since.isoformat(),
        "until": None if query.until is None else query.until.isoformat(),
        "zone": query.zone,
        "party": query.party,
    }


def map_html(
    model: MapModel,
    *,
    tiles: str | None = None,
    static_url: str = "/static",
    inline: bool = False,
    title: str = "Truce map",
    source: dict[str, Any] | None = None,
) -> str:
    """The whole HTML page of the map.

    With `inline`, every script, style sheet and image is in the page itself (a standalone file
    that opens with no network); otherwise they are linked under `static_url`. Raises
    `app.assets.MissingAssets` when inlining and the assets are not installed, and
    `app.assets.UnknownAsset` if an element links a file with no local copy.
    """
    m = build_map(model, tiles=tiles, title=title, source=source)
    figure = branca.element.Figure(title=title)
    # No favicon request (it would be the page's only 404).
    figure.header.add_child(branca.element.Element('<link rel="icon" href="data:,">'), name="icon")
    figure.add_child(m)
    assets.localize(figure, static_url)
    page: str = figure.render()
    if inline:
        page = assets.inline_assets(page, static_url)
        # The file itself forbids loads from anywhere (but the tile server, if one is named).
        # No eval either: leaflet-measure's templates come precompiled (app.assets).
        images = "data:" if is_offline(tiles) else "data: https: http:"
        policy = (
            "default-src 'none'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; "
            f"img-src {images}; font-src data:"
        )
        page = page.replace(
            "<head>", f'<head>\n<meta http-equiv="Content-Security-Policy" content="{policy}">', 1
        )
    return page


def write_map_html(
    path: str | Path,
    data: MapData,
    query: MapQuery | None = None,
    *,
    tiles: str | None = None,
    title: str = "Truce map",
    now: datetime | None = None,
) -> Path:
    """Write the map as one standalone HTML file (assets inline) and return its path.

    This is `truce map --out map.html`: the file opens in a browser with no network (unless
    `tiles` names a tile server). The season travels as compact typed columns
    (`app.mapview.embed`) that map.js cuts views from as it would fetch them from a server.
    """
    from app.mapview.embed import embedded_season
    from app.mapview.seasons import Season

    query = query or MapQuery()
    target = Path(path)
    season = Season.judge(data, MapQuery(party=query.party, zone=query.zone), "file")
    page = map_html(
        season.page_model(query, now=now),
        tiles=tiles,
        inline=True,
        title=title,
        source={"embedded": embedded_season(season), "available": _available(season, data)},
    )
    target.write_text(page, encoding="utf-8")
    return target


def _available(season: Any, data: MapData) -> dict[str, Any]:
    """What a filter can choose from, told when one matches nothing (as `/map` tells it)."""
    times = [r.observed_at for r in data.reports]
    if data.columns is not None and len(data.columns):
        first_s = int(data.columns.t_us.min() // 1_000_000)
        last_s = int(data.columns.t_us.max() // 1_000_000)
    elif times:
        first_s, last_s = int(min(times).timestamp()), int(max(times).timestamp())
    else:
        first_s = last_s = None  # type: ignore[assignment]
    return {
        "parties": [p.code for p in season.model.parties],
        "zones": sorted({z.id for z in data.zones}),
        "first": first_s,
        "last": last_s,
    }
