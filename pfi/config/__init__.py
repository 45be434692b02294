"""Typed, validated configuration: YAML file + environment overrides.

Every error names the file, the line, the key path and what was expected, so that an
integration team fixing a typo at 3 a.m. does not have to read a stack trace.
"""

from pfi.config.loader import DEFAULT_CONFIG_PATH, ConfigError, load_settings
from pfi.config.model import Settings
from pfi.config.observability import ObservabilitySettings

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ConfigError",
    "ObservabilitySettings",
    "Settings",
    "load_settings",
]
