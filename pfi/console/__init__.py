"""The HTTP side of the engine: health, metrics, and the authenticated ops API."""
