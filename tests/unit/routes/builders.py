"""Routing inputs built the way the routing stage will assemble them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pfi.routes import (
    DocumentKind,
    PatientFacts,
    Recipient,
    RecipientRole,
    Routes,
    RoutingInput,
    load_routes,
)
from pfi.routes.metadata import YES_NO

REPO = Path(__file__).resolve().parents[3]
SHIPPED_ROUTES_PATH = REPO / "config" / "routes.yaml"

INS = "279035121518989"  # PAT-TROIS DOMINIQUE, the CI-SIS test patient (INS-NIR de test)
PATIENT_MAIL = f"{INS}@patient.mssante.fr"
QUALIFIED = PatientFacts(ins_qualified=True, ins=INS)
PROVISIONAL = PatientFacts(ins_qualified=False, ins=INS)  # INS known, PID-32 not VALI
UNKNOWN_IDENTITY = PatientFacts(ins_qualified=False)
OPPOSED = PatientFacts(ins_qualified=True, ins=INS, dmp_status="ACTIF", dmp_opposition=True)
NOT_OPPOSED = PatientFacts(ins_qualified=True, ins=INS, dmp_status="ACTIF", dmp_opposition=False)
OPPOSED_UNQUALIFIED = PatientFacts(ins_qualified=False, ins=INS, dmp_opposition=True)

PRESCRIBER = Recipient("dr.martin@chu-x.mssante.fr", RecipientRole.PRESCRIBER, "Dr Martin")
COPY = Recipient("dr.durand@cabinet-durand.mssante.fr", RecipientRole.COPY, "Dr Durand")
OLD_COPY = Recipient("dr.petit@cabinet-petit.mssante.fr", RecipientRole.COPY, "Dr Petit")
PRESCRIBER_KEY = f"mss_pro:{PRESCRIBER.address}"
COPY_KEY = f"mss_pro:{COPY.address}"
OLD_COPY_KEY = f"mss_pro:{OLD_COPY.address}"
ARCHIVE = "archives@chu-x.mssante.fr"
ARCHIVE_KEY = f"mss_pro:{ARCHIVE}"


def meta(**values: str) -> dict[str, str]:
    """A complete MetaDMPMSS as the volet requires it: the eight required flags at N unless
    given, the optional ones only when given."""
    out = {name: "N" for name in YES_NO[:8]}
    out.update(values)
    return out


def lab(**overrides: Any) -> RoutingInput:
    """A validated CR-BIO from the SGL for the qualified test patient."""
    fields: dict[str, Any] = {
        "source": "SGL",
        "document_kind": DocumentKind.CR_BIO,
        "document_code": "11502-2",
        "patient": QUALIFIED,
        "recipients": (PRESCRIBER, COPY),
    }
    fields.update(overrides)
    return RoutingInput(**fields)


def imaging(**overrides: Any) -> RoutingInput:
    fields: dict[str, Any] = {
        "source": "RIS",
        "document_kind": DocumentKind.CR_IMG,
        "document_code": "18748-4",
        "patient": QUALIFIED,
        "recipients": (PRESCRIBER,),
    }
    fields.update(overrides)
    return RoutingInput(**fields)


def dpi(**overrides: Any) -> RoutingInput:
    fields: dict[str, Any] = {
        "source": "DPI",
        "document_kind": DocumentKind.OTHER,
        "document_code": "34133-9",
        "patient": QUALIFIED,
        "recipients": (COPY,),
    }
    fields.update(overrides)
    return RoutingInput(**fields)


def routes_from_text(tmp_dir: Path, text: str) -> Routes:
    path = tmp_dir / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return load_routes(path)


def shipped_routes() -> Routes:
    return load_routes(SHIPPED_ROUTES_PATH, known_sources=("DPI", "SGL", "RIS"))
