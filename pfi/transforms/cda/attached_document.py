"""The FR-Document-attache entry (1.2.250.1.213.1.1.3.18): a PDF inside a CDA body.

CR-BIO carries PFI's or the lab's PDF copy of the report ("Copie du document") and
CR-IMG the RIS's own PDF ("Documents ajoutés"); both put it in the same organizer: a
"Type de document" observation that points at the section's label, and the PDF in an
observationMedia the section's text shows with renderMultiMedia.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from lxml import etree

from pfi.transforms.cda import header as hd
from pfi.transforms.cda.context import CdaContext
from pfi.transforms.cda.header import el, loinc_code
from pfi.transforms.cda.summary import InstanceId

#: IHE simple observation, FR-Simple-observation, FR-Type-document-attache
_TYPE_TEMPLATES = (
    "1.3.6.1.4.1.19376.1.5.3.1.4.13",
    "1.2.250.1.213.1.1.3.48",
    "1.2.250.1.213.1.1.3.48.18",
)


@dataclass(frozen=True, slots=True)
class AttachedPdf:
    """How one document type names the parts of its attachment."""

    media_id: str  # ID of the observationMedia (renderMultiMedia/@referencedObject)
    label_id: str  # ID of the section text naming the PDF (the type's text reference)
    uuid_key: str  # prefix of the entry's instance ids (`<key>-organizer`, `<key>-type`)
    #: the document type as a LOINC code (CR-BIO: 55108-5 "Copie du document"); None:
    #: the type is the label's text (CR-IMG: the RIS's PDF has no code of its own)
    type_code: tuple[str, str] | None = None
    #: typeCode of the observation's component (CR-IMG writes COMP; CR-BIO leaves it out)
    component_type: str | None = None


def attached_pdf_entry(
    section: etree._Element, pdf: bytes, ctx: CdaContext, names: AttachedPdf
) -> None:
    """Append the entry holding `pdf` to `section` (whose text holds the label)."""
    organizer = el(el(section, "entry"), "organizer", {"classCode": "CLUSTER", "moodCode": "EVN"})
    el(organizer, "templateId", {"root": "1.2.250.1.213.1.1.3.18"})
    hd.ii(organizer, "id", InstanceId(ctx.uuid(f"{names.uuid_key}-organizer")))
    loinc_code(organizer, "code", "55107-7", "Document attaché")
    el(organizer, "statusCode", {"code": "completed"})
    component = el(
        organizer, "component", {"typeCode": names.component_type} if names.component_type else {}
    )
    obs = el(component, "observation", {"classCode": "OBS", "moodCode": "EVN"})
    for root in _TYPE_TEMPLATES:
        el(obs, "templateId", {"root": root})
    hd.ii(obs, "id", InstanceId(ctx.uuid(f"{names.uuid_key}-type")))
    loinc_code(obs, "code", "69764-9", "Type de document")
    el(el(obs, "text"), "reference", {"value": f"#{names.label_id}"})
    el(obs, "statusCode", {"code": "completed"})
    el(obs, "effectiveTime", {"nullFlavor": "NA"})
    if names.type_code is not None:
        loinc_code(obs, "value", *names.type_code, {hd.XSI_TYPE: "CD"})
    else:
        value = el(obs, "value", {hd.XSI_TYPE: "CD"})
        el(el(value, "originalText"), "reference", {"value": f"#{names.label_id}"})
    media = el(
        el(organizer, "component"),
        "observationMedia",
        {"classCode": "OBS", "moodCode": "EVN", "ID": names.media_id},
    )
    value = el(media, "value", {"mediaType": "application/pdf", "representation": "B64"})
    value.text = base64.b64encode(pdf).decode("ascii")
