"""Cells of a table chunk: numbers and texts read column by column; a bad cell named by its row."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.io.problems import FileProblem, file_problem

Float = npt.NDArray[np.float64]


def plain_value(value: Any) -> Any:
    """A table cell as a JSON-like value: NaN and NaT to None, numpy scalars to Python."""
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(float(value)):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


class Interner:
    """Maps the values of many chunks to one shared object per distinct value (less memory)."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []

    def add(self, values: np.ndarray) -> npt.NDArray[np.int32]:
        """Codes of `values` in this interner, adding the values not seen yet."""
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        mapped = np.empty(len(uniques), dtype=np.int32)
        for j, value in enumerate(uniques.tolist()):
            key = None if is_missing(value) else value
            code = self.codes.get(key)
            if code is None:
                code = self.codes[key] = len(self.values)
                self.values.append(key)
            mapped[j] = code
        return mapped[codes]

    def take(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        """The values of the codes of every chunk, joined, as one object array."""
        table = np.empty(len(self.values), dtype=object)
        table[:] = self.values
        joined = np.concatenate(codes) if codes else np.empty(0, np.int32)
        return np.asarray(table[joined], dtype=object)


def is_missing(value: Any) -> bool:
    """Whether a cell is empty: None, NaN or pandas NA."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def shown(value: Any) -> str:
    """A cell value quoted for a message, cut to 40 characters."""
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


class Chunk:
    """One chunk of a table being validated; errors name `where(i)` for its row `i`."""

    def __init__(self, path: Path, frame: pd.DataFrame, where: Callable[[int], str]) -> None:
        self.path = path
        self.frame = frame
        self.where = where

    def fail(self, i: int, message: str, field: str | None = None) -> FileProblem:
        """The `FileProblem` for row `i` of this chunk, or its `field` (raise it)."""
        text = message if field is None else f"{field} {message}"
        return file_problem(self.path, text, self.where(i))

    def numbers(self, column: str, *, empty: float | None = None) -> Float:
        """A numeric column as float64; text, NaN or (without `empty`) blanks are refused."""
        series = self.frame[column]
        missing = series.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype
        ):
            values = series.to_numpy(np.float64, na_value=np.nan)
        else:
            text = series.astype(object).where(~missing, None)
            stripped = pd.Series(
                [None if v is None else str(v).strip() for v in text.tolist()], dtype=object
            )
            values = pd.to_numeric(stripped, errors="coerce").to_numpy(np.float64)
            blank = stripped.isna().to_numpy() | (stripped == "").to_numpy()
            missing = missing | blank
            bad = np.flatnonzero(np.isnan(values) & ~missing)
            if len(bad):
                i = int(bad[0])
                raise self.fail(i, f"column {column!r}: {shown(text.iloc[i])} is not a number")
        if missing.any():
            if empty is None:
                raise self.fail(int(np.flatnonzero(missing)[0]), f"column {column!r} is empty")
            values = np.where(missing, empty, values)
        infinite = np.flatnonzero(~np.isfinite(values))
        if len(infinite):
            i = int(infinite[0])
            raise self.fail(i, f"column {column!r}: {values[i]} is not a finite number")
        return values

    def texts(
        self, column: str | None, *, required: bool = False, exact: bool = False
    ) -> np.ndarray:
        """A text column as an object array of str, None for blanks.

        Values are stripped of surrounding spaces, distinct value by distinct value (so a column
        of a few parties costs one hash pass); `exact` keeps them as they are, which is cheaper
        for columns of unique values (ids, notes).
        """
        n = len(self.frame)
        if column is None:
            return np.full(n, None, dtype=object)
        series = self.frame[column]
        if exact:
            missing = series.isna().to_numpy()
            out = np.asarray(series.astype(object).to_numpy(), dtype=object)
            if missing.any():
                out = out.copy()
                out[missing] = None
        else:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            cleaned = np.empty(len(uniques) + 1, dtype=object)
            cleaned[:-1] = [str(v).strip() or None for v in np.asarray(uniques, dtype=object)]
            cleaned[-1] = None  # code -1: missing
            out = cleaned[codes]
        if required:
            blank = np.flatnonzero(pd.isna(out))
            if len(blank):
                raise self.fail(int(blank[0]), f"column {column!r} is empty")
        return out
