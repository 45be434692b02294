"""IHE_XDM.zip: the CDA and its XDS metadata, as MSSanté correspondents expect them.

Layout (IHE ITI-32, "Distribute Document Set on Media", ZIP over e-mail; names in upper
case 8.3 as the profile requires for the FAT/ISO 9660 media it inherits from)::

    INDEX.HTM                      what the package holds, readable in a browser
    README.TXT                     who made it, with what, and who to contact
    IHE_XDM/SUBSET01/METADATA.XML  lcm:SubmitObjectsRequest (ebRIM 3.0)
    IHE_XDM/SUBSET01/DOC0001.XML   the CDA R2 document

METADATA.XML is the DMP mapping of the CDA (`pfi.transforms.xds.metadata`, the same
DocumentEntry and SubmissionSet an ITI-41 would carry), plus what XDM adds: the ``URI``
slot naming the document file. For a replacement or a deletion the CI-SIS volet
"Transmission de document(s) CDA en HL7 v2" (exemples 2 to 4) asks for the extra metadata
``action`` = ``C`` or ``D`` on the document entry; receivers find the replaced document's
id in the CDA's relatedDocument/parentDocument/id, and the deleted one in its id.
"""

from __future__ import annotations

import hashlib
import html
import io
import uuid
import zipfile
from dataclasses import dataclass, replace
from datetime import datetime

from lxml import etree

from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.xds import ns
from pfi.transforms.xds.metadata import (
    DocumentEntry,
    SubmissionContext,
    SubmissionSet,
    document_entry_from_cda,
    render_submit_objects,
    submission_set_for,
)
from pfi.transforms.xds.model import has_member

SUBSET = "IHE_XDM/SUBSET01"
DOCUMENT_FILE = "DOC0001.XML"
ACTION_SLOT = "action"


@dataclass(frozen=True, slots=True)
class XdmSender:
    """Who made the package: README.TXT must say (ITI-32) and INDEX.HTM shows it."""

    organisation: str
    contact: str  # the application mailbox, or a phone / service
    application: str = "PFI"
    application_version: str = ""


def build_xdm_zip(
    cda: bytes,
    submission: SubmissionContext,
    sender: XdmSender,
    *,
    action: DocumentAction = DocumentAction.NEW,
    entry: DocumentEntry | None = None,
    submission_set: SubmissionSet | None = None,
) -> bytes:
    """The IHE_XDM.zip bytes for one CDA document.

    `entry` / `submission_set` may be given when the caller already mapped this exact CDA
    for the DMP (its hash must match); otherwise they are derived from the CDA here, and
    `XdsMetadataError` says which attribute the CDA cannot provide.
    """
    if entry is None:
        entry = document_entry_from_cda(cda, submission)
    elif entry.hash != hashlib.sha1(cda).hexdigest() or entry.size != len(cda):
        raise ValueError(
            "the DocumentEntry given does not describe these CDA bytes (hash or size differ)"
        )
    if submission_set is None:
        submission_set = submission_set_for(entry, submission)
    # A HasMember id derived from the entry's, so that the same input gives the same bytes
    # (a retried message is byte-identical to the first attempt).
    member = replace(
        has_member(submission_set, entry.entry_uuid),
        entry_uuid=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, entry.entry_uuid + '/member')}",
    )
    request = render_submit_objects(submission_set, [entry], [member])
    _add_entry_slots(request, entry.entry_uuid, action)
    metadata = etree.tostring(request, xml_declaration=True, encoding="UTF-8")

    stamp = submission.submission_time.timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("INDEX.HTM", _index_htm(entry, sender, action).encode("utf-8")),
            ("README.TXT", _readme(sender, submission.submission_time).encode("utf-8")),
            (f"{SUBSET}/METADATA.XML", metadata),
            (f"{SUBSET}/{DOCUMENT_FILE}", cda),
        ):
            info = zipfile.ZipInfo(name, date_time=stamp)  # type: ignore[arg-type]
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def _add_entry_slots(request: etree._Element, entry_uuid: str, action: DocumentAction) -> None:
    """Add the XDM URI slot (and the action, if any) after the entry's existing slots."""
    rim = f"{{{ns.RIM}}}"
    entry_el = next(
        el for el in request.iter(f"{rim}ExtrinsicObject") if el.get("id") == entry_uuid
    )
    slots = entry_el.findall(f"{rim}Slot")
    position = entry_el.index(slots[-1]) + 1 if slots else 0
    new_slots = [("URI", DOCUMENT_FILE)]
    if action.xdm_code:
        new_slots.append((ACTION_SLOT, action.xdm_code))
    for offset, (name, value) in enumerate(new_slots):
        slot = etree.Element(f"{rim}Slot", name=name)
        etree.SubElement(etree.SubElement(slot, f"{rim}ValueList"), f"{rim}Value").text = value
        entry_el.insert(position + offset, slot)


def _index_htm(entry: DocumentEntry, sender: XdmSender, action: DocumentAction) -> str:
    notice = {
        DocumentAction.NEW: "",
        DocumentAction.REPLACE: "<p>Ce document remplace la version transmise précédemment.</p>",
        DocumentAction.DELETE: "<p>Ce document a été retiré par son auteur : il est à "
        "supprimer.</p>",
    }[action]
    title = html.escape(entry.title)
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body>\n"
        f"<h1>{title}</h1>\n{notice}\n"
        f"<p>Émis par {html.escape(sender.organisation)} "
        f"({html.escape(sender.contact)}).</p>\n<ul>\n"
        f'<li><a href="{SUBSET}/{DOCUMENT_FILE}">{title}</a> (CDA R2, text/xml)</li>\n'
        f'<li><a href="{SUBSET}/METADATA.XML">Métadonnées XDS (METADATA.XML)</a></li>\n'
        '<li><a href="README.TXT">README.TXT</a></li>\n'
        "</ul>\n</body></html>\n"
    )


def _readme(sender: XdmSender, made_at: datetime) -> str:
    version = f" {sender.application_version}" if sender.application_version else ""
    return (
        "IHE XDM - Distribute Document Set on Media (ITI-32)\r\n"
        f"Emetteur / Sender: {sender.organisation}\r\n"
        f"Contact: {sender.contact}\r\n"
        f"Application: {sender.application}{version}\r\n"
        f"Date: {made_at.isoformat()}\r\n"
        "\r\n"
        "Contenu : INDEX.HTM (sommaire), IHE_XDM/SUBSET01/METADATA.XML (metadonnees XDS),\r\n"
        "IHE_XDM/SUBSET01/DOC0001.XML (document CDA R2). Ouvrir INDEX.HTM dans un\r\n"
        "navigateur pour consulter le contenu.\r\n"
    )
