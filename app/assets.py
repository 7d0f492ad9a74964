"""The map's front-end assets: where they live, how a page links them, how a file inlines them.

The map must work with no internet at all, so nothing is ever fetched from a CDN:

- **Vendor assets** (Leaflet and the plugins that folium uses) come from the npm registry at
  set-up time: `make assets` runs ``npm ci`` on the repository's `package.json` and then
  ``python -m app.assets`` copies the few files the map needs (and the images their CSS points
  at) from `node_modules/` into `app/static/vendor/`. Neither directory is committed.
- **Our own assets** (`app/static/truce/map.js`, `map.css`) are committed.

A page served by the API links both under `/static/` (see `app.api.map.mount_static`); a
standalone file (`truce map --out`) carries them inline: scripts and style sheets as `<script>`
and `<style>`, the images their CSS refers to as `data:` URIs.

folium names a CDN URL for every JS/CSS resource of every element. `localize` replaces each one
with our copy, by the name folium gives the resource, and refuses a resource it has no copy of:
a new folium element that needs a new asset fails loudly instead of quietly reaching the internet.
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ASSETS",
    "NODE_MODULES",
    "OWN_ASSETS",
    "STATIC_DIR",
    "VENDOR_DIR",
    "Asset",
    "MissingAssets",
    "UnknownAsset",
    "external_references",
    "inline_assets",
    "install_assets",
    "localize",
    "missing_assets",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"


@dataclass(frozen=True, slots=True)
class Asset:
    """One JS or CSS file, by its path under `STATIC_DIR` ("vendor/leaflet/dist/leaflet.js")."""

    path: str
    kind: Literal["js", "css"]

    @property
    def file(self) -> Path:
        """Where the file is on disk."""
        return STATIC_DIR / self.path

    @property
    def npm_path(self) -> str | None:
        """Its path under `node_modules/` for a vendor asset ("leaflet/dist/leaflet.js")."""
        prefix = "vendor/"
        return self.path[len(prefix) :] if self.path.startswith(prefix) else None


def _js(path: str) -> Asset:
    return Asset(path, "js")


def _css(path: str) -> Asset:
    return Asset(path, "css")


LEAFLET_JS = _js("vendor/leaflet/dist/leaflet.js")
LEAFLET_CSS = _css("vendor/leaflet/dist/leaflet.css")

#: folium's resource names (the first item of each `default_js`/`default_css` pair) and the npm
#: file that replaces each. The versions in `package.json` are those that folium 0.20 links.
ASSETS: dict[str, Asset] = {
    # folium.Map
    "leaflet": LEAFLET_JS,
    "leaflet_css": LEAFLET_CSS,
    # folium.plugins.MarkerCluster
    "markerclusterjs": _js("vendor/leaflet.markercluster/dist/leaflet.markercluster.js"),
    "markerclustercss": _css("vendor/leaflet.markercluster/dist/MarkerCluster.css"),
    "markerclusterdefaultcss": _css("vendor/leaflet.markercluster/dist/MarkerCluster.Default.css"),
    # folium.plugins.Fullscreen
    "Control.Fullscreen.js": _js("vendor/leaflet.fullscreen/Control.FullScreen.js"),
    "Control.FullScreen.css": _css("vendor/leaflet.fullscreen/Control.FullScreen.css"),
    # folium.plugins.MeasureControl
    "leaflet_measure_js": _js("vendor/leaflet-measure/dist/leaflet-measure.js"),
    "leaflet_measure_css": _css("vendor/leaflet-measure/dist/leaflet-measure.css"),
    # folium.plugins.MiniMap
    "Control_MiniMap_js": _js("vendor/leaflet-minimap/dist/Control.MiniMap.min.js"),
    "Control_MiniMap_css": _css("vendor/leaflet-minimap/dist/Control.MiniMap.min.css"),
    # folium.plugins.MousePosition
    "Control_MousePosition_js": _js("vendor/leaflet-mouse-position/src/L.Control.MousePosition.js"),
    "Control_MousePosition_css": _css(
        "vendor/leaflet-mouse-position/src/L.Control.MousePosition.css"
    ),
}

#: Files that a script (not a style sheet) loads: Leaflet's default marker icon, which
#: leaflet-measure uses. Installed with the rest; inlined as data: URIs by `inline_assets`.
LEAFLET_ICONS = {
    "iconUrl": "vendor/leaflet/dist/images/marker-icon.png",
    "iconRetinaUrl": "vendor/leaflet/dist/images/marker-icon-2x.png",
    "shadowUrl": "vendor/leaflet/dist/images/marker-shadow.png",
}

#: Truce's own script and style sheet for the map (committed, under app/static/truce/).
OWN_ASSETS: dict[str, Asset] = {
    "truce_map_js": _js("truce/map.js"),
    "truce_map_css": _css("truce/map.css"),
}

#: folium.Map links these by default; the map uses none of them (no Bootstrap UI, no
#: awesome-markers icons, no glyph fonts), so `localize` drops them instead of copying ~1 MB.
UNUSED_MAP_DEFAULTS = frozenset(
    {
        "jquery",
        "bootstrap",
        "awesome_markers",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers_font_css",
        "awesome_markers_css",
        "awesome_rotate_css",
    }
)

_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""")
_SOURCE_MAP = re.compile(r"^\s*/[/*][#@] sourceMappingURL=.*$", re.MULTILINE)


