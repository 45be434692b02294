"""DeliveryJobs for the MSSanté adapter tests: the official CR-BIO example, its patient
(the INS of the CI-SIS examples) and routing's request as the ledger holds it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pfi.config.mssante import MssanteSettings
from pfi.delivery.sender import DeliveryJob, DocumentSnapshot, PatientSnapshot
from tests.support.mss import APP, INS, PATIENT_ADDRESS, cr_bio

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def request(
    *,
    role: str = "prescriber",
    body: str = "",
    read: bool = False,
    reception: bool = True,
    no_reply: bool = False,
    reply_to: str = "",
) -> dict[str, Any]:
    return {
        "role": role,
        "operation": "submit",
        "no_reply": no_reply,
        "reply_to": reply_to,
        "acks": {
            "ACK_RECEPTION": {"value": reception, "origin": "default"},
            "ACK_LECTURE_MSS": {"value": read, "origin": "sender"},
        },
        "mail": {"body": body, "origin": "route"},
    }


def job(
    recipient: str,
    *,
    delivery_id: int = 1,
    destination: str = "mss_pro",
    operation: str = "submit",
    cda: bytes | None = None,
    pdf: bytes | None = PDF,
    with_cda: bool = True,
    **request_options: Any,
) -> DeliveryJob:
    action = {"submit": "INITIAL", "replace": "REPLACEMENT", "delete": "DELETION"}[operation]
    return DeliveryJob(
        delivery_id=delivery_id,
        destination=destination,
        recipient=recipient,
        operation=operation,
        revision=0,
        attempt=1,
        request=request(**request_options),
        document=DocumentSnapshot(
            document_id=10,
            version_id=20 + delivery_id,
            set_id="1.2.250.1.999.2.set",
            document_type="CR-BIO",
            document_code="11502-2",
            title="CR de biologie",
            source="SGL",
            version=1 if operation == "submit" else 2,
            action=action,
            document_uid=f"1.2.250.1.999.2.{delivery_id}",
            replaces_uid=None,
            confidentiality_code="N",
            effective_time=datetime(2024, 1, 15, 8, 0, tzinfo=UTC),
            cda=(cda or cr_bio()) if with_cda else None,
            pdf=pdf,
            meta={},
        ),
        patient=PatientSnapshot(
            patient_id=5,
            ins=INS,
            ins_oid="1.2.250.1.213.1.4.10",
            qualified=True,
            birth_name="PAT-TROIS",
            used_name="",
            first_name="DOMINIQUE",
            first_names="DOMINIQUE",
            birth_date=date(1979, 3, 28),
            sex="F",
        ),
    )


def patient_job(**options: Any) -> DeliveryJob:
    return job(PATIENT_ADDRESS, destination="mss_patient", **options)


def mss_settings(imap: dict[str, Any] | None = None, **smtp: Any) -> MssanteSettings:
    return MssanteSettings(
        imap=imap or {},
        enabled=True,
        application_mailbox=APP,
        application_display_name="PFI Hôpital",
        organisation_name="Hôpital de test",
        smtp=smtp,
        xdm={"source_id": "1.2.250.1.999.1"},
    )
