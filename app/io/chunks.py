"""Validating reports chunk by chunk with numpy, never row by row, and joining the chunks.

The joined columns make a `ReportBatch` whose origin is the file's rows (`FileRows`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pyproj import Transformer

from app.batch import ReportBatch
from app.domain import Confidence, ReportKind
from app.io.acled import ACLED_KINDS, ACLED_UNCERTAINTY_M
from app.io.cells import Chunk, Interner, plain_value, shown
from app.io.columns import ColumnPlan
from app.io.options import ReadOptions
from app.io.rows import FileRows
from app.io.times import acled_times, parse_times
from app.limits import NS_PER_US, check_batch_limits

Float = npt.NDArray[np.float64]


_STRINGS = np.dtypes.StringDType(na_object=None)


def _positions(
    chunk: Chunk, plan: ColumnPlan, transformer: Transformer | None
) -> tuple[Float, Float]:
    lon = chunk.numbers(plan.lon)
    lat = chunk.numbers(plan.lat)
    if transformer is not None:
        lon, lat = (np.asarray(a, dtype=np.float64) for a in transformer.transform(lon, lat))
    check_positions(chunk, lon, lat, plan, projected_hint=transformer is None)
    return lon, lat


def check_positions(
    chunk: Chunk, lon: Float, lat: Float, plan: ColumnPlan | None, *, projected_hint: bool
) -> None:
    """Refuse the first position out of range, saying when lon and lat look swapped."""
    bad_lat = np.abs(lat) > 90.0
    bad_lon = np.abs(lon) > 180.0
    bad = np.flatnonzero(bad_lat | bad_lon)
    if not len(bad):
        return
    i = int(bad[0])
    x, y = float(lon[i]), float(lat[i])
    names = f" (columns {plan.lon!r}, {plan.lat!r})" if plan is not None else ""
    if bad_lat[i] and abs(y) <= 180.0 and abs(x) <= 90.0:
        raise chunk.fail(
            i,
            f"latitude {y:g} is out of range [-90, 90] but would be a longitude, and the "
            f"longitude {x:g} a latitude: the longitude and latitude look swapped{names}",
        )
    what = "latitude" if bad_lat[i] else "longitude"
    value, bound = (y, 90) if bad_lat[i] else (x, 180)
    hint = ""
    if projected_hint and (abs(x) > 1000.0 or abs(y) > 1000.0):
        hint = "; these look like projected coordinates: say their CRS with --crs, e.g. EPSG:32638"
    raise chunk.fail(i, f"{what} {value:g} is out of range [-{bound}, {bound}]{hint}")


def _enum_codes(
    chunk: Chunk, values: np.ndarray, column: str | None, allowed: Iterable[str]
) -> np.ndarray:
    """Lower-cased enum values; the first one not in `allowed` is refused."""
    allowed = list(allowed)
    lowered = np.array([None if v is None else v.lower() for v in values.tolist()], dtype=object)
    present = pd.notna(lowered)
    wrong = np.flatnonzero(present & ~np.isin(lowered, np.array(allowed, dtype=object)))
    if len(wrong):
        i = int(wrong[0])
        raise chunk.fail(
            i, f"column {column!r}: {shown(values[i])} is not one of {', '.join(allowed)}"
        )
    return lowered


@dataclasses.dataclass
class ChunkColumns:
    """Per-chunk validated columns, gathered before they are joined."""

    lon: list[Float] = dataclasses.field(default_factory=list)
    lat: list[Float] = dataclasses.field(default_factory=list)
    time: list[np.ndarray] = dataclasses.field(default_factory=list)
    uncertainty: list[Float] = dataclasses.field(default_factory=list)
    ids: list[np.ndarray] = dataclasses.field(default_factory=list)
    labels: list[np.ndarray] = dataclasses.field(default_factory=list)
    party: Interner = dataclasses.field(default_factory=Interner)
    party_codes: list[np.ndarray] = dataclasses.field(default_factory=list)
    small: dict[str, Interner] = dataclasses.field(default_factory=dict)
    small_codes: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    big: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)

    def add_small(self, name: str, values: np.ndarray) -> None:
        """Add a chunk of a column with few distinct values (interned)."""
        interner = self.small.setdefault(name, Interner())
        self.small_codes.setdefault(name, []).append(interner.add(values))

    def add_big(self, name: str, values: np.ndarray) -> None:
        """Add a chunk of a column with many distinct values (kept as is)."""
        self.big.setdefault(name, []).append(values)

    def small_column(self, name: str) -> np.ndarray | None:
        """The joined column `name` added by `add_small`, or None."""
        if name not in self.small:
            return None
        return self.small[name].take(self.small_codes[name])

    def big_column(self, name: str) -> np.ndarray | None:
        """The joined column `name` added by `add_big`, or None."""
        if name not in self.big:
            return None
        parts = self.big[name]
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def validate_chunk(
    chunk: Chunk,
    plan: ColumnPlan,
    options: ReadOptions,
    out: ChunkColumns,
    transformer: Transformer | None,
    party_of: Callable[[str], str | None],
    unmapped: dict[str, int],
    positions: tuple[Float, Float] | None = None,
) -> None:
    """Validate one chunk of reports by `plan` and add its columns to `out`."""
    lon, lat = positions if positions is not None else _positions(chunk, plan, transformer)
    party = chunk.texts(plan.party, required=True)
    if plan.acled:
        time = acled_times(chunk, str(plan.time))
        precision = chunk.numbers(str(plan.geo_precision))
        radius = np.full(len(precision), np.nan)
        for level, metres in ACLED_UNCERTAINTY_M.items():
            radius[precision == level] = metres
        wrong = np.flatnonzero(np.isnan(radius))
        if len(wrong):
            i = int(wrong[0])
            raise chunk.fail(
                i,
                f"column {plan.geo_precision!r}: {precision[i]:g} is not 1, 2 or 3 "
                "(ACLED geo_precision)",
            )
        uncertainty = radius
        codes, actors = pd.factorize(party)
        mapped: list[str] = []
        for actor in actors.tolist():
            code = party_of(actor)
            if code is None:
                unmapped[actor] = unmapped.get(actor, 0) + int(
                    np.count_nonzero(codes == len(mapped))
                )
                code = actor
            mapped.append(code)
        party = np.asarray(np.array(mapped, dtype=object)[codes], dtype=object)
        codes, subs = pd.factorize(chunk.texts(plan.kind), use_na_sentinel=True)
        kind_of = np.empty(len(subs) + 1, dtype=object)
        kind_of[:-1] = [ACLED_KINDS.get(str(s).lower(), ReportKind.OTHER).value for s in subs]
        kind_of[-1] = None
        kinds = kind_of[codes]
        out.add_small("kind", kinds)
    else:
        time = parse_times(chunk, plan.time, options)
        uncertainty = (
            np.zeros(len(lon))
            if plan.uncertainty is None
            else chunk.numbers(plan.uncertainty, empty=0.0)
        )
        negative = np.flatnonzero(uncertainty < 0)
        if len(negative):
            i = int(negative[0])
            raise chunk.fail(
                i, f"column {plan.uncertainty!r}: must be at least 0, got {uncertainty[i]:g}"
            )
        if plan.kind is not None:
            out.add_small(
                "kind",
                _enum_codes(
                    chunk, chunk.texts(plan.kind), plan.kind, (k.value for k in ReportKind)
                ),
            )
        if plan.confidence is not None:
            out.add_small(
                "confidence",
                _enum_codes(
                    chunk,
                    chunk.texts(plan.confidence),
                    plan.confidence,
                    (c.value for c in Confidence),
                ),
            )
        out.add_small("unit", chunk.texts(plan.unit))
    check_batch_limits(time // NS_PER_US, uncertainty, chunk.fail)
    out.lon.append(lon)
    out.lat.append(lat)
    out.time.append(time)
    out.uncertainty.append(uncertainty)
    out.party_codes.append(out.party.add(party))
    if plan.id is not None:
        ids = chunk.texts(plan.id, exact=True)
        if not options.content_ids:
            blank = np.flatnonzero(pd.isna(ids))
            if len(blank):
                raise chunk.fail(int(blank[0]), f"column {plan.id!r} is empty")
        # numpy's variable-width strings keep ids of up to 15 bytes inline, in 16 bytes each:
        # a quarter of what a million Python str objects take.
        out.ids.append(np.asarray(ids, dtype=_STRINGS))
    if plan.source is not None:
        out.add_small("source", chunk.texts(plan.source))
    if plan.notes is not None:
        out.add_big("notes", chunk.texts(plan.notes, exact=True))
    for name in plan.extra:
        if name in plan.numeric_extra:
            values = chunk.numbers(name, empty=np.nan)
            kept = np.array(
                [
                    None if math.isnan(v) else (int(v) if v.is_integer() else v)
                    for v in values.tolist()
                ],
                dtype=object,
            )
        else:
            kept = _extra_values(chunk.frame[name])
        out.add_big(f"extra:{name}", kept)


def _extra_values(series: pd.Series) -> np.ndarray:
    values = series.astype(object).tolist()
    return np.array([plain_value(v) for v in values], dtype=object)


def assemble(path: Path, out: ChunkColumns, label: str) -> ReportBatch:
    """The batch of every validated chunk, its rows labelled `label` ("row", "feature")."""

    def joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    extra: dict[str, np.ndarray] = {}
    for name in list(out.big):
        if name.startswith("extra:"):
            column = out.big_column(name)
            if column is not None:
                extra[name.removeprefix("extra:")] = column
    return ReportBatch(
        lon=joined(out.lon, np.float64),
        lat=joined(out.lat, np.float64),
        time_ns=joined(out.time, np.int64),
        uncertainty_m=joined(out.uncertainty, np.float64),
        party=out.party.take(out.party_codes),
        unit=_or_none_column(out.small_column("unit"), sum(len(a) for a in out.lon)),
        ids=joined(out.ids, _STRINGS) if out.ids else None,
        origin=FileRows(path, label, joined(out.labels, np.int64)),
        kind=out.small_column("kind"),
        source=out.small_column("source"),
        confidence=out.small_column("confidence"),
        notes=out.big_column("notes"),
        extra=extra,
    )


def _or_none_column(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, None, dtype=object) if values is None else values
