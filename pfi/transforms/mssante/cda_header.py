"""What PFI reads from a CDA R2 header it did not build: ids, type, patient identity, author.

Inbound MSSanté documents come from other establishments; PFI has to find the patient
(INS first), the document identity (for replacement and deletion) and a few labels to
forward the document to the DPI. The header layout is fixed by the CI-SIS "structuration
minimale" volet; anything missing comes back empty rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from pfi.transforms.cda.summary import InstanceId

HL7 = "urn:hl7-org:v3"
NS = {"h": HL7}
#: INS assigning authorities: NIR, NIA, and the test/demo NIR roots used by the ANS kits.
INS_OIDS: dict[str, str] = {
    "1.2.250.1.213.1.4.8": "INS-NIR",
    "1.2.250.1.213.1.4.9": "INS-NIA",
    "1.2.250.1.213.1.4.10": "INS-NIR-TEST",
    "1.2.250.1.213.1.4.11": "INS-NIR-DEMO",
}

#: lxml parser for foreign XML: no DTD, no entities, no network; big base64 PDFs allowed.
SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, remove_comments=True
)


class CdaError(ValueError):
    """The bytes are not a CDA R2 ClinicalDocument PFI can read."""


@dataclass(frozen=True, slots=True)
class CodedValue:
    code: str
    code_system: str = ""
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class CdaPatient:
    ids: tuple[InstanceId, ...] = ()
    birth_family_name: str = ""
    used_family_name: str = ""
    first_given_name: str = ""
    given_names: str = ""
    used_given_name: str = ""
    birth_date: str = ""  # HL7 TS as written (YYYYMMDD...)
    sex: str = ""
    birth_place_code: str = ""

    @property
    def ins(self) -> InstanceId | None:
        return next((i for i in self.ids if i.root in INS_OIDS and i.extension), None)

    @property
    def family_name(self) -> str:
        return self.birth_family_name or self.used_family_name

    @property
    def given_name(self) -> str:
        return self.first_given_name or self.used_given_name or self.given_names.split(" ")[0]

    def missing_ins_traits(self) -> list[str]:
        """INS traits absent from the header (CI-SIS: birth names, birth date, sex, place)."""
        missing = []
        if not self.birth_family_name:
            missing.append("birth family name (family qualifier BR)")
        if not (self.first_given_name or self.given_names):
            missing.append("first given name")
        if len(self.birth_date) < 8:
            missing.append("birth date (birthTime)")
        if self.sex not in ("F", "M", "U"):
            missing.append("sex (administrativeGenderCode)")
        return missing


@dataclass(frozen=True, slots=True)
class CdaPerson:
    id: InstanceId | None = None
    family_name: str = ""
    given_name: str = ""
    organisation_id: InstanceId | None = None
    organisation_name: str = ""


@dataclass(frozen=True, slots=True)
class CdaHeader:
    id: InstanceId
    set_id: InstanceId | None
    version: int | None
    code: CodedValue
    title: str
    effective_time: str
    confidentiality: CodedValue | None
    language: str
    patient: CdaPatient
    author: CdaPerson
    custodian_id: InstanceId | None = None
    custodian_name: str = ""
    parent_id: InstanceId | None = None  # relatedDocument/parentDocument/id
    relation: str = ""  # relatedDocument/@typeCode (RPLC, APND...)
    template_ids: tuple[str, ...] = field(default=())


def parse_cda(cda: bytes) -> etree._Element:
    """Parse the bytes as XML and check the root is an HL7 v3 ClinicalDocument."""
    try:
        root = etree.fromstring(cda, SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise CdaError(f"CDA is not well-formed XML: {exc}") from None
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        raise CdaError(f"root element is {root.tag!r}, expected {{{HL7}}}ClinicalDocument")
    return root


def read_cda_header(cda: bytes | etree._Element) -> CdaHeader:
    root = parse_cda(cda) if isinstance(cda, bytes) else cda
    doc_id = _id(root.find("h:id", NS))
    if doc_id is None:
        raise CdaError("ClinicalDocument/id is missing: the document cannot be identified")
    code_el = root.find("h:code", NS)
    version = _attr(root.find("h:versionNumber", NS), "value")
    related = root.find("h:relatedDocument", NS)
    return CdaHeader(
        id=doc_id,
        set_id=_id(root.find("h:setId", NS)),
        version=int(version) if version.isdigit() else None,
        code=_coded(code_el) or CodedValue(""),
        title=_text(root.find("h:title", NS)),
        effective_time=_attr(root.find("h:effectiveTime", NS), "value"),
        confidentiality=_coded(root.find("h:confidentialityCode", NS)),
        language=_attr(root.find("h:languageCode", NS), "code"),
        patient=_patient(root.find("h:recordTarget/h:patientRole", NS)),
        author=_author(root.find("h:author/h:assignedAuthor", NS)),
        custodian_id=_id(
            root.find("h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id", NS)
        ),
        custodian_name=_text(
            root.find(
                "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:name", NS
            )
        ),
        parent_id=_id(related.find("h:parentDocument/h:id", NS)) if related is not None else None,
        relation=_attr(related, "typeCode"),
        template_ids=tuple(_attr(t, "root") for t in root.findall("h:templateId", NS)),
    )


def _attr(el: etree._Element | None, name: str) -> str:
    return (el.get(name) or "").strip() if el is not None else ""


def _text(el: etree._Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _id(el: etree._Element | None) -> InstanceId | None:
    if el is None or not el.get("root"):
        return None
    return InstanceId(el.get("root", "").strip(), (el.get("extension") or "").strip())


def _coded(el: etree._Element | None) -> CodedValue | None:
    if el is None or not el.get("code"):
        return None
    return CodedValue(el.get("code", ""), el.get("codeSystem", ""), el.get("displayName", ""))


def _patient(role: etree._Element | None) -> CdaPatient:
    if role is None:
        return CdaPatient()
    ids = tuple(i for i in (_id(e) for e in role.findall("h:id", NS)) if i is not None)
    patient = role.find("h:patient", NS)
    if patient is None:
        return CdaPatient(ids=ids)
    families: dict[str, str] = {}
    givens: dict[str, str] = {}
    for name in patient.findall("h:name", NS):
        for fam in name.findall("h:family", NS):
            families.setdefault(fam.get("qualifier", ""), _text(fam))
        for giv in name.findall("h:given", NS):
            givens.setdefault(giv.get("qualifier", ""), _text(giv))
    birth_family = families.get("BR") or families.get("", "")
    return CdaPatient(
        ids=ids,
        birth_family_name=birth_family,
        used_family_name=families.get("SP") or families.get("CL") or "",
        first_given_name=givens.get("BR", ""),
        given_names=givens.get("", ""),
        used_given_name=givens.get("CL", ""),
        birth_date=_attr(patient.find("h:birthTime", NS), "value"),
        sex=_attr(patient.find("h:administrativeGenderCode", NS), "code"),
        birth_place_code=_text(patient.find("h:birthplace/h:place/h:addr/h:county", NS)),
    )


def _author(assigned: etree._Element | None) -> CdaPerson:
    if assigned is None:
        return CdaPerson()
    person = assigned.find("h:assignedPerson/h:name", NS)
    org = assigned.find("h:representedOrganization", NS)
    return CdaPerson(
        id=_id(assigned.find("h:id", NS)),
        family_name=_text(person.find("h:family", NS)) if person is not None else "",
        given_name=_text(person.find("h:given", NS)) if person is not None else "",
        organisation_id=_id(org.find("h:id", NS)) if org is not None else None,
        organisation_name=_text(org.find("h:name", NS)) if org is not None else "",
    )
