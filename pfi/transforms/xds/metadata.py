"""CDA → XDS metadata for the DMP, as the CI-SIS mapping says (volet « Transmission de
document(s) CDA en HL7 v2 », mapping.md, tables « Fiche » and « Lot de soumission »).

`document_entry_from_cda` reads every DocumentEntry attribute from the CDA header, checks
each coded value against its value set, and adds what the CDA cannot carry: the DMP masking
codes, the hash and the size. `submission_set_for` builds the lot de soumission around it.
`render_submit_objects` (from `ebrim`) turns them into ebRIM, the same XML for an ITI-41
request and for the METADATA.XML of an IHE_XDM package.
"""

from __future__ import annotations

import hashlib

from lxml import etree

from pfi.transforms.xds import cda_header as h
from pfi.transforms.xds import ns, value_sets
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.ebrim import (
    parse_submit_objects,
    render_registry_object_list,
    render_submit_objects,
    submit_objects_xml,
)
from pfi.transforms.xds.errors import XdsMetadataError
from pfi.transforms.xds.hl7_types import cx, hl7_ts_to_utc, utc_dtm, xcn, xon
from pfi.transforms.xds.model import (
    Association,
    Author,
    DocumentEntry,
    MaskingFlags,
    SubmissionContext,
    SubmissionSet,
)

__all__ = [
    "Association",
    "Author",
    "DocumentEntry",
    "MaskingFlags",
    "SubmissionContext",
    "SubmissionSet",
    "document_entry_from_cda",
    "parse_submit_objects",
    "render_registry_object_list",
    "render_submit_objects",
    "submission_set_for",
    "submission_set_for_patient",
    "submit_objects_xml",
]

RPPS_IDNPS_OID = "1.2.250.1.71.4.2.1"
STRUCTURE_IDNST_OID = "1.2.250.1.71.4.2.2"
_ORDER_REFERENCE_TYPE = "urn:ihe:iti:xds:2013:order"
_CDA_MIME_TYPE = "text/xml"


def document_entry_from_cda(cda: bytes, submission: SubmissionContext) -> DocumentEntry:
    """The DocumentEntry of `cda` for a DMP submission, every coded value checked.

    Raises XdsMetadataError (or its XdsValueSetError subclass) naming the attribute, the
    CDA path or the code and value set at fault.
    """
    root = h.parse_cda(cda)
    type_code = _type_code(root)
    confidentiality = _confidentiality(root, submission.masking)
    patient_id, source_patient_id = _patient_ids(root)
    service_start = h.attr(root, "h:documentationOf/h:serviceEvent/h:effectiveTime/h:low", "value")
    if not service_start:
        raise XdsMetadataError(
            "serviceStartTime",
            "missing documentationOf/serviceEvent/effectiveTime/low/@value in the CDA",
        )
    service_stop = h.attr(root, "h:documentationOf/h:serviceEvent/h:effectiveTime/h:high", "value")
    title = h.text(h.first(root, "h:title"))
    if not title:
        raise XdsMetadataError("title", "missing or empty title in the CDA")
    return DocumentEntry(
        entry_uuid=submission.entry_uuid,
        unique_id=_unique_id(root),
        patient_id=patient_id,
        source_patient_id=source_patient_id,
        mime_type=_CDA_MIME_TYPE,
        hash=hashlib.sha1(cda).hexdigest(),
        size=len(cda),
        creation_time=_utc(
            "creationTime", h.required_attr(root, "h:effectiveTime", "value", "creationTime")
        ),
        language_code=h.required_attr(root, "h:languageCode", "code", "languageCode"),
        title=title,
        class_code=_class_code(type_code, submission.class_code),
        type_code=type_code,
        format_code=_format_code(root),
        healthcare_facility_type_code=_coded(
            root,
            "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code",
            "healthcareFacilityTypeCode",
            value_sets.healthcare_facility_type(),
        ),
        practice_setting_code=_coded(
            root,
            "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity"
            "/h:representedOrganization/h:standardIndustryClassCode",
            "practiceSettingCode",
            value_sets.practice_setting(),
        ),
        confidentiality_codes=confidentiality,
        authors=_authors(root),
        legal_authenticator=_legal_authenticator(root),
        service_start_time=_utc("serviceStartTime", service_start),
        service_stop_time=_utc("serviceStopTime", service_stop) if service_stop else "",
        source_patient_info=_source_patient_info(root),
        event_codes=submission.event_codes,
        reference_ids=_reference_ids(root),
    )