class UnknownAsset(ValueError):
    """A folium element links a resource that Truce has no local copy of."""


class MissingAssets(RuntimeError):
    """The vendor assets are not installed (run `make assets`)."""

    def __init__(self, missing: Sequence[str]) -> None:
        """Name what is missing and how to install it."""
        self.missing = list(missing)
        super().__init__(
            f"map assets not installed ({len(self.missing)} missing, e.g. {self.missing[0]}): "
            "run `make assets` (npm ci, then python -m app.assets)"
        )


# --- where the files are ---------------------------------------------------------------------


def all_assets() -> list[Asset]:
    """Every asset a map page may link, vendor ones first."""
    return [*ASSETS.values(), *OWN_ASSETS.values()]


def _relative(target: str) -> str | None:
    """The file a CSS `url()` target names relative to the sheet, or None (data:, #, absolute)."""
    target = target.strip()
    if not target or target.startswith(("#", "/")) or ":" in target:
        return None
    return target.split("?", 1)[0].split("#", 1)[0]


def _css_references(css: str) -> Iterator[str]:
    """Relative `url(...)` targets of a style sheet, in order."""
    for match in _CSS_URL.finditer(css):
        relative = _relative(match.group(2))
        if relative is not None:
            yield relative


def required_files() -> list[str]:
    """Paths under `STATIC_DIR` that must exist: every asset and the images its CSS names.

    The images are known only once the CSS is there; for a missing CSS file only the file itself
    is listed.
    """
    paths: list[str] = []
    for asset in all_assets():
        paths.append(asset.path)
        if asset.kind == "css" and asset.file.is_file():
            base = Path(asset.path).parent
            css = asset.file.read_text(encoding="utf-8")
            paths.extend(str(base / ref) for ref in _css_references(css))
    paths.extend(LEAFLET_ICONS.values())
    return list(dict.fromkeys(paths))


def missing_assets() -> list[str]:
    """The paths under `STATIC_DIR` that the map needs and that are not there."""
    return [path for path in required_files() if not (STATIC_DIR / path).is_file()]


def install_assets(node_modules: Path = NODE_MODULES, dest: Path = VENDOR_DIR) -> list[Path]:
    """Copy the vendor assets (and the images their CSS uses) from `node_modules` to `dest`.

    Run after ``npm ci``; this is the only step that writes into the package. Returns the files
    written. Raises `MissingAssets` naming the npm files that are not in `node_modules`.
    """
    wanted: list[str] = []
    for asset in ASSETS.values():
        npm_path = asset.npm_path
        assert npm_path is not None
        wanted.append(npm_path)
        source = node_modules / npm_path
        if asset.kind == "css" and source.is_file():
            base = Path(npm_path).parent
            wanted.extend(
                str(base / ref) for ref in _css_references(source.read_text(encoding="utf-8"))
            )
    wanted.extend(path.removeprefix("vendor/") for path in LEAFLET_ICONS.values())
    wanted = list(dict.fromkeys(wanted))
    absent = [path for path in wanted if not (node_modules / path).is_file()]
    if absent:
        raise MissingAssets([f"node_modules/{path}" for path in absent])
    written = []
    for path in wanted:
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(node_modules / path, target)
        written.append(target)
    return written


# --- linking: folium elements -> local URLs ----------------------------------------------------


def _walk(element: Any) -> Iterator[Any]:
    yield element
    for child in getattr(element, "_children", {}).values():
        yield from _walk(child)


def _local(pairs: Sequence[tuple[str, str]], static_url: str) -> list[tuple[str, str]]:
    local = []
    for name, url in pairs:
        if name in UNUSED_MAP_DEFAULTS:
            continue
        asset = ASSETS.get(name) or OWN_ASSETS.get(name)
        if asset is None:
            raise UnknownAsset(
                f"no local copy of {name!r} ({url}); add it to app/assets.py and package.json"
            )
        local.append((name, f"{static_url}/{asset.path}"))
    return local


