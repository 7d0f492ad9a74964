"""Truce: a ceasefire-zone monitor."""

__version__ = "0.1.0"
