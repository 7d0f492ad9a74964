"""The response models describe what the handlers write (one definition of each shape)."""

from __future__ import annotations

from app.api.models import TrackEventOut, TrackSummaryOut
from app.tracks import EVENT_COLUMNS, SUMMARY_COLUMNS


def test_track_models_have_the_columns_that_tracks_computes() -> None:
    assert list(TrackEventOut.model_fields) == EVENT_COLUMNS
    assert list(TrackSummaryOut.model_fields) == SUMMARY_COLUMNS
