"""The DMP edge: HTTP(S) client for the XDS.b web services of the Dossier Médical Partagé."""

from pfi.adapters.dmp.client import DmpClient
from pfi.adapters.dmp.outcome import DmpOutcome, DmpOutcomeKind

__all__ = ["DmpClient", "DmpOutcome", "DmpOutcomeKind"]
