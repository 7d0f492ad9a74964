"""Depths are shown rounded to a step that fits the uncertainty (app/precision.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.precision import depth_step, format_depth, round_depth


@pytest.mark.parametrize(
    ("u", "step"),
    [
        (0.0, 1),
        (9.99, 1),
        (10.0, 10),
        (99.0, 10),
        (100.0, 100),
        (999.9, 100),
        (1000.0, 1000),
        (3500.0, 1000),
        (1e7, 1000),
    ],
)
def test_the_step_grows_with_the_uncertainty(u: float, step: float) -> None:
    assert depth_step(u) == step


def test_depths_are_rounded_half_away_from_zero_and_keep_their_sign() -> None:
    depth = np.array([4246.3, -1875.0, 3143.0, 0.4, -0.4, 49.9, -1500.0])
    u = np.array([3500.0, 3000.0, 3000.0, 0.0, 0.0, 50.0, 5000.0])
    assert round_depth(depth, u).tolist() == [4000.0, -2000.0, 3000.0, 0.0, 0.0, 50.0, -2000.0]
    assert not np.signbit(round_depth(-0.4, 0.0))  # no "-0"


def test_a_table_cell_is_a_whole_number_with_separators() -> None:
    assert format_depth(4246.3, 3500.0) == "4,000"
    assert format_depth(12_345.6, 5.0) == "12,346"


@given(st.floats(-1e6, 1e6), st.floats(0.0, 1e5))
def test_rounding_is_never_off_by_more_than_half_a_step(depth: float, u: float) -> None:
    step = float(depth_step(u))
    assert abs(float(round_depth(depth, u)) - depth) <= step / 2 + 1e-9 * abs(depth)
