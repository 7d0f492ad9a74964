"""Driving the map in Debian's headless Chromium (Playwright): the browser, a watched page
(console errors, CSP breaches, every request), and waits for the map to settle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            # A loaded 2-core machine can take longer than Playwright's 30 s to start Chromium.
            executable_path=str(CHROMIUM),
            args=ARGS,
            timeout=120_000,
        )
        yield browser
        browser.close()


#: Runs before any script of the page: each breach of its Content-Security-Policy (a blocked
#: eval, script, style or load) becomes a console error that `watched` records.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
    console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


@dataclass
class Watched:
    """A page and what it did: console errors (with every breach of its CSP), uncaught
    exceptions, every request's URL."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [error for error in self.errors if error.startswith("CSP violation:")]

    def foreign_requests(self, allowed_hosts: set[str]) -> list[str]:
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob", "about", "file")
            and urlsplit(url).hostname not in allowed_hosts
        ]


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    seen = Watched(page)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: seen.requests.append(r.url))
    yield seen
    context.close()


def open_map(watched: Watched, url: str) -> Any:
    page = watched.page
    page.goto(url, wait_until="load")
    # Every wait_for_function predicate here is a function: Playwright polls a bare expression
    # with `eval` in the page, which the map's policy (no 'unsafe-eval') refuses.
    page.wait_for_function("() => window.truce !== undefined", timeout=20_000)
    settle(page)
    return page


def settle(page: Any) -> None:
    """Wait until the map has what its view and slider ask for (map.js fetches it by view)."""
    page.wait_for_function("() => window.truce.loading && !window.truce.loading()", timeout=20_000)


def count(page: Any, selector: str) -> int:
    n: int = page.locator(selector).count()
    return n


def report_elements(page: Any) -> int:
    """Report markers and clusters on the map (a cluster stands for several reports)."""
    return count(page, ".leaflet-marker-pane .truce-report") + count(
        page, ".leaflet-marker-pane .truce-cluster"
    )
