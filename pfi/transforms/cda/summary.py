"""What routing, the DMP and MSSanté need to know about a CDA, read from its header.

The transmission volet (way a) hands PFI a finished document: PFI must not rebuild it,
only check it against the message and extract the XDS metadata sources (setId, id,
version, type, patient, confidentiality, author). One read of the header does it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from pfi.transforms.cda.oids import HL7_NS, INS_OIDS

_NS = {"h": HL7_NS}


@dataclass(frozen=True, slots=True)
class InstanceId:
    """An HL7 v3 II: `root` alone, or `root` + `extension`."""

    root: str
    extension: str = ""

    def __str__(self) -> str:
        return f"{self.root}^{self.extension}" if self.extension else self.root


@dataclass(frozen=True, slots=True)
class CdaAuthor:
    ids: tuple[InstanceId, ...]
    family: str
    given: str
    organization_ids: tuple[InstanceId, ...]
    organization_name: str
    time: str


@dataclass(frozen=True, slots=True)
class CdaSummary:
    """The header facts of one CDA document."""

    id: InstanceId
    set_id: InstanceId | None
    version_number: int | None
    template_ids: tuple[InstanceId, ...]
    code: str
    code_system: str
    code_display: str
    title: str
    effective_time: str
    confidentiality_code: str
    language_code: str
    patient_ids: tuple[InstanceId, ...]
    authors: tuple[CdaAuthor, ...]
    replaced_document_id: InstanceId | None
    level: int

    @property
    def ins(self) -> InstanceId | None:
        return next((i for i in self.patient_ids if i.root in INS_OIDS), None)


def _ii(el: etree._Element | None) -> InstanceId | None:
    if el is None or not el.get("root"):
        return None
    return InstanceId(el.get("root", ""), el.get("extension", ""))


def _text(el: etree._Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def summarize_cda(root: etree._Element) -> CdaSummary:
    """Read the header of a parsed `ClinicalDocument` (raise `ValueError` if not one)."""
    if root.tag != f"{{{HL7_NS}}}ClinicalDocument":
        raise ValueError(f"root element is {root.tag!r}, not {{{HL7_NS}}}ClinicalDocument")
    doc_id = _ii(root.find("h:id", _NS))
    if doc_id is None:
        raise ValueError("ClinicalDocument/id is missing or has no @root")
    code = root.find("h:code", _NS)
    version = root.find("h:versionNumber", _NS)
    try:
        version_number = int(version.get("value", "")) if version is not None else None
    except ValueError:
        version_number = None
    authors = []
    for a in root.findall("h:author", _NS):
        aa = a.find("h:assignedAuthor", _NS)
        if aa is None:
            continue
        name = aa.find("h:assignedPerson/h:name", _NS)
        org = aa.find("h:representedOrganization", _NS)
        authors.append(
            CdaAuthor(
                ids=tuple(i for i in map(_ii, aa.findall("h:id", _NS)) if i),
                family=_text(name.find("h:family", _NS)) if name is not None else "",
                given=_text(name.find("h:given", _NS)) if name is not None else "",
                organization_ids=tuple(
                    i for i in map(_ii, org.findall("h:id", _NS) if org is not None else []) if i
                ),
                organization_name=_text(org.find("h:name", _NS)) if org is not None else "",
                time=(
                    a.find("h:time", _NS).get("value", "")
                    if a.find("h:time", _NS) is not None
                    else ""
                ),
            )
        )
    rplc = None
    for rel in root.findall("h:relatedDocument", _NS):
        if rel.get("typeCode") == "RPLC":
            rplc = _ii(rel.find("h:parentDocument/h:id", _NS))
    body = root.find("h:component/h:structuredBody", _NS)
    effective = root.find("h:effectiveTime", _NS)
    conf = root.find("h:confidentialityCode", _NS)
    lang = root.find("h:languageCode", _NS)
    return CdaSummary(
        id=doc_id,
        set_id=_ii(root.find("h:setId", _NS)),
        version_number=version_number,
        template_ids=tuple(i for i in map(_ii, root.findall("h:templateId", _NS)) if i),
        code=code.get("code", "") if code is not None else "",
        code_system=code.get("codeSystem", "") if code is not None else "",
        code_display=code.get("displayName", "") if code is not None else "",
        title=_text(root.find("h:title", _NS)),
        effective_time=effective.get("value", "") if effective is not None else "",
        confidentiality_code=conf.get("code", "") if conf is not None else "",
        language_code=lang.get("code", "") if lang is not None else "",
        patient_ids=tuple(
            i for i in map(_ii, root.findall("h:recordTarget/h:patientRole/h:id", _NS)) if i
        ),
        authors=tuple(authors),
        replaced_document_id=rplc,
        level=3 if body is not None else 1,
    )
