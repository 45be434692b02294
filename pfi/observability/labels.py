"""Bounded label values for PFI's metrics.

Every distinct label value is a new time series that Prometheus keeps for weeks. A label
fed from message content (a patient id, MSH-10, a mistyped message type from a sender
that sends garbage) would grow without bound and eventually take Prometheus down, so
every value goes through one of these functions first: a value outside its known shape
collapses to `OTHER` rather than raising, because a metric must never break processing.
"""

from __future__ import annotations

import re
from typing import Final

OTHER: Final = "other"

#: HL7 v2 table 0076 (message type) codes, v2.5/v2.6, plus ZAM (the Ségur business ack).
#: A message code outside this table is labelled "other": senders cannot invent series.
HL7_MESSAGE_CODES: Final = frozenset(
    """
    ACK ADR ADT BAR BPS BRP BRT BTS CCF CCI CCM CCQ CCU CQU CRM CSU DFT DOC DSR EAC EAN
    EAR EHC ESR ESU INR INU LSR LSU MDM MFD MFK MFN MFQ MFR NMD NMQ NMR OMB OMD OMG OMI
    OML OMN OMP OMQ OMS OPL OPR OPU ORA ORB ORD ORF ORG ORI ORL ORM ORN ORP ORR ORS ORU
    OSM OSQ OSR OUL PEX PGL PIN PMU PPG PPP PPR PPT PPV PRR PTR QBP QCK QCN QRY QSB QSX
    QVR RAR RAS RCI RCL RDE RDR RDS RDY REF RER RGR RGV ROR RPA RPI RPL RPR RQA RQC RQI
    RQP RRA RRD RRE RRG RRI RSP RTB SCN SDN SDR SIU SLN SLR SMD SQM SQR SRM SRR SSR SSU
    STC STI SUR TBR TCR TCU UDM VXQ VXR VXU VXX ZAM
    """.split()  # noqa: SIM905 (a table is easier to check against HL7 0076 this way)
)

_EVENT = re.compile(r"[A-Z][0-9]{2}")
_SOURCE = re.compile(r"[A-Z][A-Z0-9_]{1,15}")  # the pattern of source names in pfi.yaml
_SNAKE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DOCUMENT_TYPE = re.compile(r"[A-Z][A-Z0-9-]{1,15}")
_CERTIFICATE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

ACK_CODES: Final = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
#: Acknowledgement codes that mean the message was accepted (original and enhanced mode).
ACCEPT_ACK_CODES: Final = frozenset({"AA", "CA"})
VERSION_KINDS: Final = frozenset({"initial", "replacement", "deletion"})
DELIVERY_OUTCOMES: Final = frozenset(
    {"delivered", "refused", "failed_transient", "dead_letter", "held"}
)
INBOUND_OUTCOMES: Final = frozenset({"integrated", "ko", "rejected", "retry"})
OUTBOUND_HL7_KINDS: Final = frozenset({"zam_z01", "zam_z02", "zam_z03", "masking_oru"})
OUTBOUND_HL7_OUTCOMES: Final = frozenset({"sent", "failed", "dead"})
MSS_RECIPIENT_ROLES: Final = frozenset({"prescriber", "copy", "attending"})
MSS_RECIPIENT_OUTCOMES: Final = frozenset({"resolved", "unresolved"})
MSS_REPORT_KINDS: Final = frozenset({"dsn", "mdn", "error_mail", "opposition", "other"})
MSS_REPORT_OUTCOMES: Final = frozenset(
    {"refused", "delivered", "acknowledged", "unchanged", "unmatched", "ignored"}
)
VALIDATION_CHECKS: Final = frozenset({"xsd", "schematron", "pdf", "other"})


def message_type_label(raw: str | None) -> str:
    """`ORU^R01` from MSH-9 as received (`oru^r01^ORU_R01`, `ORU_R01`, ` ADT `...).

    Code and trigger event only: the message structure (MSH-9.3) adds nothing an
    operator filters on. A bare code (`ADT`) stays a bare code.
    """
    if not raw:
        return OTHER
    text = raw.strip().upper()
    parts = text.split("^") if "^" in text else text.split("_")
    code = parts[0].strip()
    if code not in HL7_MESSAGE_CODES:
        return OTHER
    event = parts[1].strip() if len(parts) > 1 else ""
    if not event:
        return code
    if not _EVENT.fullmatch(event):
        return OTHER
    return f"{code}^{event}"


def ack_code_label(raw: str | None) -> str:
    """MSA-1 (`AA`, `AE`, `AR`, `CA`, `CE`, `CR`); anything else is "other"."""
    code = (raw or "").strip().upper()
    return code if code in ACK_CODES else OTHER


def source_label(name: str) -> str:
    """A configured source name (`DPI`, `SGL`, `RIS`), as pfi.yaml spells them."""
    return name if _SOURCE.fullmatch(name) else OTHER


def snake_label(name: str) -> str:
    """Stage, destination, hold reason: short lower-case identifiers chosen by PFI's code."""
    return name if _SNAKE.fullmatch(name) else OTHER


def document_type_label(name: str) -> str:
    """CI-SIS document type short names: `CR-BIO`, `CR-IMG`, `LDL-SES`."""
    return name if _DOCUMENT_TYPE.fullmatch(name) else OTHER


def certificate_label(name: str) -> str:
    """The configured name of a client certificate (`dmp_auth`, `mssante`), never its subject."""
    return name if _CERTIFICATE.fullmatch(name) else OTHER


def member_label(value: str, allowed: frozenset[str]) -> str:
    """A value from a closed set (version kind, delivery outcome...), else "other"."""
    return value if value in allowed else OTHER
