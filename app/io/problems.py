"""The error of reading and writing files: `FileProblem`, naming the file, the row, the problem."""

from __future__ import annotations

from pathlib import Path

from app.errors import InvalidInput


class FileProblem(InvalidInput):
    """A file that cannot be read as asked: the message names the file, the row and the problem."""

    title = "Unreadable file"


def file_problem(path: Path, message: str, where: str | None = None) -> FileProblem:
    """The `FileProblem` "name.csv: row 7: message" (or "name.csv: message" without `where`)."""
    return FileProblem(f"{path.name}: {where}: {message}" if where else f"{path.name}: {message}")
