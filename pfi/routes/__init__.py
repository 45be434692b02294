"""Routing: which document goes where, with which visibility, and what waits (holds)."""
