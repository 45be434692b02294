"""ebRIM 3.0 rendering and parsing of XDS submissions (ITI TF-3 §4.2.3, §4.2.5).

One rendering serves both the ITI-41/ITI-57 SOAP body and the METADATA.XML of an IHE_XDM
package (MSSanté). Parsing is the inverse, used by the DMP simulator and by tests that check
what went over the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count

from lxml import etree

from pfi.transforms.xds import ns
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.errors import XdsMetadataError
from pfi.transforms.xds.model import (
    Association,
    Author,
    DocumentEntry,
    SubmissionSet,
    has_member,
)

_L = f"{{{ns.LCM}}}"
_R = f"{{{ns.RIM}}}"


class _Ids:
    """Symbolic ids for classifications and external identifiers, unique in one request."""

    def __init__(self) -> None:
        self._n = count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}{next(self._n):03d}"


def _slot(parent: etree._Element, name: str, values: Iterable[str]) -> None:
    vals = [v for v in values if v != ""]
    if not vals:
        return
    slot = etree.SubElement(parent, f"{_R}Slot", name=name)
    value_list = etree.SubElement(slot, f"{_R}ValueList")
    for v in vals:
        etree.SubElement(value_list, f"{_R}Value").text = v


def _name(parent: etree._Element, value: str, tag: str = "Name") -> None:
    if value:
        el = etree.SubElement(parent, f"{_R}{tag}")
        etree.SubElement(el, f"{_R}LocalizedString", value=value)


def _classification(
    parent: etree._Element, scheme: str, object_id: str, code: Code, ids: _Ids
) -> None:
    cl = etree.SubElement(
        parent,
        f"{_R}Classification",
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation=code.code,
        id=ids("cl"),
        objectType=ns.OBJECT_TYPE_CLASSIFICATION,
    )
    _slot(cl, "codingScheme", [code.scheme])
    _name(cl, code.display)


def _author(parent: etree._Element, scheme: str, object_id: str, author: Author, ids: _Ids) -> None:
    cl = etree.SubElement(
        parent,
        f"{_R}Classification",
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation="",
        id=ids("cl"),
        objectType=ns.OBJECT_TYPE_CLASSIFICATION,
    )
    _slot(cl, "authorPerson", [author.person])
    _slot(cl, "authorInstitution", author.institutions)
    _slot(cl, "authorRole", author.roles)
    _slot(cl, "authorSpecialty", author.specialties)


def _external_id(
    parent: etree._Element, scheme: str, object_id: str, value: str, label: str, ids: _Ids
) -> None:
    ei = etree.SubElement(
        parent,
        f"{_R}ExternalIdentifier",
        identificationScheme=scheme,
        value=value,
        id=ids("ei"),
        objectType=ns.OBJECT_TYPE_EXTERNAL_IDENTIFIER,
        registryObject=object_id,
    )
    _name(ei, label)


def _document_entry(parent: etree._Element, entry: DocumentEntry, ids: _Ids) -> None:
    eo = etree.SubElement(
        parent,
        f"{_R}ExtrinsicObject",
        id=entry.entry_uuid,
        mimeType=entry.mime_type,
        objectType=ns.OBJECT_TYPE_STABLE_DOCUMENT,
    )
    if entry.logical_id:
        eo.set("lid", entry.logical_id)
    _slot(eo, "creationTime", [entry.creation_time])
    _slot(eo, "hash", [entry.hash])
    _slot(eo, "languageCode", [entry.language_code])
    _slot(eo, "legalAuthenticator", [entry.legal_authenticator])
    _slot(eo, "serviceStartTime", [entry.service_start_time])
    _slot(eo, "serviceStopTime", [entry.service_stop_time])
    _slot(eo, "size", [str(entry.size)])
    _slot(eo, "sourcePatientId", [entry.source_patient_id])
    _slot(eo, "sourcePatientInfo", entry.source_patient_info)
    _slot(eo, "urn:ihe:iti:xds:2013:referenceIdList", entry.reference_ids)
    _name(eo, entry.title)
    _name(eo, entry.comments, "Description")
    for author in entry.authors:
        _author(eo, ns.DE_AUTHOR, entry.entry_uuid, author, ids)
    _classification(eo, ns.DE_CLASS_CODE, entry.entry_uuid, entry.class_code, ids)
    for code in entry.confidentiality_codes:
        _classification(eo, ns.DE_CONFIDENTIALITY_CODE, entry.entry_uuid, code, ids)
    for code in entry.event_codes:
        _classification(eo, ns.DE_EVENT_CODE, entry.entry_uuid, code, ids)
    _classification(eo, ns.DE_FORMAT_CODE, entry.entry_uuid, entry.format_code, ids)
    _classification(
        eo,
        ns.DE_HEALTHCARE_FACILITY_TYPE_CODE,
        entry.entry_uuid,
        entry.healthcare_facility_type_code,
        ids,
    )
    _classification(
        eo, ns.DE_PRACTICE_SETTING_CODE, entry.entry_uuid, entry.practice_setting_code, ids
    )
    _classification(eo, ns.DE_TYPE_CODE, entry.entry_uuid, entry.type_code, ids)
    _external_id(
        eo, ns.DE_PATIENT_ID, entry.entry_uuid, entry.patient_id, "XDSDocumentEntry.patientId", ids
    )
    _external_id(
        eo, ns.DE_UNIQUE_ID, entry.entry_uuid, entry.unique_id, "XDSDocumentEntry.uniqueId", ids
    )


def _submission_set(parent: etree._Element, ss: SubmissionSet, ids: _Ids) -> None:
    rp = etree.SubElement(
        parent, f"{_R}RegistryPackage", id=ss.entry_uuid, objectType=ns.OBJECT_TYPE_REGISTRY_PACKAGE
    )
    _slot(rp, "submissionTime", [ss.submission_time])
    _name(rp, ss.title)
    _name(rp, ss.comments, "Description")
    for author in ss.authors:
        _author(rp, ns.SS_AUTHOR, ss.entry_uuid, author, ids)
    _classification(rp, ns.SS_CONTENT_TYPE_CODE, ss.entry_uuid, ss.content_type_code, ids)
    _external_id(rp, ns.SS_UNIQUE_ID, ss.entry_uuid, ss.unique_id, "XDSSubmissionSet.uniqueId", ids)
    _external_id(rp, ns.SS_SOURCE_ID, ss.entry_uuid, ss.source_id, "XDSSubmissionSet.sourceId", ids)
    _external_id(
        rp, ns.SS_PATIENT_ID, ss.entry_uuid, ss.patient_id, "XDSSubmissionSet.patientId", ids
    )
    etree.SubElement(
        parent,
        f"{_R}Classification",
        classifiedObject=ss.entry_uuid,
        classificationNode=ns.SS_CLASSIFICATION_NODE,
        id=ids("cl"),
        objectType=ns.OBJECT_TYPE_CLASSIFICATION,
    )


def _association(parent: etree._Element, assoc: Association) -> None:
    el = etree.SubElement(
        parent,
        f"{_R}Association",
        associationType=assoc.association_type,
        sourceObject=assoc.source,
        targetObject=assoc.target,
        id=assoc.entry_uuid,
        objectType=ns.OBJECT_TYPE_ASSOCIATION,
    )
    for name, values in assoc.slots:
        _slot(el, name, values)


def render_registry_object_list(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    associations: Sequence[Association] | None = None,
) -> etree._Element:
    """rim:RegistryObjectList with the submission set, the entries and the associations.

    When `associations` is None, a HasMember (SubmissionSetStatus=Original) is generated for
    each entry; pass an explicit list (with `has_member`) for anything else (RPLC, signs,
    ITI-57 PreviousVersion, UpdateAvailabilityStatus).
    """
    ids = _Ids()
    rol = etree.Element(f"{_R}RegistryObjectList", nsmap={"rim": ns.RIM})
    _submission_set(rol, submission_set, ids)
    for entry in entries:
        _document_entry(rol, entry, ids)
    if associations is None:
        associations = [has_member(submission_set, e.entry_uuid) for e in entries]
    for assoc in associations:
        _association(rol, assoc)
    return rol


def render_submit_objects(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    associations: Sequence[Association] | None = None,
) -> etree._Element:
    """lcm:SubmitObjectsRequest: the body of ITI-41/ITI-57 and the XDM METADATA.XML root."""
    req = etree.Element(f"{_L}SubmitObjectsRequest", nsmap={"lcm": ns.LCM, "rim": ns.RIM})
    req.append(render_registry_object_list(submission_set, entries, associations))
    return req


def submit_objects_xml(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    associations: Sequence[Association] | None = None,
) -> bytes:
    """`render_submit_objects` serialized as a standalone UTF-8 XML file (METADATA.XML)."""
    return etree.tostring(
        render_submit_objects(submission_set, entries, associations),
        xml_declaration=True,
        encoding="UTF-8",
    )


# --- parsing --------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSubmission:
    """What a SubmitObjectsRequest carries, as PFI's model objects."""

    submission_sets: tuple[SubmissionSet, ...]
    entries: tuple[DocumentEntry, ...]
    associations: tuple[Association, ...]


