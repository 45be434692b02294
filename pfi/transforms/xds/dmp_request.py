"""Complete DMP requests from a CDA or a stored entry: metadata, VIHF, XAdES, SOAP.

The adapter calls these with the time and the configured identity; everything up to the
bytes to POST is pure and can be benchmarked or inspected without a network.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from pfi.transforms.xds import ns
from pfi.transforms.xds.credentials import SigningCredentials
from pfi.transforms.xds.iti41 import SoapRequest, build_provide_and_register
from pfi.transforms.xds.iti57 import build_availability_update, build_metadata_update
from pfi.transforms.xds.metadata import (
    document_entry_from_cda,
    submission_set_for,
    submission_set_for_patient,
)
from pfi.transforms.xds.model import (
    Association,
    DocumentEntry,
    MaskingFlags,
    SubmissionContext,
    SubmissionSet,
    has_member,
    new_entry_uuid,
    new_unique_oid,
)
from pfi.transforms.xds.vihf import VihfIdentity, build_vihf, security_header, sign_vihf
from pfi.transforms.xds.xades import sign_submission_set, signature_document_entry


@dataclass(frozen=True)
class DmpSigner:
    """Who signs: the VIHF identity and the establishment's seal certificate."""

    identity: VihfIdentity
    credentials: SigningCredentials
    sign_submission_sets: bool = True

    def security(
        self, patient_ins: str, *, now: datetime, connexion_secrete: bool = False
    ) -> etree._Element:
        assertion = build_vihf(
            self.identity,
            patient_ins,
            issuer=self.credentials.subject_dn,
            now=now,
            assertion_id=f"_{uuid.uuid4()}",
            connexion_secrete=connexion_secrete,
        )
        return security_header(sign_vihf(assertion, self.credentials))


@dataclass(frozen=True)
class PreparedRequest:
    """A request ready to POST, with the metadata the ledger must remember."""

    request: SoapRequest
    submission_set: SubmissionSet
    entry: DocumentEntry | None = None
    signature_entry: DocumentEntry | None = None


def prepare_submission(
    cda: bytes, context: SubmissionContext, signer: DmpSigner, *, to: str
) -> PreparedRequest:
    """TD2 (new document) or TD2.1 (replacement, when `context.replaces` is an entryUUID)."""
    entry = document_entry_from_cda(cda, context)
    submission_set = submission_set_for(entry, context)
    associations: list[Association] = [has_member(submission_set, entry.entry_uuid)]
    if context.replaces:
        associations.append(Association(ns.ASSOC_RPLC, entry.entry_uuid, context.replaces))
    documents = [(entry, cda)]
    signature_entry = None
    if signer.sign_submission_sets:
        signature = sign_submission_set(
            submission_set.unique_id,
            [(entry.unique_id, cda)],
            signer.credentials,
            signing_time=context.submission_time,
            signature_id=f"sig-{uuid.uuid4()}",
        )
        signature_entry = signature_document_entry(
            entry,
            signature,
            submitter=context.submitter,
            signing_time=context.submission_time,
            entry_uuid=new_entry_uuid(),
            unique_id=new_unique_oid(),
        )
        documents.append((signature_entry, signature))
        associations += [
            has_member(submission_set, signature_entry.entry_uuid),
            Association(ns.ASSOC_SIGNS, signature_entry.entry_uuid, submission_set.entry_uuid),
        ]
    request = build_provide_and_register(
        submission_set,
        documents,
        security=signer.security(
            entry.patient_id,
            now=context.submission_time,
            connexion_secrete=context.masking.connexion_secrete,
        ),
        to=to,
        message_id=f"urn:uuid:{uuid.uuid4()}",
        associations=associations,
    )
    return PreparedRequest(request, submission_set, entry, signature_entry)


def prepare_masking_update(
    current: DocumentEntry,
    masking: MaskingFlags,
    previous_version: int,
    context: SubmissionContext,
    signer: DmpSigner,
    *,
    to: str,
) -> PreparedRequest:
    """TD3.3a/b: the same entry with new masking codes, as ITI-57 metadata update."""
    new_version = current.with_masking(masking).new_version(context.entry_uuid)
    submission_set = submission_set_for_patient(current.patient_id, context)
    request = build_metadata_update(
        submission_set,
        new_version,
        previous_version,
        security=signer.security(
            current.patient_id,
            now=context.submission_time,
            connexion_secrete=masking.connexion_secrete,
        ),
        to=to,
        message_id=f"urn:uuid:{uuid.uuid4()}",
    )
    return PreparedRequest(request, submission_set, new_version)


def prepare_deletion(
    entry_uuid: str,
    patient_id: str,
    context: SubmissionContext,
    signer: DmpSigner,
    *,
    to: str,
) -> PreparedRequest:
    """TD3.3c: availability status Approved → urn:asip:ci-sis:2010:StatusType:Deleted."""
    submission_set = submission_set_for_patient(patient_id, context)
    request = build_availability_update(
        submission_set,
        entry_uuid,
        new_status=ns.STATUS_DELETED,
        security=signer.security(
            patient_id,
            now=context.submission_time,
            connexion_secrete=context.masking.connexion_secrete,
        ),
        to=to,
        message_id=f"urn:uuid:{uuid.uuid4()}",
    )
    return PreparedRequest(request, submission_set)
