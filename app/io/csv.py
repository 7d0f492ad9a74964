"""Reports from a CSV, read in chunks of `CHUNK_ROWS` and validated column by column."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyproj import Transformer

import app.io
from app.batch import ReportBatch
from app.errors import TruceError
from app.io.acled import party_mapper
from app.io.cells import Chunk
from app.io.chunks import ChunkColumns, assemble, validate_chunk
from app.io.columns import csv_header, csv_plan
from app.io.crs import is_wgs84, parse_crs
from app.io.options import ProgressFn, ReadOptions
from app.io.problems import file_problem

#: Rows per CSV chunk: large enough for numpy to pay off, small enough to show progress.
CHUNK_ROWS = 200_000


def _rows_of(frame: pd.DataFrame) -> np.ndarray:
    """Spreadsheet row numbers of a CSV chunk: the header is row 1."""
    return np.asarray(frame.index, dtype=np.int64) + 2


def read_csv_reports(path: Path, options: ReadOptions, progress: ProgressFn) -> ReportBatch:
    """Reports from a CSV (or ACLED export), read and validated chunk by chunk."""
    delimiter, header = csv_header(path)
    plan = csv_plan(path, header, options)
    transformer = None
    if options.crs is not None:
        crs = parse_crs(options.crs, path)
        if not is_wgs84(crs):
            transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    text_columns = [
        c
        for c in (plan.party, plan.time, plan.id, plan.unit, plan.kind, plan.source)
        + (plan.confidence, plan.notes)
        if c is not None
    ]
    dtypes: dict[str, Any] = {c: str for c in text_columns}
    for name in plan.extra:
        if name not in plan.numeric_extra:
            dtypes.setdefault(name, str)
    size = path.stat().st_size
    step = f"reading {path.name}"
    out = ChunkColumns()
    unmapped: dict[str, int] = {}
    party_of = party_mapper(options.party_map)
    progress(step, 0, size)
    try:
        with path.open("rb") as handle:
            reader = pd.read_csv(
                handle,
                sep=delimiter,
                usecols=plan.columns(),
                dtype=dtypes,
                chunksize=app.io.CHUNK_ROWS,  # through the package, where tests set it
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
            for frame in reader:
                rows = _rows_of(frame)
                blank = frame.isna().all(axis=1).to_numpy()
                if blank.any():
                    frame, rows = frame[~blank], rows[~blank]
                    frame = frame.reset_index(drop=True)
                if len(frame):
                    chunk = Chunk(path, frame, _row_label(rows))
                    validate_chunk(chunk, plan, options, out, transformer, party_of, unmapped)
                    out.labels.append(rows)
                progress(step, handle.tell(), size)
    except UnicodeDecodeError as exc:
        raise file_problem(path, f"is not UTF-8 text (at byte {exc.start} of a block)") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise file_problem(path, f"cannot be read as CSV: {_parser_message(exc)}") from None
    except ValueError as exc:
        if isinstance(exc, TruceError):
            raise
        raise file_problem(path, f"cannot be read as CSV: {_parser_message(exc)}") from None
    progress(step, size, size)
    table = assemble(path, out, "row")
    if unmapped:
        listed = ", ".join(
            f"{actor!r} ({count})"
            for actor, count in sorted(unmapped.items(), key=lambda kv: -kv[1])[:8]
        )
        more = f" and {len(unmapped) - 8} more" if len(unmapped) > 8 else ""
        table.messages.append(
            f"{path.name}: {len(unmapped)} actor(s) not in the party map kept their name as party "
            f"(matched next through the registered parties' aliases): {listed}{more}; map them "
            "with --party-map 'ACTOR=CODE' or save aliases with `truce parties import-map`"
        )
    return table


def _row_label(rows: np.ndarray) -> Callable[[int], str]:
    def where(i: int) -> str:
        return f"row {rows[i]}"

    return where


def _parser_message(exc: BaseException) -> str:
    text = str(exc).strip()
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if match:
        return f"line {match[2]} has {match[3]} fields, the header has {match[1]}"
    return text.splitlines()[0] if text else type(exc).__name__
