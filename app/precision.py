"""Depths as a reader should see them: rounded to a step that fits the uncertainty.

A depth of 4,246.3 m judged with u = 3,500 m (a report's 1.5 km plus a zone line 2 km off) is
not known to the metre, nor to the hundred metres: printed as "4,246.3 m" it claims what the
inputs do not hold. Human-facing output (the command line's tables, the map's popups) rounds it
to a step that fits u:

| u (report + zone boundary) | step |
| --- | --- |
| below 10 m | 1 m |
| 10 m to below 100 m | 10 m |
| 100 m to below 1 km | 100 m |
| 1 km and more | 1 km |

The API, the exports and the store keep the exact metres (to the centimetre): rounding is for
reading, never for computing. Pure functions over arrays; nothing here does I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["depth_step", "format_depth", "round_depth"]

#: (u below this, step) pairs, in order; beyond the last, `_LARGEST_STEP`.
_STEPS = ((10.0, 1.0), (100.0, 10.0), (1000.0, 100.0))
_LARGEST_STEP = 1000.0


def depth_step(uncertainty_m: npt.ArrayLike) -> np.ndarray:
    """The rounding step (m) for each uncertainty u (m): 1, 10, 100 or 1,000 m."""
    u = np.asarray(uncertainty_m, dtype=np.float64)
    return np.select([u < limit for limit, _ in _STEPS], [s for _, s in _STEPS], _LARGEST_STEP)


def round_depth(depth_m: npt.ArrayLike, uncertainty_m: npt.ArrayLike) -> np.ndarray:
    """Each depth rounded to its step (half away from zero, so the sign is kept)."""
    depth = np.asarray(depth_m, dtype=np.float64)
    step = depth_step(uncertainty_m)
    rounded: np.ndarray = np.sign(depth) * np.floor(np.abs(depth) / step + 0.5) * step
    return rounded + 0.0  # no -0.0


def format_depth(depth_m: float, uncertainty_m: float) -> str:
    """One depth for a table: "4,000" (m), rounded to the step that fits u."""
    return f"{float(round_depth(depth_m, uncertainty_m)):,.0f}"