def submission_set_for(entry: DocumentEntry, submission: SubmissionContext) -> SubmissionSet:
    """The lot de soumission carrying `entry` (same patient, the PFI as author)."""
    return submission_set_for_patient(entry.patient_id, submission)


def submission_set_for_patient(patient_id: str, submission: SubmissionContext) -> SubmissionSet:
    """A lot de soumission for `patient_id` (CX), e.g. for an ITI-57 update or deletion."""
    content_type = value_sets.content_type_code().require(
        "contentTypeCode", submission.content_type_code.code, submission.content_type_code.scheme
    )
    if not submission.submitter.person and not submission.submitter.institutions:
        raise XdsMetadataError(
            "SubmissionSet.author", "the submitter needs an authorPerson or authorInstitution"
        )
    return SubmissionSet(
        entry_uuid=submission.submission_set_uuid,
        unique_id=submission.submission_set_unique_id,
        source_id=submission.source_id,
        patient_id=patient_id,
        submission_time=utc_dtm(submission.submission_time),
        content_type_code=content_type,
        authors=(submission.submitter,),
        title=submission.submission_set_title,
    )


def _utc(attribute: str, value: str) -> str:
    try:
        return hl7_ts_to_utc(value)
    except ValueError as exc:
        raise XdsMetadataError(attribute, str(exc)) from exc


def _unique_id(root: etree._Element) -> str:
    id_root = h.required_attr(root, "h:id", "root", "uniqueId")
    ext = h.attr(root, "h:id", "extension")
    return f"{id_root}^{ext}" if ext else id_root


def _type_code(root: etree._Element) -> Code:
    code = h.required_attr(root, "h:code", "code", "typeCode")
    system = h.required_attr(root, "h:code", "codeSystem", "typeCode")
    return value_sets.type_code().require("typeCode", code, system)


def _class_code(type_code: Code, override: Code | None) -> Code:
    if override is not None:
        return value_sets.class_code().require("classCode", override.code, override.scheme)
    found = value_sets.class_code_by_type().get((type_code.code, type_code.scheme))
    if found is None:
        raise XdsMetadataError(
            "classCode",
            f"typeCode {type_code.code!r} is not in the ASS_X04 (type → class) excerpt "
            "pfi/resources/xds/DERIVED-nos-excerpts.json; add the official correspondence "
            "there or pass SubmissionContext.class_code",
        )
    return found


def _format_code(root: etree._Element) -> Code:
    table = value_sets.format_codes()
    non_xml = h.first(root, "h:component/h:nonXMLBody/h:text")
    if non_xml is not None:
        media = (non_xml.get("mediaType") or "").strip()
        code = table.by_media_type.get(media)
        if code is None:
            raise XdsMetadataError(
                "formatCode",
                f"nonXMLBody mediaType {media!r} is not in ASS_12 "
                f"(known: {', '.join(sorted(table.by_media_type))})",
            )
        return code
    templates = [t.get("root", "") for t in h.all_of(root, "h:templateId")]
    matches = {(c.code, c.scheme): c for c in (table.by_template.get(t) for t in templates) if c}
    if len(matches) == 1:
        return next(iter(matches.values()))
    if not matches:
        raise XdsMetadataError(
            "formatCode",
            f"none of the CDA templateIds {templates} is in the ASS_A11 excerpt "
            "(pfi/resources/ci-sis/NOS-extracts/)",
        )
    raise XdsMetadataError(
        "formatCode",
        f"the CDA templateIds map to several formatCodes: {sorted(code for code, _ in matches)}",
    )


def _coded(root: etree._Element, path: str, attribute: str, value_set: value_sets.ValueSet) -> Code:
    code = h.required_attr(root, path, "code", attribute)
    system = h.required_attr(root, path, "codeSystem", attribute)
    return value_set.require(attribute, code, system)


def _confidentiality(root: etree._Element, masking: MaskingFlags) -> tuple[Code, ...]:
    cda_code = _coded(
        root, "h:confidentialityCode", "confidentialityCode", value_sets.confidentiality()
    )
    if cda_code.scheme != ns.HL7_CONFIDENTIALITY:
        raise XdsMetadataError(
            "confidentialityCode",
            f"the CDA confidentialityCode must be N, R or V ({ns.HL7_CONFIDENTIALITY}), "
            f"got {cda_code.code!r}",
        )
    vs = value_sets.confidentiality()
    extra = [
        vs.require("confidentialityCode", c.code, c.scheme) for c in masking.confidentiality_codes()
    ]
    return (cda_code, *extra)


