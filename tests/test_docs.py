"""The project's documents live in the project: nothing cites a file a clone does not have.

Every tracked file is searched for citations of the design and scenario notes that were kept
outside the repository; every relative link of the Markdown pages must reach a file (and, with a
`#fragment`, a heading) that exists; and docs/api.md must list exactly the operations of the
OpenAPI document.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from app.api.main import create_app
from app.settings import Settings

REPO = Path(__file__).resolve().parents[1]

# Spelled in pieces so that this file does not cite them itself.
OUTSIDE_CITATIONS = ("DESIGN" + ".md", "FACTS" + ".md", "../" + "shared")

# Directories that a working copy may hold but the repository does not (when git is missing).
UNTRACKED_DIRS = {".git", ".venv", "node_modules", "data", "__pycache__", ".mypy_cache"}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
API_ROW = re.compile(r"^\| `(GET|POST|PUT|DELETE|PATCH) (/[^`]*)` \| [^|]+ \| `(\w+)` \|", re.M)


def tracked_files() -> list[Path]:
    """The repository's files: `git ls-files`, or the working tree without what git ignores."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout.decode("utf-8")
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        # An unpacked archive without git: walk the tree instead.
        names = [
            str(path.relative_to(REPO))
            for path in REPO.rglob("*")
            if path.is_file() and not UNTRACKED_DIRS & set(path.relative_to(REPO).parts)
        ]
    return [REPO / name for name in names if (REPO / name).is_file()]


def markdown_pages() -> list[Path]:
    """Every tracked Markdown page (README.md and docs/*.md among them)."""
    return sorted(path for path in tracked_files() if path.suffix == ".md")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of every heading of a Markdown page (outside code blocks)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {github_anchor(heading) for heading in HEADING.findall(text)}


def relative_links(page: Path) -> list[str]:
    """The link targets of a page that are neither absolute URLs nor mail addresses."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)
    ]


def test_the_checks_see_the_repository() -> None:
    # Guards the tests below against passing on an empty file list.
    files = {path.relative_to(REPO).as_posix() for path in tracked_files()}
    assert {"README.md", "docs/rule.md", "docs/api.md", "app/engine.py"} <= files
    pages = {path.relative_to(REPO).as_posix() for path in markdown_pages()}
    assert {"README.md", "docs/README.md", "docs/data-model.md"} <= pages


def test_no_file_cites_a_document_outside_the_repository() -> None:
    found = []
    for path in tracked_files():
        data = path.read_bytes()
        for number, line in enumerate(data.splitlines(), start=1):
            for citation in OUTSIDE_CITATIONS:
                if citation.encode() in line:
                    found.append(f"{path.relative_to(REPO)}:{number}: {citation}")
    assert not found, "cites a document that is not in the repository:\n" + "\n".join(found)


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_github_anchor_follows_githubs_rule() -> None:
    assert github_anchor("Versions and effective validity") == "versions-and-effective-validity"
    assert github_anchor("reports.geojson") == "reportsgeojson"
    assert github_anchor("`nk-pk-zone`: the zone") == "nk-pk-zone-the-zone"


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md#title) [gone](missing.md) [web](https://example.org)\n# Title\n")
    assert relative_links(page) == ["page.md#title", "missing.md"]
    assert anchors(page) == {"title"}


def test_the_api_guide_lists_exactly_the_openapi_operations() -> None:
    document = create_app(Settings(_env_file=None)).openapi()
    published = {
        (method.upper(), path, operation["operationId"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    guide = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    listed = {(m, p, op) for m, p, op in API_ROW.findall(guide)}
    assert listed == published, (
        f"in the OpenAPI document only: {sorted(published - listed)}; "
        f"in docs/api.md only: {sorted(listed - published)}"
    )