def localize(root: Any, static_url: str = "/static") -> None:
    """Point every JS/CSS link of `root` (a folium Map or Figure) and its children at our copies.

    Each element's `default_js`/`default_css` is replaced on the instance (folium keeps them on
    the class) by URLs under `static_url`. folium.Map's defaults that the map does not use are
    dropped. Raises `UnknownAsset` for a resource with no local copy.
    """
    static_url = static_url.rstrip("/")
    for element in _walk(root):
        for attribute in ("default_js", "default_css"):
            pairs = getattr(element, attribute, None)
            if pairs:
                setattr(element, attribute, _local(pairs, static_url))


# --- inlining: local URLs -> the files themselves ---------------------------------------------


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".svg":
        mime = "image/svg+xml"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _inline_css(asset_path: str) -> str:
    file = STATIC_DIR / asset_path
    css = file.read_text(encoding="utf-8")

    def replace(match: re.Match[str]) -> str:
        relative = _relative(match.group(2))
        if relative is None:
            return match.group(0)
        referenced = file.parent / relative
        if not referenced.is_file():
            raise MissingAssets([str(referenced.relative_to(STATIC_DIR))])
        return f'url("{_data_uri(referenced)}")'

    css = _SOURCE_MAP.sub("", _CSS_URL.sub(replace, css))
    return css.replace("</style", "<\\/style")


def _inline_js(asset_path: str) -> str:
    js = (STATIC_DIR / asset_path).read_text(encoding="utf-8")
    # A source map would only be fetched by developer tools; drop the comment all the same.
    js = _SOURCE_MAP.sub("", js)
    # "</script" would end the element early; in JS source "<\/script" means the same.
    return js.replace("</script", "<\\/script")


def inline_assets(html: str, static_url: str = "/static") -> str:
    """Replace the `<script src>` and stylesheet `<link>` tags under `static_url` by the files.

    For a page rendered after `localize(..., static_url)`. Raises `MissingAssets` when a linked
    file is not installed.
    """
    prefix = re.escape(static_url.rstrip("/") + "/")
    missing = missing_assets()
    if missing:
        raise MissingAssets(missing)

    def script(match: re.Match[str]) -> str:
        inline = f"<script>\n{_inline_js(match.group(1))}\n</script>"
        if match.group(1) == LEAFLET_JS.path:
            # Leaflet finds its default icon next to its CSS; inline, that CSS has no path.
            icons = {name: _data_uri(STATIC_DIR / path) for name, path in LEAFLET_ICONS.items()}
            inline += (
                f"\n<script>L.Icon.Default.mergeOptions({json.dumps(icons)});\n"
                "L.Icon.Default.prototype._getIconUrl = L.Icon.prototype._getIconUrl;</script>"
            )
        return inline

    def style(match: re.Match[str]) -> str:
        return f"<style>\n{_inline_css(match.group(1))}\n</style>"

    html = re.sub(rf'<script src="{prefix}([^"]+)"></script>', script, html)
    return re.sub(rf'<link rel="stylesheet" href="{prefix}([^"]+)"\s*/?>', style, html)


_EXTERNAL = re.compile(
    r"""(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])((?:https?:)?//[^"')\s>]+)""",
    re.IGNORECASE,
)


_SCRIPT_BODY = re.compile(r"(<script\b[^>]*>).*?(</script>)", re.IGNORECASE | re.DOTALL)


def external_references(html: str) -> list[str]:
    """URLs in a page that point at another host: `src`, `href`, CSS `url()` and `@import`.

    Links a user must click (`<a href>`) count too. The bodies of inline scripts are not
    searched: their strings (licence comments, Leaflet's attribution link) are not loads, and
    what a script fetches cannot be read off its text; a real browser with the network cut is
    the test for that (tests/map/test_map_browser.py).
    """
    markup = _SCRIPT_BODY.sub(lambda m: m.group(1) + m.group(2), html)
    return sorted(set(_EXTERNAL.findall(markup)))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.assets``: copy the vendor assets out of node_modules, or check them."""
    parser = argparse.ArgumentParser(prog="python -m app.assets", description=main.__doc__)
    parser.add_argument("--from", dest="source", type=Path, default=NODE_MODULES)
    parser.add_argument("--to", dest="dest", type=Path, default=VENDOR_DIR)
    parser.add_argument("--check", action="store_true", help="only check that all are there")
    args = parser.parse_args(argv)
    try:
        if args.check:
            missing = missing_assets()
            if missing:
                raise MissingAssets(missing)
            print(f"map assets: all {len(required_files())} files in {STATIC_DIR}")
        else:
            written = install_assets(args.source, args.dest)
            print(f"map assets: {len(written)} files copied to {args.dest}")
    except MissingAssets as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
