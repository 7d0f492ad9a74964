"""Alerts: the durable event log, incidents, and the streams built on them (docs/alerts.md)."""
