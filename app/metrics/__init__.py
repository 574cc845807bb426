"""Prometheus metrics: their definitions (`registry`), the database-derived gauges (`gauges`) and the dispatcher's
metrics endpoint (`server`)."""
