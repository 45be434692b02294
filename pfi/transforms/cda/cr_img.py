"""CR-IMG (IMG-CR-IMG 2024.01): a RIS imaging report as a CI-SIS CDA R2 document.

Two levels, chosen per report by `cr_img_plan`, never by configuration:

- Level 3 (structured body, templateId 1.2.250.1.213.1.1.1.45 v2024.01) when the message
  carries what the 2024.01 schematron makes mandatory, for every validated exam:
  the acquisition modality (JDV_ModaliteAcquisition, DCM: the technique entry's
  methodCode, the documentationOf translation), the anatomical location (SNOMED CT in
  JDV_LocalisationAnatomique: the technique entry's targetSiteCode, no nullFlavor
  allowed), the DICOM Study Instance UID (serviceEvent/id and the FR-DICOM-Object-Catalog
  sub-section every FR-DICOM-Acte-imagerie section must hold), and a conclusion
  (FR-DICOM-Conclusion is [1..1] and is the radiologist's own words: PFI never writes one).
- Otherwise level 1 (non-structured body, templateId 1.3.6.1.4.1.19376.1.2.20, as the
  kit's IMG_CR_IMG_2024.01_CDA-R2-Niveau-1 example): the same French header (patient,
  radiologist as author and legal authenticator, documentationOf per exam with what is
  known) and the report as PDF: the RIS's own when it sent one, else rendered by PFI.
  The kit applies only the CI-SIS profiles to level-1 documents (no volet schematron).

Sections of the level-3 body and where the message text goes: indication and NTE
comments → FR-Commentaire-non-code (FR-DICOM-informations-cliniques would demand coded
medical and surgical history a RIS does not have); technique → the FR-DICOM-Acte-imagerie
narrative of its exam; findings and undivided text → FR-DICOM-Resultats; comparison →
FR-DICOM-Examen-comparatif; conclusion → FR-DICOM-Conclusion; addendum →
FR-DICOM-Addendum; a PDF sent by the RIS → FR-Documents-ajoutes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import IntEnum

from lxml import etree

from pfi.transforms.cda import header as hd
from pfi.transforms.cda.attached_document import AttachedPdf, attached_pdf_entry
from pfi.transforms.cda.context import CdaContext
from pfi.transforms.cda.header import el, text_el, ts
from pfi.transforms.cda.oids import DCM, DICOM_NS, LOINC, SNOMED_CT
from pfi.transforms.cda.reference_data import anatomical_location_display, modality_display
from pfi.transforms.cda.summary import InstanceId
from pfi.transforms.imaging.model import (
    CCAM,
    SNOMED_NAMES,
    ImagingExam,
    ImagingReport,
    ReportSection,
    SectionKind,
)
from pfi.transforms.lab.model import Address, Coded, ReportAction

DOCUMENT_CODE = ("18748-4", "CR d'imagerie médicale", LOINC)
TITLE = "Compte rendu d'imagerie médicale"
_BASE_TEMPLATES = [("2.16.840.1.113883.2.8.2.1", ""), ("1.2.250.1.213.1.1.1.1", "")]
STRUCTURED_TEMPLATES = [
    *_BASE_TEMPLATES,
    ("1.2.840.10008.9.1", ""),  # CDA Imaging Report (DICOM Part 20)
    ("1.2.840.10008.9.20", ""),  # General Header
    ("1.2.840.10008.9.21", ""),  # Imaging Header
    ("1.2.250.1.213.1.1.1.45", "2024.01"),  # IMG-CR-IMG
]
LEVEL_1_TEMPLATES = [*_BASE_TEMPLATES, ("1.3.6.1.4.1.19376.1.2.20", "")]
_PS3_20 = f"{{{DICOM_NS}}}"


class CrImgError(ValueError):
    """The report cannot become a CR-IMG (a withdrawal, a report not yet validated)."""


class CrImgLevel(IntEnum):
    NON_STRUCTURED = 1
    STRUCTURED = 3


@dataclass(frozen=True, slots=True)
class CrImgPlan:
    """The level PFI builds and, for level 1, each thing the message lacked for level 3."""

    level: CrImgLevel
    gaps: tuple[str, ...] = ()

    @property
    def explanation(self) -> str:
        if self.level is CrImgLevel.STRUCTURED:
            return "CR-IMG level 3 (IMG-CR-IMG 2024.01)"
        return "CR-IMG level 1 (PDF): " + "; ".join(self.gaps)


def cr_img_plan(report: ImagingReport) -> CrImgPlan:
    """Level 3 when every mandatory part of the 2024.01 model can be filled from the
    message, level 1 otherwise, with the reasons (for logs and the documents stage)."""
    gaps: list[str] = []
    exams = report.validated_exams
    for exam in exams:
        name = f"exam {exam.code.code}"
        if exam.modality is None:
            gaps.append(f"{name}: no acquisition modality (OBR-24 or OBX 121139^^DCM)")
        elif modality_display(exam.modality.code) is None:
            gaps.append(
                f"{name}: modality {exam.modality_as_sent or exam.modality.code!r} is not a "
                "DICOM modality of JDV_ModaliteAcquisition_CISIS"
            )
        if exam.body_site is None:
            gaps.append(
                f"{name}: no anatomical location (OBX 39111-0^^LN or 123014^^DCM, or OBR-15.4)"
            )
        elif not _is_listed_site(exam.body_site):
            gaps.append(
                f"{name}: anatomical location {exam.body_site.code!r} "
                f"({exam.body_site.system or 'no system'}) is not a SNOMED CT code of "
                "JDV_LocalisationAnatomique_CISIS"
            )
        if not exam.study_uid:
            gaps.append(f"{name}: no DICOM Study Instance UID (ZDS-1, or OBX 110180^^DCM)")
    if not report.texts(SectionKind.CONCLUSION):
        gaps.append(
            "no conclusion (OBX 19005-8^^LN or 121076/121077^^DCM, or a 'Conclusion :' heading)"
        )
    if gaps:
        return CrImgPlan(CrImgLevel.NON_STRUCTURED, tuple(gaps))
    return CrImgPlan(CrImgLevel.STRUCTURED)


def build_cr_img(report: ImagingReport, context: CdaContext, pdf: bytes | None = None) -> bytes:
    """The CR-IMG of a validated imaging report, UTF-8 bytes, at the level `cr_img_plan` gives.

    `pdf` is the rendering to carry: by default the RIS's own (OBX ED) or, for a level-1
    document without one, a PDF rendered by PFI. A withdrawal or a report not yet
    validated is no document: `CrImgError`.
    """
    if report.action not in (ReportAction.PUBLISH, ReportAction.REPLACE):
        raise CrImgError(f"a report whose action is {report.action.value} is not a document")
    if report.radiologist is None:
        raise CrImgError("a CR-IMG needs the validating radiologist (legal authenticator)")
    if not report.validated_exams:
        raise CrImgError("no validated exam to document")
    plan = cr_img_plan(report)
    pdf = pdf or report.pdf
    if plan.level is CrImgLevel.STRUCTURED:
        return hd.serialize(_structured(report, context, pdf))
    if pdf is None:
        from pfi.transforms.cda.pdf import render_imaging_report_pdf

        pdf = render_imaging_report_pdf(report, context)
    return hd.serialize(_non_structured(report, context, pdf))


def build_cr_img_with_pdf(report: ImagingReport, context: CdaContext) -> tuple[bytes, bytes]:
    """The CR-IMG and the PDF rendering stored and mailed with it (what the documents
    stage keeps): the RIS's own PDF when it sent one, else one rendered by PFI, which is
    the body of a level-1 document; a level-3 document carries only the RIS's PDF
    (FR-Documents-ajoutes presents it as the RIS's rendering), never PFI's."""
    from pfi.transforms.cda.pdf import render_imaging_report_pdf

    pdf = report.pdf or render_imaging_report_pdf(report, context)
    structured = cr_img_plan(report).level is CrImgLevel.STRUCTURED
    return build_cr_img(report, context, report.pdf if structured else pdf), pdf


# -- header --------------------------------------------------------------------------------


def _header(
    report: ImagingReport, ctx: CdaContext, templates: list[tuple[str, str]]
) -> etree._Element:
    exams = report.validated_exams
    title = f"{TITLE} - " + ", ".join(dict.fromkeys(e.display for e in exams))
    root = hd.new_document(ctx, templates, DOCUMENT_CODE, title, {"ps3-20": DICOM_NS})
    radiologist = report.radiologist
    assert radiologist is not None
    role = ctx.radiologist_role
    hd.record_target(root, report.patient, ctx)
    hd.author(root, radiologist, report.validated_at, ctx, role)
    hd.custodian(root, ctx)
    hd.information_recipients(root, report.copy_to, ctx)
    hd.legal_authenticator(root, radiologist, report.validated_at, ctx, role)
    if report.prescriber is not None:
        _prescriber(root, report, ctx)
    for exam in exams:
        if exam.placer_order and exam.accession_number:
            order = el(el(root, "inFulfillmentOf"), "order")
            hd.ii(order, "id", InstanceId(ctx.order_id_root, exam.placer_order))
            etree.SubElement(
                order,
                _PS3_20 + "accessionNumber",
                {
                    "root": ctx.accession_id_root or ctx.order_id_root,
                    "extension": exam.accession_number,
                },
            )
    for exam in exams:
        _documentation_of(root, exam, report, ctx)
    hd.related_document(root, ctx)
    start = min((e.started_at for e in exams if e.started_at), default="")
    hd.encompassing_encounter(
        root, ctx, start, report.patient_class, radiologist, report.visit_number, role
    )
    return root


def _prescriber(root: etree._Element, report: ImagingReport, ctx: CdaContext) -> None:
    """The referring physician (DICOM Part 20 general header: participant REF)."""
    p = report.prescriber
    assert p is not None
    part = el(root, "participant", {"typeCode": "REF"})
    time = el(part, "time", {hd.XSI_TYPE: "IVL_TS"})
    when = report.ordered_at
    el(time, "high", {"value": ts(when)} if when else {"nullFlavor": "UNK"})
    ent = el(part, "associatedEntity", {"classCode": "PROV"})
    hd.ii(ent, "id", hd.practitioner_id(p, ctx))
    el(ent, "addr", {"nullFlavor": "UNK"})
    el(ent, "telecom", {"nullFlavor": "UNK"})
    hd.person_name(el(ent, "associatedPerson"), p)


def _exam_code(parent: etree._Element, exam: ImagingExam, ctx: CdaContext) -> etree._Element:
    """The exam: LOINC when sent, else the RIS's own code under its local code system, else
    CCAM; a CCAM code that is not the main code follows as the translation ([0..1])."""
    loinc, ccam = exam.loinc, exam.ccam
    local = next((c for c in _sent_codes(exam) if c is not loinc and c is not ccam), None)
    if loinc is not None:
        attrs = {"code": loinc.code, "codeSystem": LOINC, "codeSystemName": "LOINC"}
        display = loinc.display
    elif local is not None:
        attrs = {"code": local.code, "codeSystem": ctx.local_code_system_oid}
        display = local.display
    else:
        assert ccam is not None
        attrs = {"code": ccam.code, "codeSystem": CCAM, "codeSystemName": "CCAM"}
        display = ccam.display
    code = el(parent, "code", {**attrs, "displayName": display or exam.display})
    return code


def _ccam(code: etree._Element, exam: ImagingExam) -> None:
    ccam = exam.ccam
    if ccam is not None and code.get("codeSystem") != CCAM:
        attrs = {"code": ccam.code, "codeSystem": CCAM, "codeSystemName": "CCAM"}
        if ccam.display:
            attrs["displayName"] = ccam.display
        el(code, "translation", attrs)


def _modality_attrs(modality: Coded) -> dict[str, str]:
    return {
        "code": modality.code,
        "displayName": modality_display(modality.code) or modality.display or modality.code,
        "codeSystem": DCM,
        "codeSystemName": "DCM",
    }


def _documentation_of(
    root: etree._Element, exam: ImagingExam, report: ImagingReport, ctx: CdaContext
) -> None:
    ev = el(el(root, "documentationOf"), "serviceEvent", {"classCode": "ACT"})
    if exam.study_uid:
        el(ev, "id", {"root": exam.study_uid})
    code = _exam_code(ev, exam, ctx)
    _ccam(code, exam)
    if exam.modality is not None and modality_display(exam.modality.code):
        t = el(code, "translation", _modality_attrs(exam.modality))
        el(
            el(t, "qualifier"),
            "name",
            {
                "code": "121139",
                "displayName": "Modalité d'imagerie",
                "codeSystem": DCM,
                "codeSystemName": "DCM",
            },
        )
    start = exam.started_at or report.validated_at
    eff = el(ev, "effectiveTime")
    el(eff, "low", {"value": ts(start)})
    if exam.ended_at:
        el(eff, "high", {"value": ts(exam.ended_at)})
    performer = exam.radiologist or report.radiologist
    assert performer is not None
    perf = el(ev, "performer", {"typeCode": "PRF"})
    e = hd.assigned_professional(perf, "assignedEntity", performer, ctx, ctx.radiologist_role, None)
    org = ctx.organization
    represented = el(e, "representedOrganization")
    hd.ii(represented, "id", org.id)
    text_el(represented, "name", org.name)
    hd.telecom(represented, org.telecom)
    hd.address(represented, _address(ctx))
    hd.practice_setting(represented, org)


# -- level 1 -------------------------------------------------------------------------------


def _non_structured(report: ImagingReport, ctx: CdaContext, pdf: bytes) -> etree._Element:
    root = _header(report, ctx, LEVEL_1_TEMPLATES)
    body = el(el(root, "component"), "nonXMLBody")
    text = el(body, "text", {"mediaType": "application/pdf", "representation": "B64"})
    text.text = base64.b64encode(pdf).decode("ascii")
    return root


# -- level 3 -------------------------------------------------------------------------------


def _structured(report: ImagingReport, ctx: CdaContext, pdf: bytes | None) -> etree._Element:
    root = _header(report, ctx, STRUCTURED_TEMPLATES)
    body = el(el(root, "component"), "structuredBody")
    several = len(report.validated_exams) > 1
    exam_names = [e.display for e in report.exams]
    notes = report.texts(SectionKind.INDICATION, SectionKind.COMMENT)
    if notes:
        _comment_section(body, notes, ctx, exam_names if several else None)
    addenda = report.texts(SectionKind.ADDENDUM)
    if addenda:
        _addendum_section(body, report, addenda, ctx)
    for i, exam in enumerate(report.exams):
        if exam.status.is_validated:
            _procedure_section(body, i, exam, report, ctx)
    findings = report.texts(SectionKind.REPORT, SectionKind.FINDINGS)
    if findings:
        sec = _section(
            body,
            ("2.16.840.1.113883.10.20.6.1.2", "1.2.250.1.213.1.1.2.208"),
            ctx.uuid("findings"),
            ("59776-5", "Résultats de l'acte", LOINC),
            "Résultats",
        )
        _narrative(el(sec, "text"), findings, exam_names if several else None)
    comparisons = report.texts(SectionKind.COMPARISON)
    if comparisons:
        sec = _section(
            body,
            ("1.2.840.10008.9.4", "1.2.250.1.213.1.1.2.207"),
            ctx.uuid("comparison"),
            ("18834-2", "Examen de comparaison radiologique", LOINC),
            "Comparaison avec les examens antérieurs",
        )
        _narrative(el(sec, "text"), comparisons, exam_names if several else None)
    sec = _section(
        body,
        ("1.2.840.10008.9.5", "1.2.250.1.213.1.1.2.209"),
        ctx.uuid("conclusion"),
        ("19005-8", "Conclusions", LOINC),
        "Conclusion",
    )
    _narrative(
        el(sec, "text"), report.texts(SectionKind.CONCLUSION), exam_names if several else None
    )
    if pdf is not None:
        _attached_pdf_section(body, pdf, ctx)
    return root


def _section(
    parent: etree._Element,
    templates: tuple[str, ...],
    section_id: str,
    code: tuple[str, str, str],
    title: str,
    code_system_name: str = "LOINC",
) -> etree._Element:
    sec = el(el(parent, "component"), "section")
    for root in templates:
        el(sec, "templateId", {"root": root})
    hd.ii(sec, "id", InstanceId(section_id))
    el(
        sec,
        "code",
        {
            "code": code[0],
            "displayName": code[1],
            "codeSystem": code[2],
            "codeSystemName": code_system_name,
        },
    )
    text_el(sec, "title", title)
    return sec


def _paragraphs(parent: etree._Element, text: str, content_id: str = "") -> None:
    """Text as paragraphs (blank lines) with line breaks kept; the first can carry an ID."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()] or [text]
    for n, block in enumerate(blocks):
        p = el(parent, "paragraph")
        target = el(p, "content", {"ID": content_id}) if content_id and n == 0 else p
        lines = block.strip("\n").split("\n")
        target.text = lines[0]
        for line in lines[1:]:
            br = el(target, "br")
            br.tail = line


_KIND_LABELS = {SectionKind.INDICATION: "Indication", SectionKind.COMMENT: "Commentaire"}


def _narrative(
    text: etree._Element,
    parts: tuple[ReportSection, ...],
    exam_names: list[str] | None,
    label_kinds: bool = False,
) -> None:
    """Report text as written; the exam's name heads its part when the report has several
    exams, and `label_kinds` names each kind where one section mixes them."""
    current_exam: int | None = None
    current_label = ""
    for part in parts:
        if exam_names is not None and part.exam != current_exam:
            current_exam, current_label = part.exam, ""
            text_el(el(text, "paragraph"), "content", exam_names[part.exam], styleCode="Bold")
        label = _KIND_LABELS.get(part.kind, "") if label_kinds else ""
        if label and label != current_label:
            text_el(el(text, "paragraph"), "content", label, styleCode="Italics")
            current_label = label
        _paragraphs(text, part.text)


def _comment_section(
    body: etree._Element,
    notes: tuple[ReportSection, ...],
    ctx: CdaContext,
    exam_names: list[str] | None,
) -> None:
    kinds = {n.kind for n in notes}
    if kinds == {SectionKind.COMMENT}:
        title = "Commentaire"
    elif kinds == {SectionKind.INDICATION}:
        title = "Indication et renseignements cliniques"
    else:
        title = "Indication, renseignements cliniques et commentaires"
    sec = _section(
        body,
        ("1.2.250.1.213.1.1.2.73",),
        ctx.uuid("comments"),
        ("55112-7", "Commentaire", LOINC),
        title,
    )
    _narrative(el(sec, "text"), notes, exam_names, label_kinds=len(kinds) > 1)


def _addendum_section(
    body: etree._Element,
    report: ImagingReport,
    addenda: tuple[ReportSection, ...],
    ctx: CdaContext,
) -> None:
    sec = _section(
        body,
        ("1.2.840.10008.9.6", "1.2.250.1.213.1.1.2.210"),
        ctx.uuid("addendum"),
        ("55107-7", "Addendum", LOINC),
        "Addendum",
    )
    _narrative(el(sec, "text"), addenda, None)
    radiologist = report.radiologist
    assert radiologist is not None
    a = el(sec, "author")
    el(a, "time", {"value": ts(report.validated_at)})
    hd.assigned_professional(
        a, "assignedAuthor", radiologist, ctx, ctx.radiologist_role, ctx.organization
    )


def _procedure_section(
    body: etree._Element, i: int, exam: ImagingExam, report: ImagingReport, ctx: CdaContext
) -> None:
    modality, site = exam.modality, exam.body_site
    assert modality is not None and site is not None
    n = i + 1
    sec = _section(
        body,
        ("1.2.840.10008.9.3", "1.2.250.1.213.1.1.2.206"),
        ctx.uuid(f"procedure/{n}"),
        ("55111-9", "Description de l'acte d'imagerie", LOINC),
        f"Technique d'imagerie : {exam.display}",
    )
    text = el(sec, "text")
    table = el(text, "table", {"border": "0"})
    head = el(el(table, "thead"), "tr")
    for label in ("Acte d'imagerie", "Modalité d'imagerie", "Localisation anatomique", "Date"):
        text_el(head, "th", label)
    row = el(el(table, "tbody"), "tr")
    codes = " ".join(f"[{c.system or 'local'} : {c.code}]" for c in _sent_codes(exam))
    text_el(el(row, "td"), "content", f"{exam.display} {codes}".strip(), ID=f"acte-{n}")
    text_el(el(row, "td"), "content", _modality_attrs(modality)["displayName"], ID=f"acte-{n}-mod")
    site_name = anatomical_location_display(site.code) or site.display or site.code
    text_el(el(row, "td"), "content", site_name, ID=f"acte-{n}-loc")
    text_el(row, "td", _when(exam.started_at))
    techniques = tuple(s for s in report.texts(SectionKind.TECHNIQUE) if s.exam == i)
    for k, part in enumerate(techniques):
        _paragraphs(text, part.text, f"acte-{n}-description" if k == 0 else "")

    proc = el(el(sec, "entry"), "procedure", {"classCode": "PROC", "moodCode": "EVN"})
    el(proc, "templateId", {"root": "1.2.840.10008.9.14"})
    el(proc, "templateId", {"root": "1.2.250.1.213.1.1.3.153"})
    hd.ii(proc, "id", InstanceId(ctx.uuid(f"technique/{n}")))
    code = _exam_code(proc, exam, ctx)
    el(el(code, "originalText"), "reference", {"value": f"#acte-{n}"})
    _ccam(code, exam)
    if techniques:
        el(el(proc, "text"), "reference", {"value": f"#acte-{n}-description"})
    if exam.started_at:
        el(proc, "effectiveTime", {"value": ts(exam.started_at)})
    method = el(proc, "methodCode", _modality_attrs(modality))
    el(el(method, "originalText"), "reference", {"value": f"#acte-{n}-mod"})
    target = el(
        proc,
        "targetSiteCode",
        {
            "code": site.code,
            "displayName": site_name,
            "codeSystem": SNOMED_CT,
            "codeSystemName": "SNOMED CT",
        },
    )
    el(el(target, "originalText"), "reference", {"value": f"#acte-{n}-loc"})
    _catalog_section(sec, n, exam, ctx)


def _catalog_section(parent: etree._Element, n: int, exam: ImagingExam, ctx: CdaContext) -> None:
    """FR-DICOM-Object-Catalog: the study (and series) the report refers to.

    The 2024.01 schematron counts exactly one series per study entry and one SOP instance
    per series, so the entry carries the first series that names an instance; every series
    is listed in the narrative.
    """
    sec = _section(
        parent,
        ("2.16.840.1.113883.10.20.6.1.1", "1.2.250.1.213.1.1.2.217"),
        ctx.uuid(f"catalog/{n}"),
        ("121181", "Catalogue d'objets DICOM", DCM),
        "Catalogue d'objets DICOM",
        "DCM",
    )
    sec.set("classCode", "DOCSECT")
    sec.set("moodCode", "EVN")
    text = el(sec, "text")
    table = el(text, "table", {"border": "0"})
    head = el(el(table, "thead"), "tr")
    for label in ("Examen (Study Instance UID)", "Série (Series Instance UID)", "Modalité"):
        text_el(head, "th", label)
    tbody = el(table, "tbody")
    rows = exam.series or ()
    if not rows:
        row = el(tbody, "tr")
        text_el(row, "td", exam.study_uid)
        text_el(row, "td", "")
        text_el(row, "td", _modality_attrs(exam.modality)["displayName"] if exam.modality else "")
    for k, series in enumerate(rows, start=1):
        row = el(tbody, "tr")
        text_el(row, "td", exam.study_uid)
        text_el(row, "td", series.uid)
        modality = series.modality or exam.modality
        name = _modality_attrs(modality)["displayName"] if modality else ""
        text_el(el(row, "td"), "content", name, ID=f"acte-{n}-serie-{k}-mod")
    chosen = next(
        (
            (k, s)
            for k, s in enumerate(rows, start=1)
            if s.instances and modality_display((s.modality or exam.modality or Coded("")).code)
        ),
        None,
    )
    if chosen is None:
        return
    k, series = chosen
    modality = series.modality or exam.modality
    assert modality is not None
    study = el(el(sec, "entry"), "act", {"classCode": "ACT", "moodCode": "EVN"})
    el(study, "templateId", {"root": "1.2.840.10008.9.16"})
    el(study, "templateId", {"root": "1.2.250.1.213.1.1.3.155"})
    el(study, "id", {"root": exam.study_uid})
    el(
        study,
        "code",
        {"code": "113014", "displayName": "Examen", "codeSystem": DCM, "codeSystemName": "DCM"},
    )
    el(
        study,
        "effectiveTime",
        {"value": ts(exam.started_at)} if exam.started_at else {"nullFlavor": "UNK"},
    )
    act = el(
        el(study, "entryRelationship", {"typeCode": "COMP"}),
        "act",
        {"classCode": "ACT", "moodCode": "EVN"},
    )
    el(act, "templateId", {"root": "1.2.840.10008.9.17"})
    el(act, "templateId", {"root": "1.2.250.1.213.1.1.3.156"})
    el(act, "id", {"root": series.uid})
    code = el(
        act,
        "code",
        {"code": "113015", "displayName": "Série", "codeSystem": DCM, "codeSystemName": "DCM"},
    )
    q = el(code, "qualifier")
    el(
        q,
        "name",
        {"code": "121139", "displayName": "Modalité", "codeSystem": DCM, "codeSystemName": "DCM"},
    )
    value = el(q, "value", _modality_attrs(modality))
    el(el(value, "originalText"), "reference", {"value": f"#acte-{n}-serie-{k}-mod"})
    instance = series.instances[0]
    obs = el(
        el(act, "entryRelationship", {"typeCode": "COMP"}),
        "observation",
        {"classCode": "DGIMG", "moodCode": "EVN"},
    )
    el(obs, "templateId", {"root": "1.2.840.10008.9.18"})
    el(obs, "templateId", {"root": "1.2.250.1.213.1.1.3.157"})
    el(obs, "id", {"root": instance.sop_instance_uid})
    el(
        obs,
        "code",
        {
            "code": instance.sop_class_uid,
            "codeSystem": "1.2.840.10008.2.6.1",
            "codeSystemName": "DCMUID",
        },
    )


_RIS_PDF = AttachedPdf(
    media_id="pdf-attached",
    label_id="pdf-attached-title",
    uuid_key="attached",
    component_type="COMP",
)


def _attached_pdf_section(body: etree._Element, pdf: bytes, ctx: CdaContext) -> None:
    """FR-Documents-ajoutes: the RIS's own PDF of the report, as the reader knows it."""
    sec = _section(
        body,
        ("1.2.250.1.213.1.1.2.37",),
        ctx.uuid("attached"),
        ("55107-7", "Documents ajoutés", LOINC),
        "Documents ajoutés",
    )
    text = el(sec, "text")
    table = el(text, "table", {"border": "0"})
    text_el(
        el(el(el(table, "thead"), "tr"), "th"),
        "content",
        "Compte rendu du système d'imagerie (PDF)",
        ID="pdf-attached-title",
    )
    el(
        el(el(el(table, "tbody"), "tr"), "td"),
        "renderMultiMedia",
        {"referencedObject": "pdf-attached"},
    )
    attached_pdf_entry(sec, pdf, ctx, _RIS_PDF)


# -- helpers -------------------------------------------------------------------------------


def _address(ctx: CdaContext) -> Address:
    a = ctx.organization.address
    return Address(street=a.street, city=a.city, postal_code=a.postal_code, country=a.country)


def _is_listed_site(site: Coded) -> bool:
    return (
        site.system.upper() in SNOMED_NAMES and anatomical_location_display(site.code) is not None
    )


def _sent_codes(exam: ImagingExam) -> list[Coded]:
    return [c for c in (exam.code, exam.alternate_code) if c is not None]


def _when(value: str) -> str:
    v = value.strip()
    if len(v) < 8:
        return v
    out = f"{v[6:8]}/{v[4:6]}/{v[0:4]}"
    if len(v) >= 12:
        out += f" {v[8:10]}:{v[10:12]}"
    return out
