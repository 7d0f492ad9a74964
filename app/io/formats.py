"""File formats: told by extension (`input_format`, `output_format`) and checked by content.

A missing or empty file is refused, and so is one whose content is not what its extension says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from app.io.problems import FileProblem, file_problem

InFormat = Literal["geojson", "gpkg", "shp", "fgb", "csv"]


OutFormat = Literal["geojson", "csv", "gpkg"]


OUT_FORMATS: tuple[OutFormat, ...] = ("geojson", "csv", "gpkg")


_IN_SUFFIXES: dict[str, InFormat] = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".shp": "shp",
    ".fgb": "fgb",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
}


_OUT_SUFFIXES: dict[str, OutFormat] = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".csv": "csv",
    ".gpkg": "gpkg",
}


_FORMAT_NAMES = {
    "geojson": "GeoJSON",
    "gpkg": "GeoPackage",
    "shp": "Shapefile",
    "fgb": "FlatGeobuf",
    "csv": "CSV",
}


def input_format(path: Path) -> InFormat:
    """The format of an input file, from its extension."""
    found = _IN_SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_IN_SUFFIXES))
        raise file_problem(
            path, f"unknown file type {path.suffix or '(no extension)'!r}; use {known}"
        )
    return found


def output_format(path: Path, fmt: str | None = None) -> OutFormat:
    """The format to write: `fmt` when given, else from the extension of `path`."""
    if fmt is not None:
        name = fmt.lower().lstrip(".")
        if name == "json":
            name = "geojson"
        for known in OUT_FORMATS:
            if name == known:
                return known
        raise FileProblem(f"unknown output format {fmt!r}; use one of {', '.join(OUT_FORMATS)}")
    found = _OUT_SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise file_problem(
            path,
            f"cannot tell the output format from {path.suffix or 'no extension'!r}; "
            "use .geojson, .csv or .gpkg, or give the format",
        )
    return found


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"SQLite format 3\x00", "a SQLite database (such as a GeoPackage)"),
    (b"fgb\x03", "a FlatGeobuf file"),
    (b"\x00\x00\x27\x0a", "a Shapefile"),
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx or .docx document)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document (.xls, .doc)"),
)


_EXPECTED_MAGIC: dict[str, bytes] = {
    "gpkg": b"SQLite format 3\x00",
    "fgb": b"fgb\x03",
    "shp": b"\x00\x00\x27\x0a",
}


def _looks_like(head: bytes) -> str:
    """What the first bytes of a file look like, for messages."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if b"\x00" in head:
        return "binary data"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:1] in (b"{", b"["):
        return "JSON text"
    return "text"


def sniff(path: Path, fmt: InFormat) -> bytes:
    """Refuse a missing or empty file, or one whose content is not what its extension says."""
    if not path.exists():
        raise file_problem(path, "no such file")
    if path.is_dir():
        raise file_problem(path, "is a directory, not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError as exc:
        raise file_problem(path, f"cannot be read: {exc.strerror or exc}") from None
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise file_problem(path, "the file is empty")
    what = _looks_like(head)
    name = _FORMAT_NAMES[fmt]
    magic = _EXPECTED_MAGIC.get(fmt)
    if magic is not None and not head.startswith(magic):
        raise file_problem(path, f"is not a {name} file: it looks like {what}")
    if fmt == "geojson" and what != "JSON text":
        raise file_problem(path, f"is not a GeoJSON file: it looks like {what}")
    if fmt == "csv" and what not in ("text", "JSON text"):
        raise file_problem(path, f"is not a CSV file: it looks like {what}")
    if fmt == "csv" and what == "JSON text":
        raise file_problem(path, "is not a CSV file: it looks like JSON text (name it .geojson?)")
    return head
