"""The compact columnar JSON that `app/static/truce/map.js` draws reports, findings and tracks
from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from app.domain import ReportKind
from app.engine import VERDICTS
from app.mapview.model import MapModel
from app.mapview.style import (
    CONFIDENCE_OPACITY,
    MARKER_SIZES,
    REPORT_SHAPES,
    SOURCE_DASHES,
    STATUS_NAMES,
    VIOLATION_COLOR,
    WARNING_COLOR,
    marker_svg,
)
from app.precision import round_depth

#: The slider's window choices, in seconds (0 = everything before the slider's time).
WINDOWS = (
    (0, "everything before"),
    (3600, "last hour"),
    (6 * 3600, "last 6 hours"),
    (86400, "last day"),
    (7 * 86400, "last 7 days"),
    (30 * 86400, "last 30 days"),
)


def _codes(values: pd.Series, categories: Sequence[object]) -> np.ndarray:
    """Index of each value in `categories` (-1 for missing or unknown)."""
    return pd.Categorical(values, categories=list(dict.fromkeys(categories))).codes.astype(np.int32)


def payload(model: MapModel) -> dict[str, Any]:
    """The columnar JSON that map.js draws reports, findings and tracks from."""
    r = model.reports
    n = len(r)
    parties = [p.code for p in model.parties]
    kinds = [k.value for k in ReportKind]
    confidences = ["low", "medium", "high"]
    unit_codes, units = pd.factorize(r["unit"], sort=True)
    notes = r["notes"].astype(object).where(r["notes"].notna(), None)

    f = model.findings
    finding_u = f["uncertainty_m"].to_numpy(np.float64)
    zone_labels, zone_codes = [], np.empty(0, np.int64)
    if len(f):
        label = f["zone_name"].astype(str) + " [" + f["zone_id"].astype(str) + " v"
        label = label + f["zone_version"].astype(str) + "]"
        zone_codes, uniques = pd.factorize(label)
        zone_labels = uniques.tolist()
    report_of_finding = f["report"].to_numpy(np.int64)

    tracks, track_index = _tracks(model, parties, list(units))
    events = model.events.sort_values("at", kind="stable")
    event_zone_names = _zone_names_from(model)
    return {
        "start": model.start,
        "end": model.end,
        "opening": model.opening,
        "steps": model.steps,
        "windows": [list(w) for w in WINDOWS],
        "parties": [{"code": p.code, "name": p.name, "color": p.color} for p in model.parties],
        "kinds": kinds,
        "shapes": [REPORT_SHAPES[ReportKind(k)] for k in kinds],
        "sources": model.sources,
        "dashes": [
            SOURCE_DASHES[min(i, len(SOURCE_DASHES) - 1)] for i in range(len(model.sources))
        ],
        "confidences": confidences,
        "opacity": [CONFIDENCE_OPACITY[c] for c in confidences] + [CONFIDENCE_OPACITY[None]],
        "units": [str(u) for u in units],
        "statuses": list(STATUS_NAMES),
        "templates": [
            marker_svg("__SHAPE__", "__FILL__", "__OPACITY__", "__DASH__", s) for s in range(4)
        ],
        "sizes": [MARKER_SIZES[s][0] for s in range(4)],
        "colors": {"violation": VIOLATION_COLOR, "warning": WARNING_COLOR},
        "reports": {
            "id": r["id"].astype(str).tolist(),
            "t": r["t"].to_numpy(np.int64),
            "lon": np.round(r["lon"].to_numpy(np.float64), 6),
            "lat": np.round(r["lat"].to_numpy(np.float64), 6),
            "party": _codes(r["party"], parties),
            "kind": _codes(r["kind"], kinds),
            "source": _codes(r["source"], model.sources),
            "conf": _codes(r["confidence"], confidences),
            "u": np.round(r["uncertainty_m"].to_numpy(np.float64), 1),
            "unit": unit_codes.astype(np.int32),
            "notes": notes.tolist() if notes.notna().any() else None,
            "status": r["status"].to_numpy(np.int8),
            "possible": r["possible"].to_numpy(bool).astype(np.int8),
            "certain": r["certain"].to_numpy(bool).astype(np.int8),
        },
        "zones": zone_labels,
        "verdicts": [str(v) for v in VERDICTS],
        "findings": {
            "offsets": np.searchsorted(report_of_finding, np.arange(n + 1)).astype(np.int64),
            "zone": np.asarray(zone_codes, np.int32),
            "verdict": _codes(f["verdict"], [str(v) for v in VERDICTS]),
            # Rounded to a step that fits the verdict's u (app/precision.py), with that u.
            "depth": round_depth(f["depth_m"].to_numpy(np.float64), finding_u),
            "u": np.round(finding_u, 1),
            "violation": f["violation"].to_numpy(bool).astype(np.int8),
        },
        "tracks": tracks,
        "events": {
            "t": (events["at"].astype("int64") // 10**9).to_numpy(np.int64)
            if len(events)
            else np.empty(0, np.int64),
            "report": events["report_id"].to_numpy(np.int64),
            "kind": (events["kind"] == "exited").to_numpy(np.int8),
            "zone": [event_zone_names.get(z, z) for z in events["zone_id"].tolist()],
            "track": [
                track_index.get((p, u), -1)
                for p, u in zip(events["party"].tolist(), events["unit"].tolist(), strict=True)
            ],
        },
        "counts": model.counts,
    }


def _zone_names_from(model: MapModel) -> dict[str, str]:
    names = dict(zip(model.findings["zone_id"], model.findings["zone_name"], strict=True))
    for layer in model.zones.values():
        for feature in layer["features"]:
            names.setdefault(feature["properties"]["id"], feature["properties"]["name"])
    return names


def _tracks(
    model: MapModel, parties: list[str], units: list[object]
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int]]:
    """One entry per unit: its rows in time order and its per-zone summary."""
    r = model.reports
    with_unit = r[r["unit"].notna()]
    if not len(with_unit):
        return [], {}
    rows = with_unit.reset_index().groupby(["party", "unit"], sort=True)["index"].agg(list)
    names = _zone_names_from(model)
    summary: dict[tuple[str, str], list[dict[str, Any]]] = {}
    s = model.summary
    if len(s):
        columns = [s[c].tolist() for c in ("party", "unit", "zone_id")]
        entered = (s["entered_at"].astype("int64") // 10**9).where(s["entered_at"].notna())
        exited = (s["last_exited_at"].astype("int64") // 10**9).where(s["last_exited_at"].notna())
        values = zip(
            *columns,
            entered.tolist(),
            exited.tolist(),
            s["dwell_s"].tolist(),
            s["withdrawn"].tolist(),
            s["back_at_initial"].tolist(),
            s["distance_to_initial_m"].round(0).tolist(),
            strict=True,
        )
        for party, unit, zone_id, enter, leave, dwell, withdrawn, back, distance in values:
            summary.setdefault((party, unit), []).append(
                {
                    "zone": names.get(zone_id, zone_id),
                    "entered": None if pd.isna(enter) else int(enter),
                    "exited": None if pd.isna(leave) else int(leave),
                    "dwell": float(dwell),
                    "withdrawn": bool(withdrawn),
                    "back": bool(back),
                    "distance": None if pd.isna(distance) else float(distance),
                }
            )
    party_index = {code: i for i, code in enumerate(parties)}
    unit_index = {str(u): i for i, u in enumerate(units)}
    tracks: list[dict[str, Any]] = []
    index: dict[tuple[str, str], int] = {}
    for key, positions in rows.items():
        party, unit = cast(tuple[str, str], key)
        index[(party, unit)] = len(tracks)
        tracks.append(
            {
                "party": party_index.get(party, -1),
                "unit": unit_index.get(str(unit), -1),
                "rows": positions,
                "summary": summary.get((party, unit), []),
            }
        )
    return tracks, index
