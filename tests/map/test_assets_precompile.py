"""leaflet-measure's templates, precompiled by `make assets` so that the map needs no eval."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from app import assets

NODE = shutil.which("node") or shutil.which("nodejs")
UNDERSCORE = assets.NODE_MODULES / "underscore" / "package.json"
needs_node = pytest.mark.skipif(
    NODE is None or not UNDERSCORE.is_file(),
    reason="Node.js and `npm ci`'s node_modules are needed: run `make assets`",
)

#: A bundle module in leaflet-measure's shape: underscore in module scope, templates compiled
#: where the module loads, from string literals with JSON escapes (as brfs writes them).
TEXTS = [
    '<a class="<%= model.className %>-toggle">\n<%= i18n.__("measure") %></a>',
    "<p><%- model.name %></p><% if (model.n > 1) { %><b><%= model.n %></b><% } %>",
]
BUNDLE = (
    "var _ = require('underscore');\n"
    + "".join(f"var t{i} = _.template({json.dumps(text)});\n" for i, text in enumerate(TEXTS))
    + "module.exports = [t0, t1];\n"
)


def fake_sources(texts: Sequence[str]) -> list[str]:
    return [f"function(obj){{return {json.dumps(text)};}}" for text in texts]


def test_each_template_call_becomes_the_compiled_function() -> None:
    seen: list[Sequence[str]] = []

    def compile_sources(texts: Sequence[str]) -> list[str]:
        seen.append(list(texts))
        return fake_sources(texts)

    out = assets.precompile_templates(BUNDLE, compile_sources)
    assert seen == [TEXTS]  # decoded from the literals: real newlines and quotes
    assert "_.template" not in out
    for source in fake_sources(TEXTS):
        assert f"= ({source});" in out
    assert out.startswith("var _ = require('underscore');\n")


@pytest.mark.parametrize(
    "js",
    [
        "var t = 1;\n",  # nothing to precompile: not leaflet-measure's script as we know it
        'var a = _.template("<p></p>");\nvar b = _.template(text);\n',  # one is not a literal
        'var a = _.template("<p></p>");\nvar b = _.template ("<p></p>" + x);\n',
        'var a = _.template("<p>\\\'</p>");\n',  # not a JSON string
    ],
)
def test_a_script_that_would_still_compile_a_template_is_refused(js: str) -> None:
    with pytest.raises(assets.PrecompileError):
        assets.precompile_templates(js, fake_sources)


#: Runs a precompiled bundle in a context where eval and `new Function` throw, and renders each
#: case with it and with underscore's own run-time compiler (in the main context, eval allowed).
RENDER_BOTH = """
const [underscorePath, bundlePath, textsJson] = process.argv.slice(1);
const fs = require("fs");
const vm = require("vm");
const _ = require(underscorePath);
const texts = JSON.parse(textsJson);
const i18n = { __: (key) => `[${key}]` };
const cases = [
  [0, { model: { className: "m" }, i18n }],
  [1, { model: { name: "<b>&'\\"", n: 2 } }],
  [1, { model: { name: "x", n: 1 } }],
];
const module = { exports: null };
const context = vm.createContext(
  { require: () => _, module },
  { codeGeneration: { strings: false } },
);
vm.runInContext(fs.readFileSync(bundlePath, "utf8"), context);
let evalInContext;
try { vm.runInContext("new Function('return 1')()", context); evalInContext = "ran"; }
catch (e) { evalInContext = e.name; }
process.stdout.write(JSON.stringify({
  evalInContext,
  expected: cases.map(([i, data]) => _.template(texts[i])(data)),
  actual: cases.map(([i, data]) => module.exports[i](data)),
}));
"""


@needs_node
def test_precompiled_templates_render_as_underscore_renders_them(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.js"
    bundle.write_text(assets.precompile_templates(BUNDLE), encoding="utf-8")
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", RENDER_BOTH, str(UNDERSCORE.parent), str(bundle), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["evalInContext"] == "EvalError"  # the bundle really ran with eval refused
    assert result["actual"] == result["expected"]
    assert result["actual"] == [
        '<a class="m-toggle">\n[measure]</a>',
        "<p>&lt;b&gt;&amp;&#x27;&quot;</p><b>2</b>",
        "<p>x</p>",
    ]


@needs_node
def test_install_writes_leaflet_measure_with_no_template_compiler_call(tmp_path: Path) -> None:
    written = assets.install_assets(assets.NODE_MODULES, tmp_path)
    measure = tmp_path / str(assets.LEAFLET_MEASURE_JS.npm_path)
    assert measure in written
    original = (assets.NODE_MODULES / str(assets.LEAFLET_MEASURE_JS.npm_path)).read_text()
    installed = measure.read_text(encoding="utf-8")
    assert original.count("_.template(") == 5  # the control, its results, three popups
    assert "_.template(" not in installed
    # The five compiled bodies (underscore's compilers, bundled twice, hold the text already).
    assert installed.count("with(obj||{}){") - original.count("with(obj||{}){") == 5
    # Every other file is copied as it is.
    leaflet = str(assets.LEAFLET_JS.npm_path)
    assert (tmp_path / leaflet).read_bytes() == (assets.NODE_MODULES / leaflet).read_bytes()


def test_a_copy_that_still_compiles_templates_counts_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "STATIC_DIR", tmp_path)
    for path in assets.required_files():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("/* */", encoding="utf-8")
    assert assets.missing_assets() == []
    stale = 'var t = _.template("<p><%= model.x %></p>");\n'
    assets.LEAFLET_MEASURE_JS.file.write_text(stale, encoding="utf-8")
    missing = assets.missing_assets()
    assert missing == [f"{assets.LEAFLET_MEASURE_JS.path} (templates not precompiled)"]
    assert assets.main(["--check"]) == 1


@pytest.mark.map_assets
def test_the_installed_leaflet_measure_compiles_no_template_when_it_loads() -> None:
    installed = assets.LEAFLET_MEASURE_JS.file.read_text(encoding="utf-8")
    assert "_.template(" not in installed and "with(obj||{}){" in installed
    assert not assets.uncompiled_templates()
