"""The map's front-end assets: where they live, how a page links them, how a file inlines them.

The map must work with no internet at all, so nothing is ever fetched from a CDN:

- **Vendor assets** (Leaflet and the plugins that folium uses) come from the npm registry at
  set-up time: `make assets` runs ``npm ci`` on the repository's `package.json` and then
  ``python -m app.assets`` copies the few files the map needs (and the images their CSS points
  at) from `node_modules/` into `app/static/vendor/`. Neither directory is committed.
- **No eval**: leaflet-measure compiles its underscore templates with `new Function` when it
  loads, which a Content-Security-Policy without 'unsafe-eval' forbids. The copy step therefore
  precompiles them: each ``_.template("...")`` call in its script is replaced by the function
  that underscore's own ``_.template(text).source`` gives (Node.js runs underscore, as installed
  by ``npm ci``), so the map's pages can forbid eval.
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
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ASSETS",
    "DOCS_FILES",
    "LEAFLET_MEASURE_JS",
    "NODE_MODULES",
    "OWN_ASSETS",
    "STATIC_DIR",
    "VENDOR_DIR",
    "Asset",
    "MissingAssets",
    "PrecompileError",
    "UnknownAsset",
    "external_references",
    "inline_assets",
    "install_assets",
    "localize",
    "missing_assets",
    "missing_docs_assets",
    "node_template_sources",
    "precompile_templates",
    "uncompiled_templates",
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
LEAFLET_MEASURE_JS = _js("vendor/leaflet-measure/dist/leaflet-measure.js")

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
    "leaflet_measure_js": LEAFLET_MEASURE_JS,
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

#: The API docs' assets (`/docs`, `/redoc`), from the npm registry like the map's: Swagger UI's
#: bundle, style sheet and icon, and ReDoc's standalone bundle. Copied as they are.
SWAGGER_JS = _js("vendor/swagger-ui-dist/swagger-ui-bundle.js")
SWAGGER_CSS = _css("vendor/swagger-ui-dist/swagger-ui.css")
SWAGGER_FAVICON = "vendor/swagger-ui-dist/favicon-32x32.png"
REDOC_JS = _js("vendor/redoc/bundles/redoc.standalone.js")
DOCS_FILES = (SWAGGER_JS.path, SWAGGER_CSS.path, SWAGGER_FAVICON, REDOC_JS.path)

#: Files that a script (not a style sheet) loads: Leaflet's default marker icon, which
#: leaflet-measure uses. Installed with the rest; inlined as data: URIs by `inline_assets`.
LEAFLET_ICONS = {
    "iconUrl": "vendor/leaflet/dist/images/marker-icon.png",
    "iconRetinaUrl": "vendor/leaflet/dist/images/marker-icon-2x.png",
    "shadowUrl": "vendor/leaflet/dist/images/marker-shadow.png",
}

#: Truce's own script and style sheet for the map (committed, under app/static/truce/).
OWN_ASSETS: dict[str, Asset] = {
    "truce_season_js": _js("truce/season.js"),
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


class PrecompileError(RuntimeError):
    """leaflet-measure's templates could not be precompiled (no Node.js, or an unknown script)."""


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
    """The paths under `STATIC_DIR` that the map needs and that are not there (or not as
    `make assets` writes them: a leaflet-measure whose templates are not precompiled)."""
    missing = [path for path in required_files() if not (STATIC_DIR / path).is_file()]
    if uncompiled_templates():
        missing.append(f"{LEAFLET_MEASURE_JS.path} (templates not precompiled)")
    return missing


def missing_docs_assets() -> list[str]:
    """The paths under `STATIC_DIR` that `/docs` and `/redoc` need and that are not there (or
    not as `make assets` writes them: a ReDoc that still loads its logo from the CDN)."""
    missing = [path for path in DOCS_FILES if not (STATIC_DIR / path).is_file()]
    if not missing and _names_cdn_logo(REDOC_JS.file, REDOC_JS.file.stat().st_mtime_ns):
        missing.append(f"{REDOC_JS.path} (still loads its logo from the CDN)")
    return missing


@lru_cache(maxsize=4)
def _names_cdn_logo(path: Path, mtime_ns: int) -> bool:
    return REDOC_LOGO_URL in path.read_text(encoding="utf-8")


