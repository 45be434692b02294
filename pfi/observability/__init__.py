"""Metrics, health endpoints, structured logs and the SUN-ES indicator reports."""