def _slots(el: etree._Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for slot in el.findall(f"{_R}Slot"):
        out[slot.get("name", "")] = [v.text or "" for v in slot.iter(f"{_R}Value")]
    return out


def _localized(el: etree._Element, tag: str = "Name") -> str:
    ls = el.find(f"{_R}{tag}/{_R}LocalizedString")
    return ls.get("value", "") if ls is not None else ""


def _codes(el: etree._Element, scheme: str) -> list[Code]:
    out = []
    for cl in el.findall(f"{_R}Classification"):
        if cl.get("classificationScheme") == scheme:
            coding = _slots(cl).get("codingScheme", [""])
            out.append(Code(cl.get("nodeRepresentation", ""), coding[0], _localized(cl)))
    return out


def _one_code(el: etree._Element, scheme: str, attribute: str) -> Code:
    found = _codes(el, scheme)
    if len(found) != 1:
        raise XdsMetadataError(attribute, f"expected exactly one, found {len(found)}")
    if not found[0].code or not found[0].scheme:
        raise XdsMetadataError(attribute, "nodeRepresentation or codingScheme is empty")
    return found[0]


def _authors_of(el: etree._Element, scheme: str) -> tuple[Author, ...]:
    out = []
    for cl in el.findall(f"{_R}Classification"):
        if cl.get("classificationScheme") == scheme:
            s = _slots(cl)
            out.append(
                Author(
                    person=(s.get("authorPerson") or [""])[0],
                    institutions=tuple(s.get("authorInstitution", ())),
                    roles=tuple(s.get("authorRole", ())),
                    specialties=tuple(s.get("authorSpecialty", ())),
                )
            )
    return tuple(out)


def _external(el: etree._Element, scheme: str, attribute: str) -> str:
    for ei in el.findall(f"{_R}ExternalIdentifier"):
        if ei.get("identificationScheme") == scheme:
            value = ei.get("value", "")
            if value:
                return value
    raise XdsMetadataError(attribute, "missing ExternalIdentifier")


def _required_slot(slots: dict[str, list[str]], name: str) -> str:
    values = slots.get(name) or [""]
    if not values[0]:
        raise XdsMetadataError(name, "missing slot")
    return values[0]


def parse_document_entry(eo: etree._Element) -> DocumentEntry:
    """A DocumentEntry from a rim:ExtrinsicObject; XdsMetadataError names what is missing."""
    entry_id = eo.get("id", "")
    if not entry_id:
        raise XdsMetadataError("entryUUID", "ExtrinsicObject without id")
    s = _slots(eo)
    size_text = _required_slot(s, "size")
    try:
        size = int(size_text)
    except ValueError as exc:
        raise XdsMetadataError("size", f"not an integer: {size_text!r}") from exc
    confidentiality = _codes(eo, ns.DE_CONFIDENTIALITY_CODE)
    if not confidentiality:
        raise XdsMetadataError("confidentialityCode", "expected at least one, found none")
    authors = _authors_of(eo, ns.DE_AUTHOR)
    if not authors:
        raise XdsMetadataError("author", "expected at least one author classification")
    return DocumentEntry(
        entry_uuid=entry_id,
        unique_id=_external(eo, ns.DE_UNIQUE_ID, "uniqueId"),
        patient_id=_external(eo, ns.DE_PATIENT_ID, "patientId"),
        source_patient_id=_required_slot(s, "sourcePatientId"),
        mime_type=eo.get("mimeType", ""),
        hash=_required_slot(s, "hash"),
        size=size,
        creation_time=_required_slot(s, "creationTime"),
        language_code=_required_slot(s, "languageCode"),
        title=_localized(eo),
        class_code=_one_code(eo, ns.DE_CLASS_CODE, "classCode"),
        type_code=_one_code(eo, ns.DE_TYPE_CODE, "typeCode"),
        format_code=_one_code(eo, ns.DE_FORMAT_CODE, "formatCode"),
        healthcare_facility_type_code=_one_code(
            eo, ns.DE_HEALTHCARE_FACILITY_TYPE_CODE, "healthcareFacilityTypeCode"
        ),
        practice_setting_code=_one_code(eo, ns.DE_PRACTICE_SETTING_CODE, "practiceSettingCode"),
        confidentiality_codes=tuple(confidentiality),
        authors=authors,
        legal_authenticator=(s.get("legalAuthenticator") or [""])[0],
        service_start_time=(s.get("serviceStartTime") or [""])[0],
        service_stop_time=(s.get("serviceStopTime") or [""])[0],
        source_patient_info=tuple(s.get("sourcePatientInfo", ())),
        event_codes=tuple(_codes(eo, ns.DE_EVENT_CODE)),
        reference_ids=tuple(s.get("urn:ihe:iti:xds:2013:referenceIdList", ())),
        logical_id=eo.get("lid", "") if eo.get("lid", "") != entry_id else "",
        comments=_localized(eo, "Description"),
    )


def parse_submission_set(rp: etree._Element) -> SubmissionSet:
    ss_id = rp.get("id", "")
    if not ss_id:
        raise XdsMetadataError("SubmissionSet.entryUUID", "RegistryPackage without id")
    s = _slots(rp)
    return SubmissionSet(
        entry_uuid=ss_id,
        unique_id=_external(rp, ns.SS_UNIQUE_ID, "SubmissionSet.uniqueId"),
        source_id=_external(rp, ns.SS_SOURCE_ID, "SubmissionSet.sourceId"),
        patient_id=_external(rp, ns.SS_PATIENT_ID, "SubmissionSet.patientId"),
        submission_time=_required_slot(s, "submissionTime"),
        content_type_code=_one_code(rp, ns.SS_CONTENT_TYPE_CODE, "contentTypeCode"),
        authors=_authors_of(rp, ns.SS_AUTHOR),
        title=_localized(rp),
        comments=_localized(rp, "Description"),
    )


def parse_submit_objects(request: etree._Element) -> ParsedSubmission:
    """Model objects of an lcm:SubmitObjectsRequest (or a bare rim:RegistryObjectList)."""
    rol = (
        request
        if request.tag == f"{_R}RegistryObjectList"
        else request.find(f"{_R}RegistryObjectList")
    )
    if rol is None:
        raise XdsMetadataError("SubmitObjectsRequest", "no rim:RegistryObjectList")
    ss_ids = {
        cl.get("classifiedObject")
        for cl in rol.findall(f"{_R}Classification")
        if cl.get("classificationNode") == ns.SS_CLASSIFICATION_NODE
    }
    packages = []
    for rp in rol.findall(f"{_R}RegistryPackage"):
        if rp.get("id") in ss_ids:
            packages.append(parse_submission_set(rp))
    entries = tuple(parse_document_entry(eo) for eo in rol.findall(f"{_R}ExtrinsicObject"))
    associations = tuple(
        Association(
            association_type=a.get("associationType", ""),
            source=a.get("sourceObject", ""),
            target=a.get("targetObject", ""),
            entry_uuid=a.get("id", ""),
            slots=tuple((k, tuple(v)) for k, v in _slots(a).items()),
        )
        for a in rol.findall(f"{_R}Association")
    )
    return ParsedSubmission(tuple(packages), entries, associations)