def install_assets(node_modules: Path = NODE_MODULES, dest: Path = VENDOR_DIR) -> list[Path]:
    """Copy the vendor assets (and the images their CSS uses) from `node_modules` to `dest`.

    Run after ``npm ci``; this is the only step that writes into the package. leaflet-measure's
    script is written with its templates precompiled (see `precompile_templates`). Returns the
    files written. Raises `MissingAssets` naming the npm files that are not in `node_modules`,
    and `PrecompileError` when the templates cannot be precompiled.
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
    wanted.extend(path.removeprefix("vendor/") for path in DOCS_FILES)
    wanted = list(dict.fromkeys(wanted))
    absent = [path for path in wanted if not (node_modules / path).is_file()]
    if absent:
        raise MissingAssets([f"node_modules/{path}" for path in absent])
    written = []
    for path in wanted:
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        transform = _TRANSFORMS.get(path)
        if transform is None:
            shutil.copyfile(node_modules / path, target)
        else:
            text = (node_modules / path).read_text(encoding="utf-8")
            target.write_text(transform(text, node_modules), encoding="utf-8")
        written.append(target)
    return written


# --- precompiling: leaflet-measure without `new Function` ------------------------------------

#: A call of underscore's template compiler on a double-quoted string literal, as browserify's
#: brfs transform wrote them into leaflet-measure's bundle (JSON-style escapes).
_TEMPLATE_CALL = re.compile(r'_\.template\(("(?:[^"\\\n]|\\.)*")\)')
#: What must not be left once precompiled: any call of the compiler at all.
_ANY_TEMPLATE_CALL = re.compile(r"\b_\.template\s*\(")

#: Reads a JSON list of template texts on stdin, writes the list of their function sources.
_NODE_COMPILER = """
const _ = require(process.argv[1]);
const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((text) => _.template(text).source)));
"""


def node_template_sources(texts: Sequence[str], node_modules: Path = NODE_MODULES) -> list[str]:
    """Each text compiled by underscore's `_.template` (from `node_modules`), as function source.

    The source is what underscore would otherwise build at run time with `new Function`; its
    free names are the template's `obj` argument (read through `with`) and `_`, underscore.
    Raises `PrecompileError` when Node.js or underscore is not there or the compile fails.
    """
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise PrecompileError("Node.js is needed to precompile the map's templates (`make assets`)")
    underscore = node_modules / "underscore"
    if not (underscore / "package.json").is_file():
        raise PrecompileError(f"{underscore} is not installed: run `npm ci`")
    try:
        done = subprocess.run(
            [node, "-e", _NODE_COMPILER, str(underscore.resolve())],
            input=json.dumps(list(texts)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PrecompileError("Node.js took over 120 s to compile the templates") from exc
    if done.returncode != 0:
        raise PrecompileError(f"underscore could not compile the templates: {done.stderr.strip()}")
    sources = json.loads(done.stdout)
    if not isinstance(sources, list) or len(sources) != len(texts):
        raise PrecompileError("underscore answered with the wrong number of templates")
    return [str(source) for source in sources]


def precompile_templates(
    js: str, compile_sources: Callable[[Sequence[str]], list[str]] = node_template_sources
) -> str:
    """`js` with each ``_.template("...")`` call replaced by the compiled template function.

    underscore's `_.template(text)` returns a function of the template's data that calls the
    compiled body with underscore as `_`; the precompiled `function(obj){...}` takes the data
    alone and finds `_` in the bundle's module scope, where `_ = require('underscore')` (the
    module that calls `_.template`). Raises `PrecompileError` when the script has no such call
    or keeps one that is not a plain string literal: a new leaflet-measure must be looked at.
    """
    calls = list(_TEMPLATE_CALL.finditer(js))
    if not calls:
        raise PrecompileError('no `_.template("...")` call found in leaflet-measure\'s script')
    texts = []
    for call in calls:
        try:
            texts.append(json.loads(call.group(1)))
        except json.JSONDecodeError as exc:
            raise PrecompileError(f"a template literal is not a JSON string: {exc}") from exc
    sources = iter(compile_sources(texts))
    # Parenthesised, so the function is an expression wherever the call stood.
    result = _TEMPLATE_CALL.sub(lambda _call: f"({next(sources)})", js)
    if _ANY_TEMPLATE_CALL.search(result):
        raise PrecompileError("leaflet-measure still calls `_.template` on something else")
    return result


#: ReDoc's sidebar shows Redocly's logo from their CDN, whatever its options say: the copy
#: shows an empty inline image instead, so the docs load nothing from another host.
REDOC_LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_EMPTY_SVG = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


def offline_redoc(js: str) -> str:
    """ReDoc's bundle with the CDN logo replaced by an empty inline image."""
    return js.replace(REDOC_LOGO_URL, _EMPTY_SVG)


#: Vendor files rewritten on their way from node_modules (by npm path): leaflet-measure's
#: script, and ReDoc's bundle.
_TRANSFORMS: dict[str, Callable[[str, Path], str]] = {
    str(LEAFLET_MEASURE_JS.npm_path): lambda js, node_modules: precompile_templates(
        js, lambda texts: node_template_sources(texts, node_modules)
    ),
    str(REDOC_JS.npm_path): lambda js, _node_modules: offline_redoc(js),
}


@lru_cache(maxsize=8)
def _compiles_templates(path: Path, mtime_ns: int, size: int) -> bool:
    return _ANY_TEMPLATE_CALL.search(path.read_text(encoding="utf-8")) is not None


def uncompiled_templates() -> bool:
    """Whether the installed leaflet-measure still compiles templates when it loads (a copy made
    before precompiling existed); the map's CSP would then stop it. False when not installed."""
    file = LEAFLET_MEASURE_JS.file
    try:
        stat = file.stat()
    except FileNotFoundError:
        return False
    return _compiles_templates(file, stat.st_mtime_ns, stat.st_size)


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
    except (MissingAssets, PrecompileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
