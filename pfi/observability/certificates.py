"""Client and server certificates the engine presents, and when each one expires.

An expired MLLP, DMP or MSSanté certificate stops a feed as surely as a cable cut; the
alert rules page 30 days ahead from `pfi_client_certificate_expiry_timestamp_seconds`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from cryptography import x509

from pfi.config.model import Settings

log = logging.getLogger(__name__)


def configured_certificates(settings: Settings) -> dict[str, Path]:
    """Bounded names (used as metric labels) → certificate files."""
    out: dict[str, Path] = {}
    for name, source in settings.sources.items():
        if source.tls is not None:
            out[f"mllp_{name.lower()}"] = source.tls.certfile
    if settings.dmp is not None:
        if settings.dmp.tls_certfile is not None:
            out["dmp_tls"] = settings.dmp.tls_certfile
        out["dmp_signing"] = settings.dmp.signing_certfile
    mss = settings.mssante
    if mss is not None:
        for attr, label in (("smtp", "mss_smtp"), ("imap", "mss_imap")):
            section = getattr(mss, attr)
            cert = section.tls.certfile
            if cert is not None:
                out[label] = cert
    return out


def certificate_expiries(settings: Settings) -> dict[str, datetime]:
    """Expiry (notAfter) of each configured certificate that can be read now."""
    out: dict[str, datetime] = {}
    for name, path in configured_certificates(settings).items():
        try:
            cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("certificate %s (%s) unreadable: %s", name, path, exc)
            continue
        out[name] = cert.not_valid_after_utc
    return out
