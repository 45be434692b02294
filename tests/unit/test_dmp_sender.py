"""DmpSender's mapping of DMP answers to delivery results (the client is a stand-in)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pfi.adapters.dmp.outcome import DmpOutcome, DmpOutcomeKind
from pfi.adapters.dmp.sender import DmpSender, masking_of
from pfi.delivery.jobs import patient_snapshot
from pfi.delivery.sender import DeliveryJob, DocumentSnapshot, SendStatus
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.model import DocumentEntry, SubmissionContext
from pfi.transforms.xds.registry_response import RegistryError
from tests.support.dmp_fixtures import dmp_settings

CODE = Code("x", "1.2.3", "x")
ENTRY = DocumentEntry(
    entry_uuid="urn:uuid:placeholder",
    unique_id="1.2.3.4",
    patient_id="279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH",
    source_patient_id="p",
    mime_type="text/xml",
    hash="ab",
    size=1,
    creation_time="20240101",
    language_code="fr-FR",
    title="t",
    class_code=CODE,
    type_code=CODE,
    format_code=CODE,
    healthcare_facility_type_code=CODE,
    practice_setting_code=CODE,
    confidentiality_codes=(),
    authors=(),
)


class StandInClient:
    """Answers what the test says; records the contexts it was given."""

    def __init__(self, outcome: DmpOutcome) -> None:
        self.outcome = outcome
        self.contexts: list[SubmissionContext] = []

    def context(self, **kwargs: Any) -> SubmissionContext:
        return SubmissionContext(
            submission_time=datetime(2024, 1, 1, tzinfo=UTC),
            source_id="1.2.3",
            content_type_code=CODE,
            submitter=ENTRY.authors[0] if ENTRY.authors else None,  # type: ignore[arg-type]
            **kwargs,
        )

    def submit(self, cda: bytes, context: SubmissionContext) -> DmpOutcome:
        self.contexts.append(context)
        return replace(self.outcome, entry=replace(ENTRY, entry_uuid=context.entry_uuid))

    def close(self) -> None:
        pass


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    return cert, key


def job(attempt: int = 1, resumed: bool = False, **request: Any) -> DeliveryJob:
    return DeliveryJob(
        delivery_id=42,
        destination="dmp",
        recipient="",
        operation="submit",
        revision=0,
        attempt=attempt,
        request=request,
        document=DocumentSnapshot(
            document_id=1,
            version_id=1,
            set_id="s",
            document_type="CR-BIO",
            document_code="11502-2",
            title="t",
            source="SGL",
            version=1,
            action="INITIAL",
            document_uid="1.2.3.4",
            replaces_uid=None,
            confidentiality_code="N",
            effective_time=None,
            cda=b"<ClinicalDocument/>",
            pdf=None,
            meta={},
        ),
        patient=patient_snapshot(None),
        resumed=resumed,
    )


def sender(keys: tuple[Path, Path], outcome: DmpOutcome) -> tuple[DmpSender, StandInClient]:
    client = StandInClient(outcome)
    settings = dmp_settings("http://127.0.0.1:9", keys[0], keys[1])
    return DmpSender(settings, client=client), client  # type: ignore[arg-type]


DUPLICATE = DmpOutcome(
    DmpOutcomeKind.REFUSED,
    "XDSDuplicateUniqueIdInRegistry: uniqueId 1.2.3.4 is already registered",
    registry_errors=(RegistryError("XDSDuplicateUniqueIdInRegistry", "already registered"),),
)


def test_retry_of_the_same_delivery_sends_the_same_identifiers(keys) -> None:
    dmp, client = sender(keys, DmpOutcome(DmpOutcomeKind.ACCEPTED, "accepted"))

    first, again = dmp.send(job()), dmp.send(job(attempt=2))

    assert first.status is SendStatus.DELIVERED and first.external_id == again.external_id
    assert (
        client.contexts[0].submission_set_unique_id == client.contexts[1].submission_set_unique_id
    )


def test_duplicate_on_a_first_try_is_refused_with_the_dmp_words(keys) -> None:
    dmp, _ = sender(keys, DUPLICATE)

    result = dmp.send(job())

    assert result.status is SendStatus.REFUSED
    assert result.reason.startswith("XDSDuplicateUniqueIdInRegistry")


@pytest.mark.parametrize(("attempt", "resumed"), [(2, False), (1, True)])
def test_duplicate_after_an_unknown_outcome_is_our_own_submission(keys, attempt, resumed) -> None:
    dmp, client = sender(keys, DUPLICATE)

    result = dmp.send(job(attempt=attempt, resumed=resumed))

    assert result.status is SendStatus.DELIVERED
    assert result.external_id == client.contexts[0].entry_uuid
    assert "earlier attempt" in result.detail["note"]


def test_masking_flags_come_from_the_routing_request() -> None:
    flags = masking_of(
        {
            "masking": {
                "MASQUE_PS": {"value": True},
                "INVISIBLE_PATIENT": {"value": False},
                "connexion_secrete": True,
            }
        }
    )

    assert flags.masque_ps and not flags.invisible_patient and flags.connexion_secrete


def test_missing_key_files_are_a_configuration_error(tmp_path: Path) -> None:
    settings = dmp_settings("http://127.0.0.1:9", tmp_path / "no.pem", tmp_path / "no.key")

    with pytest.raises(ValueError, match=r"dmp\.signing_certfile"):
        DmpSender(settings)
