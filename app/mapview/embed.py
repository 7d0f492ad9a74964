"""A judged season as compact columns for a standalone file: typed arrays in base64 (lon/lat as
float32, codes as int8/int16/int32) that `app/static/truce/season.js` decodes and cuts views
from, as `/map/data/…` does on a server.

At 1e5 reports this is a few MB (ids of a prefix and a number as int32, others as text), against
~14 MB of the old inline payload; and the browser builds markers only for the reports in view.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import numpy as np
import pandas as pd

from app.domain import ReportKind
from app.engine import VERDICTS
from app.mapview.payload import payload
from app.mapview.seasons import Season
from app.precision import round_depth


def _b64(values: np.ndarray, dtype: str) -> dict[str, str]:
    """A typed array: its JavaScript type and its little-endian bytes in base64."""
    array = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    names = {"<f4": "Float32Array", "<f8": "Float64Array", "<i4": "Int32Array",
             "<i2": "Int16Array", "|i1": "Int8Array", "<i1": "Int8Array"}  # fmt: skip
    return {"type": names[array.dtype.str], "b64": base64.b64encode(array.tobytes()).decode()}


def _ids(ids: pd.Series) -> dict[str, Any]:
    """Report ids, compactly when they allow it: generated ids are often a shared prefix and a
    number ("s1", "s2", ...), then the prefix and the numbers as int32 (4 bytes an id instead
    of ~12 of JSON text: a third of the file at 1e6 reports). Other ids stay a list of text."""
    text = ids.astype(str)
    if len(text):
        prefix = os.path.commonprefix(text.tolist()).rstrip("0123456789")
        rest = text.str.slice(len(prefix))
        # Canonical decimals only (no leading zero, no sign): the number gives the id back.
        if rest.str.fullmatch(r"0|[1-9][0-9]{0,8}").all():
            return {"prefix": prefix, "number": _b64(rest.to_numpy(np.int64), "<i4")}
    return {"text": text.tolist()}


def _codes(values: pd.Series, categories: list[Any]) -> np.ndarray:
    return pd.Categorical(values, categories=list(dict.fromkeys(categories))).codes.astype(np.int32)


def embedded_season(season: Season) -> dict[str, Any]:
    """The season's reports, findings, tracks and events as typed columns (see module doc)."""
    m = season.model
    r = m.reports
    n = len(r)
    meta = payload(season.sub_model(np.empty(0, np.int64)))
    parties = [p.code for p in m.parties]
    kinds = [k.value for k in ReportKind]
    confidences = ["low", "medium", "high"]
    f = m.findings
    zone_labels: list[str] = []
    zone_codes = np.empty(0, np.int64)
    if len(f):
        label = f["zone_name"].astype(str) + " [" + f["zone_id"].astype(str) + " v"
        label = label + f["zone_version"].astype(str) + "]"
        zone_codes, uniques = pd.factorize(label)
        zone_labels = [str(u) for u in uniques]
    report_of_finding = f["report"].to_numpy(np.int64)
    finding_u = f["uncertainty_m"].to_numpy(np.float64)
    # Units sorted as `payload` sorts them: a track's `unit` indexes this list (a report's unit
    # is its track's, so no column of its own).
    units = pd.factorize(r["unit"], sort=True)[1]
    # One track per (party, unit), with its per-zone summary, as the page's payload has them.
    whole = payload(season.sub_model(np.arange(n)))
    track_of = np.full(n, -1, np.int32)
    for k, track in enumerate(whole["tracks"]):
        track_of[np.asarray(track["rows"], np.int64)] = k
    events = whole["events"]
    t0 = int(season.t[0]) if n else 0
    return {
        "n": n,
        "t0": t0,
        "parties": meta["parties"],
        "kinds": kinds,
        "sources": m.sources,
        "dashes": meta["dashes"],
        "confidences": confidences,
        "units": [str(u) for u in units],
        "zones": zone_labels,
        "verdicts": [str(v) for v in VERDICTS],
        "ids": _ids(r["id"]),
        "reports": {
            # Seconds after t0: int32 holds 68 years of them.
            "t": _b64(season.t - t0, "<i4"),
            "lon": _b64(season.lon, "<f4"),
            "lat": _b64(season.lat, "<f4"),
            "party": _b64(_codes(r["party"], parties), "<i2"),
            "kind": _b64(_codes(r["kind"], kinds), "<i1"),
            "source": _b64(_codes(r["source"], m.sources), "<i2"),
            "conf": _b64(_codes(r["confidence"], confidences), "<i1"),
            "u": _b64(r["uncertainty_m"].to_numpy(np.float64), "<f4"),
            "status": _b64(season.status, "<i1"),
            "possible": _b64(season.possible, "<i1"),
            "certain": _b64(season.certain, "<i1"),
            "track": _b64(track_of, "<i4"),
        },
        "findings": {
            "offsets": _b64(np.searchsorted(report_of_finding, np.arange(n + 1)), "<i4"),
            "zone": _b64(np.asarray(zone_codes), "<i4"),
            "verdict": _b64(_codes(f["verdict"], [str(v) for v in VERDICTS]), "<i1"),
            "depth": _b64(round_depth(f["depth_m"].to_numpy(np.float64), finding_u), "<f4"),
            "u": _b64(np.round(finding_u, 1), "<f4"),
            "violation": _b64(f["violation"].to_numpy(bool), "<i1"),
        },
        "tracks": [
            {"party": t["party"], "unit": t["unit"], "summary": t["summary"]}
            for t in whole["tracks"]
        ],
        "events": {
            "t": np.asarray(events["t"], np.int64),
            "report": np.asarray(events["report"], np.int64),
            "kind": np.asarray(events["kind"], np.int8),
            "zone": events["zone"],
            "track": events["track"],
        },
    }
