"""Shared fixtures: CDA XSD, a `validate` hook the schematron validator plugs into."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from pfi.transforms.cda.context import CdaContext, DocumentIds, Organization, PostalAddress
from pfi.transforms.cda.reference_data import cda_xsd_path
from pfi.transforms.cda.summary import InstanceId

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def cda_xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(cda_xsd_path()))


@pytest.fixture(scope="session")
def validate(cda_xsd: etree.XMLSchema) -> Callable[[bytes], list[str]]:
    """Errors of a CDA: XSD now; the lead wires CdaValidator (schematrons) in here.

    Returns the list of error messages (empty when valid), so tests read
    `assert validate(cda) == []` whatever validator stands behind it.
    """

    def run(cda: bytes) -> list[str]:
        doc = etree.fromstring(cda)
        if cda_xsd.validate(doc):
            return []
        return [f"line {e.line}: {e.message}" for e in cda_xsd.error_log]

    return run


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
