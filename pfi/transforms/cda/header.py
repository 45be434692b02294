"""The French CDA header (Structuration minimale) shared by CR-BIO and CR-IMG.

One place decides how a patient, a professional, the custodian and the document ids are
written, so that both document types carry the INS, RPPS and FINESS the same way and the
DMP metadata extracted later (XDS mapping) is consistent.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from lxml import etree

from pfi.transforms.cda.context import CdaContext, Organization
from pfi.transforms.cda.oids import (
    ACT_CODE,
    ADMINISTRATIVE_GENDER,
    CONFIDENTIALITY,
    HEALTHCARE_FACILITY_TYPE,
    HL7_NS,
    INS_OIDS,
    LOINC,
    PERSON_ID_ROOT,
    PRACTICE_SETTING,
    PROFESSION_SPECIALITY,
    XSI_NS,
)
from pfi.transforms.cda.summary import InstanceId
from pfi.transforms.lab.model import Address, Patient, Practitioner

H = f"{{{HL7_NS}}}"
_ROOT = "ClinicalDocument"
_ROOT_START = f'<{_ROOT} xmlns="{HL7_NS}"'.encode()
XSI_TYPE = f"{{{XSI_NS}}}type"

_CONFIDENTIALITY = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}
_GENDER = {"F": "Féminin", "M": "Masculin", "UN": "Inconnu"}
#: PV1-2 patient class → ActEncounterCode (encompassingEncounter/code).
_ENCOUNTER = {
    "I": ("IMP", "Hospitalisation"),
    "E": ("EMER", "Urgences"),
    "O": ("AMB", "Ambulatoire"),
    "R": ("AMB", "Ambulatoire"),
}


def el(parent: etree._Element, tag: str, attrib: dict[str, str] | None = None) -> etree._Element:
    """A child in the HL7 v3 namespace (attribute values must be strings).

    The tree is built with unqualified HL7 tags and the default namespace is declared
    once by `serialize`: lxml resolves a qualified tag's namespace up the ancestors on
    every element created, a third of the cost of building a document (bench/cda.py).
    The bytes are the same; code that reads a document parses those bytes.
    """
    return etree.SubElement(parent, tag, attrib or {})


def loinc_code(
    parent: etree._Element,
    tag: str,
    code: str,
    display: str,
    first: dict[str, str] | None = None,
) -> etree._Element:
    """A coded element in LOINC (`first`: attributes written before the code, xsi:type)."""
    return el(
        parent,
        tag,
        {
            **(first or {}),
            "code": code,
            "displayName": display,
            "codeSystem": LOINC,
            "codeSystemName": "LOINC",
        },
    )


def text_el(parent: etree._Element, tag: str, text: str, **attrib: str) -> etree._Element:
    e = el(parent, tag, attrib)
    e.text = text
    return e


def ii(parent: etree._Element, tag: str, value: InstanceId) -> etree._Element:
    attrib = {"root": value.root}
    if value.extension:
        attrib["extension"] = value.extension
    return el(parent, tag, attrib)


_PARIS = ZoneInfo("Europe/Paris")


@lru_cache(maxsize=4096)
def ts(value: str | datetime, tz: ZoneInfo = _PARIS) -> str:
    """An HL7 v3 TS from an HL7 v2 DTM or a datetime.

    CI-SIS times with a time of day carry their UTC offset; a DTM sent without one is
    local time of the establishment, whose offset on that date (summer/winter) is added.
    """
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S%z")
    v = value.strip()
    if len(v) < 12 or "+" in v or "-" in v[8:]:
        return v
    digits = v.split(".")[0]
    fmt = {12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(digits))
    if fmt is None:
        return v
    try:
        local = datetime.strptime(digits, fmt).replace(tzinfo=tz)
    except ValueError:
        return v
    return v + local.strftime("%z")


def new_document(
    ctx: CdaContext,
    template_ids: list[tuple[str, str]],
    code: tuple[str, str, str],
    title: str,
    extra_ns: dict[str | None, str] | None = None,
) -> etree._Element:
    """ClinicalDocument with realmCode … versionNumber, in the order the XSD requires."""
    nsmap: dict[str | None, str] = {"xsi": XSI_NS}
    nsmap.update({k: v for k, v in (extra_ns or {}).items() if k is not None})
    root = etree.Element(_ROOT, nsmap=nsmap)  # HL7 v3 default namespace: see `el`
    el(root, "realmCode", {"code": "FR"})
    el(root, "typeId", {"root": "2.16.840.1.113883.1.3", "extension": "POCD_HD000040"})
    for tpl_root, tpl_ext in template_ids:
        el(root, "templateId", {"root": tpl_root, **({"extension": tpl_ext} if tpl_ext else {})})
    ii(root, "id", ctx.ids.document_id)
    el(
        root,
        "code",
        {"code": code[0], "displayName": code[1], "codeSystem": code[2], "codeSystemName": "LOINC"},
    )
    text_el(root, "title", title)
    el(root, "effectiveTime", {"value": ts(ctx.effective_time)})
    conf = ctx.confidentiality_code
    el(
        root,
        "confidentialityCode",
        {"code": conf, "displayName": _CONFIDENTIALITY[conf], "codeSystem": CONFIDENTIALITY},
    )
    el(root, "languageCode", {"code": "fr-FR"})
    ii(root, "setId", ctx.ids.set_id)
    el(root, "versionNumber", {"value": str(ctx.ids.version)})
    return root


def address(parent: etree._Element, addr: Address | None, use: str = "") -> None:
    if addr is None or addr.is_empty:
        el(parent, "addr", {"nullFlavor": "UNK"})
        return
    a = el(parent, "addr", {"use": use} if use else {})
    # Structured parts only: the CI-SIS address template does not mix them with
    # streetAddressLine.
    if addr.street:
        text_el(a, "streetName", addr.street)
    if getattr(addr, "other", ""):
        text_el(a, "additionalLocator", addr.other)
    if addr.postal_code:
        text_el(a, "postalCode", addr.postal_code)
    if addr.city:
        text_el(a, "city", addr.city)
    if addr.country:
        text_el(a, "country", addr.country)


def telecom(parent: etree._Element, value: str) -> None:
    if value:
        el(parent, "telecom", {"value": value, "use": "WP"})
    else:
        el(parent, "telecom", {"nullFlavor": "UNK"})


def patient_ids(patient: Patient, ctx: CdaContext) -> list[InstanceId]:
    """INS (only when the identity is qualified, PID-32 = VALI) then local ids (IPP)."""
    out = []
    ins = patient.ins
    if ins is not None and patient.identity_status == "VALI" and ins.authority_oid in INS_OIDS:
        out.append(InstanceId(ins.authority_oid, ins.value))
    for ident in patient.local_ids:
        if ident.type_code in ("", "PI", "PN", "MR", "NH") or ident.authority_oid:
            out.append(InstanceId(ident.authority_oid or ctx.patient_id_root, ident.value))
    return out


def record_target(root: etree._Element, patient: Patient, ctx: CdaContext) -> None:
    role = el(el(root, "recordTarget"), "patientRole")
    ids = patient_ids(patient, ctx)
    if not ids:
        raise ValueError("the patient has no identifier usable in a CDA (INS or IPP)")
    for value in ids:
        ii(role, "id", value)
    address(role, patient.address, "H")
    el(role, "telecom", {"nullFlavor": "UNK"})
    p = el(role, "patient", {"classCode": "PSN"})
    name = el(p, "name")
    text_el(name, "family", patient.birth_family, qualifier="BR")
    if patient.given_names:
        text_el(name, "given", patient.given_names)
    if patient.given:
        text_el(name, "given", patient.given, qualifier="BR")
    if patient.used_family:
        text_el(name, "family", patient.used_family, qualifier="CL")
    # Structuration minimale requires @code: an unknown sex is UN, not a nullFlavor.
    sex = patient.sex if patient.sex in ("F", "M") else "UN"
    el(
        p,
        "administrativeGenderCode",
        {"code": sex, "displayName": _GENDER[sex], "codeSystem": ADMINISTRATIVE_GENDER},
    )
    if patient.birth_date:
        el(p, "birthTime", {"value": patient.birth_date})
    else:
        el(p, "birthTime", {"nullFlavor": "UNK"})
    if patient.birth_place_code:
        place = el(el(el(p, "birthplace"), "place"), "addr")
        text_el(place, "county", patient.birth_place_code)


def practitioner_id(p: Practitioner, ctx: CdaContext) -> InstanceId:
    """RPPS/ADELI as the national person id (8 + RPPS, 0 + ADELI), otherwise a local id."""
    ident = p.id.strip()
    if p.id_authority_oid == PERSON_ID_ROOT or p.id_type in ("RPPS", "ADELI", "IDNPS"):
        # Under the national OID without a type (OBR-32 NDL carries none), the length
        # tells: 11 characters is an RPPS number, 9 an ADELI number.
        kind = p.id_type or {11: "RPPS", 9: "ADELI"}.get(len(ident), "")
        if kind == "RPPS" and len(ident) == 11:
            ident = "8" + ident
        elif kind == "ADELI" and len(ident) == 9:
            ident = "0" + ident
        return InstanceId(PERSON_ID_ROOT, ident)
    if p.id_authority_oid:
        return InstanceId(p.id_authority_oid, ident)
    if len(ident) == 12 and ident[0] in "038":  # already a national person id
        return InstanceId(PERSON_ID_ROOT, ident)
    return InstanceId(ctx.practitioner_local_root or ctx.organization.id_root, ident)


#: HL7 v2 XCN prefix → CDA civilité (JDV_J245: M, MME) or title suffix (JDV_J246: DR, PR).
_CIVILITY = {"M": "M", "MR": "M", "MME": "MME", "MLLE": "MME"}
_TITLES = {"DR": "DR", "PR": "PR"}


def person_name(parent: etree._Element, p: Practitioner) -> None:
    name = el(parent, "name")
    key = p.prefix.strip().upper().rstrip(".")
    if key in _CIVILITY:
        text_el(name, "prefix", _CIVILITY[key])
    if p.given:
        text_el(name, "given", p.given)
    text_el(name, "family", p.family or p.id)
    if key in _TITLES:
        text_el(name, "suffix", _TITLES[key])


def organization(parent: etree._Element, tag: str, org: Organization, full: bool = True) -> None:
    o = el(parent, tag)
    ii(o, "id", org.id)
    text_el(o, "name", org.name)
    if full:
        telecom(o, org.telecom)
        address(o, _address(org))


def _address(org: Organization) -> Address:
    a = org.address
    return Address(street=a.street, city=a.city, postal_code=a.postal_code, country=a.country)


def practice_setting(parent: etree._Element, org: Organization) -> None:
    code, display = org.practice_setting
    el(
        parent,
        "standardIndustryClassCode",
        {"code": code, "displayName": display, "codeSystem": PRACTICE_SETTING},
    )


def assigned_professional(
    parent: etree._Element,
    tag: str,
    p: Practitioner,
    ctx: CdaContext,
    role: tuple[str, str] | None,
    org: Organization | None,
) -> etree._Element:
    """assignedAuthor / assignedEntity: id, code, addr, telecom, person, organization."""
    e = el(parent, tag)
    ii(e, "id", practitioner_id(p, ctx))
    if role:
        el(
            e,
            "code",
            {"code": role[0], "displayName": role[1], "codeSystem": PROFESSION_SPECIALITY},
        )
    address(e, _address(org) if org else None)
    telecom(e, org.telecom if org else "")
    person_name(el(e, "assignedPerson"), p)
    if org is not None:
        organization(e, "representedOrganization", org)
    return e


def author(
    root: etree._Element,
    p: Practitioner,
    time: str,
    ctx: CdaContext,
    role: tuple[str, str] | None = None,
) -> None:
    """The author; `role` defaults to the biologist's (CR-BIO), CR-IMG passes the radiologist's."""
    a = el(root, "author")
    el(a, "time", {"value": ts(time)})
    assigned_professional(a, "assignedAuthor", p, ctx, role or ctx.biologist_role, ctx.organization)


def custodian(root: etree._Element, ctx: CdaContext) -> None:
    c = el(el(root, "custodian"), "assignedCustodian")
    organization(c, "representedCustodianOrganization", ctx.organization)


def information_recipients(
    root: etree._Element, people: tuple[Practitioner, ...], ctx: CdaContext
) -> None:
    for p in people:
        r = el(el(root, "informationRecipient"), "intendedRecipient")
        ii(r, "id", practitioner_id(p, ctx))
        person_name(el(r, "informationRecipient"), p)


def legal_authenticator(
    root: etree._Element,
    p: Practitioner,
    time: str,
    ctx: CdaContext,
    role: tuple[str, str] | None = None,
) -> None:
    la = el(root, "legalAuthenticator")
    el(la, "time", {"value": ts(time)})
    el(la, "signatureCode", {"code": "S"})
    e = assigned_professional(la, "assignedEntity", p, ctx, role or ctx.biologist_role, None)
    org = el(e, "representedOrganization")
    ii(org, "id", ctx.organization.id)
    text_el(org, "name", ctx.organization.name)
    telecom(org, ctx.organization.telecom)
    address(org, _address(ctx.organization))
    practice_setting(org, ctx.organization)


def related_document(root: etree._Element, ctx: CdaContext) -> None:
    if ctx.ids.replaces is not None:
        rel = el(root, "relatedDocument", {"typeCode": "RPLC"})
        ii(el(rel, "parentDocument"), "id", ctx.ids.replaces)


def encompassing_encounter(
    root: etree._Element,
    ctx: CdaContext,
    start: str,
    patient_class: str,
    responsible: Practitioner,
    visit_number: str = "",
    role: tuple[str, str] | None = None,
) -> None:
    enc = el(el(root, "componentOf"), "encompassingEncounter")
    if visit_number:
        ii(enc, "id", InstanceId(ctx.patient_id_root, visit_number))
    code, display = _ENCOUNTER.get(patient_class.upper(), ("AMB", "Ambulatoire"))
    el(enc, "code", {"code": code, "displayName": display, "codeSystem": ACT_CODE})
    eff = el(enc, "effectiveTime")
    if start:
        el(eff, "low", {"value": ts(start)})
    else:
        el(eff, "low", {"nullFlavor": "UNK"})
    rp = el(enc, "responsibleParty")
    e = assigned_professional(
        rp, "assignedEntity", responsible, ctx, role or ctx.biologist_role, None
    )
    organization(e, "representedOrganization", ctx.organization)
    fac = el(el(enc, "location"), "healthCareFacility")
    fcode, fdisplay = ctx.organization.facility_type
    el(
        fac,
        "code",
        {"code": fcode, "displayName": fdisplay, "codeSystem": HEALTHCARE_FACILITY_TYPE},
    )


def serialize(root: etree._Element) -> bytes:
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    if root.tag == _ROOT:  # built by `new_document`: declare the HL7 v3 default namespace
        data = data.replace(b"<" + _ROOT.encode(), _ROOT_START, 1)
    return data