def _patient_ids(root: etree._Element) -> tuple[str, str]:
    ins: str | None = None
    local: str | None = None
    for pid in h.all_of(root, "h:recordTarget/h:patientRole/h:id"):
        id_root, ext = pid.get("root", ""), (pid.get("extension") or "").strip()
        if not ext:
            continue
        if id_root in ns.INS_OIDS and ins is None:
            ins = cx(ext, id_root, "NH")
        elif id_root not in ns.INS_OIDS and local is None:
            local = cx(ext, id_root, "PI")
    if ins is None:
        raise XdsMetadataError(
            "patientId",
            "no INS in recordTarget/patientRole/id (root must be one of "
            f"{', '.join(sorted(ns.INS_OIDS))}, with the matricule in @extension)",
        )
    return ins, local or ins


def _source_patient_info(root: etree._Element) -> tuple[str, ...]:
    patient = h.first(root, "h:recordTarget/h:patientRole/h:patient")
    if patient is None:
        return ()
    family, given, _ = h.person_name(patient)
    info = []
    if family:
        info.append(f"PID-5|{family}^{given}^^^^^L")
    birth = h.attr(patient, "h:birthTime", "value")
    if birth:
        info.append(f"PID-7|{birth[:8]}")
    gender = h.attr(patient, "h:administrativeGenderCode", "code")
    if gender:
        info.append(f"PID-8|{gender}")
    return tuple(info)


def _person_xcn(entity: etree._Element, person_path: str) -> str:
    pid = h.first(entity, "h:id")
    id_root = pid.get("root", "") if pid is not None else ""
    ext = (pid.get("extension") or "") if pid is not None else ""
    family, given, prefix = h.person_name(h.first(entity, person_path))
    id_type = "IDNPS" if id_root == RPPS_IDNPS_OID else "EI"
    return xcn(ext, id_root, family, given, prefix, id_type=id_type)


def _institution(org: etree._Element | None) -> tuple[str, ...]:
    if org is None:
        return ()
    oid = h.first(org, "h:id")
    name = h.text(h.first(org, "h:name"))
    id_root = oid.get("root", "") if oid is not None else ""
    ext = (oid.get("extension") or "") if oid is not None else ""
    if not name and not ext:
        return ()
    id_type = "IDNST" if id_root == STRUCTURE_IDNST_OID else "EI"
    return (xon(name, ext, id_root, id_type=id_type),)


def _authors(root: etree._Element) -> tuple[Author, ...]:
    authors: list[Author] = []
    for author in h.all_of(root, "h:author"):
        assigned = h.first(author, "h:assignedAuthor")
        if assigned is None:
            continue
        person_path = (
            "h:assignedPerson"
            if h.first(assigned, "h:assignedPerson") is not None
            else ("h:assignedAuthoringDevice")
        )
        specialties: tuple[str, ...] = ()
        code_el = h.first(assigned, "h:code")
        if code_el is not None and code_el.get("code"):
            spec = value_sets.author_specialty().require(
                "authorSpecialty", code_el.get("code", ""), code_el.get("codeSystem", "")
            )
            specialties = (f"{spec.code}^{spec.display}^{spec.scheme}",)
        role = h.attr(author, "h:functionCode", "displayName")
        authors.append(
            Author(
                person=_person_xcn(assigned, person_path),
                institutions=_institution(h.first(assigned, "h:representedOrganization")),
                roles=(role,) if role else (),
                specialties=specialties,
            )
        )
    if not authors:
        raise XdsMetadataError("author", "the CDA has no author/assignedAuthor")
    return tuple(authors)


def _legal_authenticator(root: etree._Element) -> str:
    entity = h.first(root, "h:legalAuthenticator/h:assignedEntity")
    if entity is None:
        raise XdsMetadataError(
            "legalAuthenticator", "missing legalAuthenticator/assignedEntity in the CDA"
        )
    return _person_xcn(entity, "h:assignedPerson")


def _reference_ids(root: etree._Element) -> tuple[str, ...]:
    out = []
    for order_id in h.all_of(root, "h:inFulfillmentOf/h:order/h:id"):
        ext, id_root = order_id.get("extension"), order_id.get("root")
        if ext and id_root:
            out.append(f"{cx(ext, id_root)}^{_ORDER_REFERENCE_TYPE}")
    return tuple(out)
