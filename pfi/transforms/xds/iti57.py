"""ITI-57 Update Document Set on the DMP: masking changes (TD3.3a/b) and deletion (TD3.3c).

A masking change is a metadata update: the DocumentEntry is resubmitted with a new
entryUUID, the same logical id (lid) and the new confidentiality codes, linked from the
submission set by HasMember with PreviousVersion = the registry version being replaced.
Deletion is an UpdateAvailabilityStatus association moving the entry from Approved to the
CI-SIS status urn:asip:ci-sis:2010:StatusType:Deleted.
"""

from __future__ import annotations

from lxml import etree

from pfi.transforms.xds import ns
from pfi.transforms.xds.ebrim import render_submit_objects
from pfi.transforms.xds.iti41 import SoapRequest
from pfi.transforms.xds.model import Association, DocumentEntry, SubmissionSet, has_member
from pfi.transforms.xds.soap import build_envelope


def _request(
    body: etree._Element, *, security: etree._Element, to: str, message_id: str
) -> SoapRequest:
    envelope = build_envelope(
        action=ns.ACTION_ITI57, to=to, message_id=message_id, body=body, security=security
    )
    xml = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return SoapRequest(
        xml,
        f'application/soap+xml; charset=UTF-8; action="{ns.ACTION_ITI57}"',
        ns.ACTION_ITI57,
        message_id,
    )


def build_metadata_update(
    submission_set: SubmissionSet,
    new_version: DocumentEntry,
    previous_version: int,
    *,
    security: etree._Element,
    to: str,
    message_id: str,
) -> SoapRequest:
    """Replace the metadata of an entry (new confidentiality codes...) without new content.

    `new_version` must come from `DocumentEntry.new_version()` (new entryUUID, lid set).
    """
    if not new_version.logical_id or new_version.logical_id == new_version.entry_uuid:
        raise ValueError("a metadata update needs a new entryUUID and the entry's logical id")
    if previous_version < 1:
        raise ValueError("PreviousVersion is the registry version number, starting at 1")
    body = render_submit_objects(
        submission_set,
        [new_version],
        [has_member(submission_set, new_version.entry_uuid, previous_version=previous_version)],
    )
    return _request(body, security=security, to=to, message_id=message_id)


def build_availability_update(
    submission_set: SubmissionSet,
    entry_uuid: str,
    *,
    new_status: str,
    original_status: str = ns.STATUS_APPROVED,
    security: etree._Element,
    to: str,
    message_id: str,
) -> SoapRequest:
    """Change the availability status of an entry (deletion: new_status=STATUS_DELETED)."""
    assoc = Association(
        ns.ASSOC_UPDATE_AVAILABILITY_STATUS,
        submission_set.entry_uuid,
        entry_uuid,
        slots=(("OriginalStatus", (original_status,)), ("NewStatus", (new_status,))),
    )
    body = render_submit_objects(submission_set, [], [assoc])
    return _request(body, security=security, to=to, message_id=message_id)
