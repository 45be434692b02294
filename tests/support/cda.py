"""A CDA build context for tests: a lab establishment and document ids."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pfi.transforms.cda.context import CdaContext, DocumentIds, Organization, PostalAddress
from pfi.transforms.cda.summary import InstanceId


def make_context(name: str, version: int = 1, previous: str | None = None) -> CdaContext:
    replaces = InstanceId("1.2.250.1.213.4.5.9.1", previous) if previous else None
    return CdaContext(
        organization=Organization(
            "920008059",
            "Laboratoire des charmes",
            "tel:0174589607",
            PostalAddress("8 Rue Frédéric Bastia", "92100", "BOULOGNE-BILLANCOURT"),
        ),
        ids=DocumentIds(
            InstanceId("1.2.250.1.213.4.5.9.1", f"{name}.v{version}"),
            InstanceId("1.2.250.1.213.4.5.9.2", name),
            version,
            replaces,
        ),
        effective_time=datetime(2024, 1, 4, 11, 30, tzinfo=ZoneInfo("Europe/Paris")),
        patient_id_root="1.2.250.1.213.4.5.2.4",
        order_id_root="1.2.250.1.213.4.5.3",
        local_code_system_oid="1.2.250.1.213.4.5.7",
    )


def make_imaging_context(name: str, version: int = 1, previous: str | None = None) -> CdaContext:
    """A radiology department of a public hospital, its RIS ids and document ids."""
    replaces = InstanceId("1.2.250.1.213.4.5.9.1", previous) if previous else None
    return CdaContext(
        organization=Organization(
            "920008059",
            "Service d'imagerie médicale — CHU X",
            "tel:0146000000",
            PostalAddress("12 Rue Ambroise", "75010", "PARIS"),
            facility_type=("SA01", "Etablissement public de santé"),
        ),
        ids=DocumentIds(
            InstanceId("1.2.250.1.213.4.5.9.1", f"{name}.v{version}"),
            InstanceId("1.2.250.1.213.4.5.9.2", name),
            version,
            replaces,
        ),
        effective_time=datetime(2024, 1, 15, 11, 30, tzinfo=ZoneInfo("Europe/Paris")),
        patient_id_root="1.2.250.1.213.4.5.2.4",
        order_id_root="1.2.250.1.213.4.5.3",
        local_code_system_oid="1.2.250.1.213.4.5.8",
        accession_id_root="1.2.250.1.213.4.5.6",
    )
