"""`FileRows`: where in a file each report of a `ReportBatch` came from, for messages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from app.io.problems import FileProblem, file_problem


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class FileRows:
    """The `app.batch.Origin` of reports read from a file: its path and each report's row.

    `label` is "row" (CSV rows, numbered as a spreadsheet shows them), "feature" (features of a
    GDAL layer) or "features/" (GeoJSON, named by JSON pointer as the HTTP API does); `labels`
    holds the number of each report's row or feature.
    """

    path: Path
    label: str
    labels: np.ndarray

    def where(self, i: int) -> str:
        """Where report `i` is in its file: "row 7", "feature 3" or "features/3"."""
        if self.label == "features/":
            return f"features/{self.labels[i]}"
        return f"{self.label} {self.labels[i]}"

    def fail(self, i: int, message: str, field: str | None = None) -> FileProblem:
        """A `FileProblem` naming the file, the row (and the field) of report `i`."""
        text = message if field is None else f"{field} {message}"
        return file_problem(self.path, text, self.where(i))

    def default_ids(self, rows: np.ndarray) -> np.ndarray:
        """Ids for a file without an id column: "row-7", "feature-3"."""
        prefix = "row-" if self.label == "row" else "feature-"
        return np.array([f"{prefix}{n}" for n in self.labels[rows].tolist()], dtype=object)
