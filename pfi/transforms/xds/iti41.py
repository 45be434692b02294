"""ITI-41 Provide and Register Document Set-b: the SOAP 1.2 MTOM request, and its reading.

The body is xdsb:ProvideAndRegisterDocumentSetRequest = lcm:SubmitObjectsRequest + one
xdsb:Document per DocumentEntry, whose content is an XOP attachment (never inline base64,
so a 10 MB PDF-bearing CDA is not inflated by a third).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from pfi.transforms.xds import ns
from pfi.transforms.xds.ebrim import ParsedSubmission, parse_submit_objects, render_submit_objects
from pfi.transforms.xds.errors import MtomError, SoapError
from pfi.transforms.xds.model import Association, DocumentEntry, SubmissionSet
from pfi.transforms.xds.mtom import MimePart, MtomMessage, encode_mtom
from pfi.transforms.xds.soap import SoapEnvelope, build_envelope

_X = f"{{{ns.XDSB}}}"


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """An HTTP-ready SOAP request: what the adapter POSTs, as built by a transform."""

    body: bytes
    content_type: str
    action: str
    message_id: str


def build_provide_and_register(
    submission_set: SubmissionSet,
    documents: Sequence[tuple[DocumentEntry, bytes]],
    *,
    security: etree._Element,
    to: str,
    message_id: str,
    associations: Sequence[Association] | None = None,
) -> SoapRequest:
    """The ITI-41 request: WS-Addressing + wsse:Security (signed VIHF) + metadata + XOP parts.

    `associations` defaults to one HasMember per document; pass the full list for a
    replacement (RPLC) or a signed submission (signs).
    """
    if not documents:
        raise ValueError("an ITI-41 submission needs at least one document")
    request = etree.Element(
        f"{_X}ProvideAndRegisterDocumentSetRequest",
        nsmap={"xdsb": ns.XDSB, "lcm": ns.LCM, "rim": ns.RIM, "xop": ns.XOP},
    )
    request.append(render_submit_objects(submission_set, [e for e, _ in documents], associations))
    parts = []
    for index, (entry, content) in enumerate(documents, start=1):
        cid = f"doc{index}.{message_id.removeprefix('urn:uuid:')}@pfi"
        doc = etree.SubElement(request, f"{_X}Document", id=entry.entry_uuid)
        etree.SubElement(doc, f"{{{ns.XOP}}}Include", href=f"cid:{cid}")
        parts.append(MimePart(cid, entry.mime_type or "application/octet-stream", content))
    envelope = build_envelope(
        action=ns.ACTION_ITI41, to=to, message_id=message_id, body=request, security=security
    )
    root = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    body, content_type = encode_mtom(root, parts, soap_action=ns.ACTION_ITI41)
    return SoapRequest(body, content_type, ns.ACTION_ITI41, message_id)


@dataclass(frozen=True, slots=True)
class ProvideAndRegister:
    """A received ITI-41 request, parsed: metadata objects and document bytes by entry id."""

    submission: ParsedSubmission
    documents: dict[str, bytes]


def read_provide_and_register(
    envelope: SoapEnvelope, mtom: MtomMessage | None
) -> ProvideAndRegister:
    """Metadata and documents of an ITI-41 body; XOP includes resolved, inline base64 too."""
    req = envelope.body_child
    if req.tag != f"{_X}ProvideAndRegisterDocumentSetRequest":
        raise SoapError(f"expected xdsb:ProvideAndRegisterDocumentSetRequest, got {req.tag!r}")
    sor = req.find(f"{{{ns.LCM}}}SubmitObjectsRequest")
    if sor is None:
        raise SoapError("ProvideAndRegisterDocumentSetRequest without lcm:SubmitObjectsRequest")
    documents: dict[str, bytes] = {}
    for doc in req.findall(f"{_X}Document"):
        doc_id = doc.get("id", "")
        if not doc_id:
            raise SoapError("xdsb:Document without id")
        include = doc.find(f"{{{ns.XOP}}}Include")
        if include is not None:
            if mtom is None:
                raise MtomError("xop:Include in a message that is not multipart/related")
            documents[doc_id] = mtom.attachment(include.get("href", ""))
        else:
            try:
                documents[doc_id] = base64.b64decode(
                    "".join((doc.text or "").split()), validate=True
                )
            except binascii.Error as exc:
                raise SoapError(f"xdsb:Document {doc_id}: neither XOP nor base64: {exc}") from exc
    return ProvideAndRegister(parse_submit_objects(sor), documents)
