"""Times: ISO 8601 (or ACLED dates) to UTC nanoseconds, column by column, and back to ISO text."""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.io.cells import Chunk, shown
from app.io.options import ReadOptions
from app.limits import MAX_US, MIN_US, NS_PER_US, time_problem

_OFFSET = r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"


def parse_times(chunk: Chunk, column: str | None, options: ReadOptions) -> npt.NDArray[np.int64]:
    """A time column as UTC nanoseconds: ISO 8601 with an offset (or `options.timezone`)."""
    n = len(chunk.frame)
    default = options.default_observed_at
    default_ns = None if default is None else int(pd.Timestamp(default).as_unit("ns").value)
    if column is None:
        if default_ns is None:  # csv_plan refused this already
            raise chunk.fail(0, "no time column")
        return np.full(n, default_ns, dtype=np.int64)
    series = chunk.frame[column]
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        stamps = pd.DatetimeIndex(series)
        return _time_ns(
            chunk, stamps.tz_convert("UTC"), np.asarray(stamps.isna()), column, default_ns
        )
    missing = series.isna().to_numpy()
    parsed = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
    failed = parsed.isna().to_numpy() & ~missing
    cleaned = series
    if failed.any():  # spaces around the time, or blanks, or not a time at all
        cleaned = series.astype(object).copy()
        cleaned[failed] = [str(v).strip() or None for v in cleaned[failed].tolist()]
        missing = missing | cleaned.isna().to_numpy()
        parsed = parsed.copy()
        parsed[failed] = pd.to_datetime(
            cleaned[failed], utc=True, format="ISO8601", errors="coerce"
        )
    bad = np.flatnonzero(parsed.isna().to_numpy() & ~missing)
    if len(bad):
        i = int(bad[0])
        raise chunk.fail(
            i,
            f"column {column!r}: {shown(cleaned.iloc[i])} is not an ISO 8601 date-time "
            "such as 2022-03-24T06:00:00+04:00",
        )
    naive = _naive_times(cleaned, missing)
    if naive.any():
        if options.timezone is None:
            i = int(np.flatnonzero(naive)[0])
            raise chunk.fail(
                i,
                f"column {column!r}: {shown(cleaned.iloc[i])} has no UTC offset; add one "
                "(Z, +04:00) or say the zone of such times with --timezone",
            )
        local = pd.to_datetime(cleaned[naive], format="ISO8601", errors="coerce")
        try:
            localized = local.dt.tz_localize(_tz(options.timezone), ambiguous="raise")
        except Exception as exc:
            raise chunk.fail(int(np.flatnonzero(naive)[0]), f"column {column!r}: {exc}") from None
        parsed = parsed.copy()
        parsed[naive] = localized.dt.tz_convert("UTC")
    return _time_ns(chunk, pd.DatetimeIndex(parsed), missing, column, default_ns)


def _naive_times(cleaned: pd.Series, missing: np.ndarray) -> np.ndarray:
    """Which present times carry no UTC offset.

    Parsing without `utc=True` tells at C speed when the column is uniform (all with an offset,
    or all without); only a column that mixes them is searched with a regular expression.
    """
    try:
        uniform = pd.to_datetime(cleaned, format="ISO8601", errors="coerce")
    except ValueError:  # mixed offsets, or times with and without one
        has_offset = cleaned.fillna("Z").str.contains(_OFFSET, regex=True).to_numpy(bool)
        return np.asarray(~missing & ~has_offset)
    if isinstance(uniform.dtype, pd.DatetimeTZDtype):
        return np.zeros(len(cleaned), dtype=bool)
    return np.asarray(~missing)


def _tz(name: str) -> Any:
    match = re.fullmatch(r"([+-])(\d\d):?(\d\d)", name.strip())
    if match:
        sign = 1 if match[1] == "+" else -1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))
    return name


def _time_ns(
    chunk: Chunk,
    stamps: pd.DatetimeIndex,
    missing: np.ndarray,
    column: str,
    default_ns: int | None,
) -> npt.NDArray[np.int64]:
    if missing.any() and default_ns is None:
        i = int(np.flatnonzero(missing)[0])
        raise chunk.fail(i, f"column {column!r} is empty (give --at for reports without a time)")
    us = stamps.as_unit("us").asi8.copy()
    out_of_range = ~missing & ((us < MIN_US) | (us >= MAX_US))
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise chunk.fail(i, f"column {column!r}: {time_problem(stamps[i].to_pydatetime())}")
    ns = us * NS_PER_US
    if missing.any() and default_ns is not None:
        ns[missing] = default_ns
    return ns.astype(np.int64)


def acled_times(chunk: Chunk, column: str) -> npt.NDArray[np.int64]:
    """ACLED `event_date` (ISO or "24 March 2022") as midnight UTC of that day."""
    text = chunk.texts(column, required=True)
    series = pd.Series(text, dtype=object)
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce")
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(None)
    retry = parsed.isna().to_numpy()
    if retry.any():
        for fmt in ("%d %B %Y", "%d-%B-%Y", "%d %b %Y", "%d/%m/%Y"):
            again = pd.to_datetime(series[retry], format=fmt, errors="coerce")
            parsed[retry] = again
            retry = parsed.isna().to_numpy()
            if not retry.any():
                break
    if retry.any():
        i = int(np.flatnonzero(retry)[0])
        raise chunk.fail(
            i,
            f"column {column!r}: {shown(text[i])} is not a date "
            "such as 2022-03-24 or 24 March 2022",
        )
    days = pd.DatetimeIndex(parsed).normalize().tz_localize("UTC")
    return _time_ns(chunk, days, np.zeros(len(text), bool), column, None)
