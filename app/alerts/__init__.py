"""Alerts: the durable event log, incidents, and what pushes events out (webhooks, MQTT)."""
