"""The front door and the API docs in a real headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright): `/`, `/docs` and `/redoc` load from a real server with no console error
and no request to any host but 127.0.0.1 (their scripts come from /static/vendor)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import Server, running_server
from tests.map.browser import CHROMIUM, REPORT_CSP_VIOLATIONS, Watched

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed: run `make browser`",
    ),
    pytest.mark.map_assets,
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("front")
    with running_server(
        directory / "truce.sqlite", directory / "uvicorn.log", env={"TRUCE_PUBLIC_READ": "true"}
    ) as server:
        yield server


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    seen = Watched(page)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: seen.requests.append(r.url))
    # Anything off the machine is cut, so a page that needs the internet cannot pass.
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else route.abort()
        ),
    )
    yield seen
    context.close()


def test_the_landing_page_opens_in_a_browser(watched: Watched, front: Server) -> None:
    page = watched.page
    page.goto(front.url + "/", wait_until="load")
    assert page.title() == "Truce"
    assert page.locator("a[href='/map']").count() >= 1
    assert page.locator("a[href='/docs']").count() == 1
    assert "13 reports" in page.inner_text("body")
    page.wait_for_timeout(200)
    assert watched.errors == []
    assert watched.foreign_requests({"127.0.0.1"}) == []


def test_swagger_ui_renders_offline(watched: Watched, front: Server) -> None:
    page = watched.page
    page.goto(front.url + "/docs", wait_until="load")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "Truce" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector("#operations-ogc-getFeatures", timeout=30_000)
    page.wait_for_timeout(300)
    assert watched.errors == []
    assert watched.foreign_requests({"127.0.0.1"}) == []
    assert any("/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in u for u in watched.requests)


def test_redoc_renders_offline(watched: Watched, front: Server) -> None:
    page = watched.page
    page.goto(front.url + "/redoc", wait_until="load")
    page.wait_for_selector("h1", timeout=30_000)
    page.wait_for_function(
        "() => document.body.innerText.includes('getFeatures') || "
        "document.body.innerText.includes('A page of a collection')",
        timeout=30_000,
    )
    page.wait_for_timeout(300)
    assert watched.errors == []
    assert watched.foreign_requests({"127.0.0.1"}) == []
    assert any("/static/vendor/redoc/bundles/redoc.standalone.js" in u for u in watched.requests)
