"""CR-BIO (BIO-CR-BIO 2024.01): a lab report as a CDA R2 level 3 document with its PDF copy.

Structure (IHE PaLM + CI-SIS, as in ExemplesCDA/BIO-CR-BIO_2024.01_*.xml): one
FR-CR-BIO-Chapitre section per lab chapter (OBR-24), one FR-CR-BIO-Sous-Chapitre per
battery (OBR) holding the narrative table and one FR-Resultats-examens-de-biologie-medicale
entry (specimens, results, batteries, isolates); then the FR-Document-PDF-copie section
with the PDF (the lab's own from the ORU, else rendered by PFI) so that the DMP receives
one document carrying both the structured and the readable form.
"""

from __future__ import annotations

import re
from decimal import Decimal

from lxml import etree

from pfi.transforms.cda import header as hd
from pfi.transforms.cda.attached_document import AttachedPdf, attached_pdf_entry
from pfi.transforms.cda.context import CdaContext
from pfi.transforms.cda.header import el, loinc_code, text_el, ts
from pfi.transforms.cda.oids import (
    IHE_ACT_CODE,
    LAB_NS,
    LOINC,
    OBSERVATION_INTERPRETATION,
    SNOMED_CT,
    SPECIMEN_TYPE,
)
from pfi.transforms.cda.reference_data import interpretation_display, specimen_type_display
from pfi.transforms.lab.model import (
    Battery,
    Coded,
    LabReport,
    Numeric,
    Observation,
    ReportAction,
    ResultStatus,
    Specimen,
    StructuredNumeric,
    Text,
)

DOCUMENT_CODE = ("11502-2", "CR d'examens biologiques", LOINC)
TITLE = "Compte rendu d'examens biologiques"
TEMPLATES = [
    ("2.16.840.1.113883.2.8.2.1", ""),
    ("1.2.250.1.213.1.1.1.1", ""),
    ("1.3.6.1.4.1.19376.1.3.3", ""),
    ("1.2.250.1.213.1.1.1.55", "2024.01"),
]
#: HL7 table 0074 (OBR-24) → LOINC chapter of the CR-BIO.
CHAPTERS: dict[str, tuple[str, str]] = {
    "CH": ("18719-5", "Biochimie"),
    "HM": ("18723-7", "Hématologie"),
    "CG": ("18720-3", "Hémostase"),
    "MB": ("18725-2", "Microbiologie"),
    "MCB": ("18725-2", "Microbiologie"),
    "PAR": ("18725-2", "Microbiologie"),
    "VR": ("18725-2", "Microbiologie"),
    "SR": ("18727-8", "Sérologie"),
    "IMM": ("18727-8", "Sérologie"),
    "BLB": ("18717-9", "Immuno-hématologie"),
    "TX": ("18728-6", "Toxicologie"),
    "DRUG": ("18728-6", "Toxicologie"),
    "UR": ("18729-4", "Examens urinaires"),
    "BG": ("18767-4", "Gaz du sang"),
}
DEFAULT_CHAPTER = ("26436-6", "Examens de biologie")
#: HL7 v2 coding system names (table 0396) → OIDs, for coded results.
CODE_SYSTEMS = {"LN": LOINC, "SCT": SNOMED_CT, "SNM": SNOMED_CT, "HL70487": SPECIMEN_TYPE}


class CrBioError(ValueError):
    """The report cannot become a CR-BIO (e.g. a withdrawal, which is no document)."""


def chapter_of(battery: Battery) -> tuple[str, str]:
    return CHAPTERS.get(battery.section, DEFAULT_CHAPTER)


def build_cr_bio(report: LabReport, context: CdaContext, pdf: bytes | None = None) -> bytes:
    """The CR-BIO of a validated report, UTF-8 bytes.

    `pdf` is the rendering to embed; by default the lab's own PDF (OBX ED) or, failing
    that, one rendered by PFI. A withdrawal (`ReportAction.WITHDRAW`) or a report still
    waiting for validation is not a document: `CrBioError`.
    """
    if report.action not in (ReportAction.PUBLISH, ReportAction.REPLACE):
        raise CrBioError(f"a report whose action is {report.action.value} is not a document")
    if report.validator is None:
        raise CrBioError("a CR-BIO needs the validating biologist (legal authenticator)")
    if pdf is None:
        pdf = report.lab_pdf
    if pdf is None:
        from pfi.transforms.cda.pdf import render_lab_report_pdf

        pdf = render_lab_report_pdf(report, context)
    return hd.serialize(_document(report, context, pdf))


def _document(report: LabReport, ctx: CdaContext, pdf: bytes) -> etree._Element:
    root = hd.new_document(ctx, TEMPLATES, DOCUMENT_CODE, TITLE, {"lab": LAB_NS})
    hd.record_target(root, report.patient, ctx)
    validator = report.validator
    assert validator is not None
    hd.author(root, validator, report.validated_at, ctx)
    hd.custodian(root, ctx)
    hd.information_recipients(root, report.copy_to, ctx)
    hd.legal_authenticator(root, validator, report.validated_at, ctx)
    if report.ordering_provider is not None:
        _prescriber(root, report, ctx)
    if report.placer_group:
        hd.ii(
            el(el(root, "inFulfillmentOf"), "order"),
            "id",
            hd.InstanceId(ctx.order_id_root, report.placer_group),
        )
    batteries = report.result_batteries
    chapters: dict[tuple[str, str], list[Battery]] = {}
    for b in batteries:
        chapters.setdefault(chapter_of(b), []).append(b)
    _documentation_of(root, report, ctx, list(chapters))
    hd.related_document(root, ctx)
    start = min((s.collected_at for s in report.specimens if s.collected_at), default="") or min(
        (b.observed_at for b in batteries if b.observed_at), default=""
    )
    hd.encompassing_encounter(root, ctx, start, report.patient_class, validator)
    body = el(el(root, "component"), "structuredBody")
    ids = _Ids()
    for (code, display), group in chapters.items():
        _chapter(body, code, display, group, report, ctx, ids)
    if report.comments:
        _comment_section(body, report.comments, ctx)
    _pdf_section(body, pdf, ctx)
    return root


class _Ids:
    """Narrative IDs (unique in the document) for originalText references."""

    def __init__(self) -> None:
        self.n = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"


def _prescriber(root: etree._Element, report: LabReport, ctx: CdaContext) -> None:
    p = report.ordering_provider
    assert p is not None
    part = el(root, "participant", {"typeCode": "REF"})
    el(part, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.3.1.6"})
    when = report.ordered_at or min(
        (b.observed_at for b in report.batteries if b.observed_at), default=""
    )
    time = el(part, "time", {hd.XSI_TYPE: "IVL_TS"})
    el(time, "high", {"value": ts(when)} if when else {"nullFlavor": "UNK"})
    ent = el(part, "associatedEntity", {"classCode": "PROV"})
    hd.ii(ent, "id", hd.practitioner_id(p, ctx))
    el(ent, "addr", {"nullFlavor": "UNK"})
    el(ent, "telecom", {"nullFlavor": "UNK"})
    hd.person_name(el(ent, "associatedPerson"), p)


def _documentation_of(
    root: etree._Element, report: LabReport, ctx: CdaContext, chapters: list[tuple[str, str]]
) -> None:
    validator = report.validator
    assert validator is not None
    for i, (code, display) in enumerate(chapters or [DEFAULT_CHAPTER]):
        ev = el(el(root, "documentationOf"), "serviceEvent")
        if i == 0 and report.filler_group:
            hd.ii(ev, "id", hd.InstanceId(ctx.order_id_root, report.filler_group))
        loinc_code(ev, "code", code, display)
        if i:
            continue
        etree.SubElement(ev, f"{{{LAB_NS}}}statusCode", {"code": "completed"})
        received = (
            min((s.received_at for s in report.specimens if s.received_at), default="")
            or min((b.observed_at for b in report.batteries if b.observed_at), default="")
            or report.validated_at
        )
        eff = el(ev, "effectiveTime")
        el(eff, "low", {"value": ts(received)})
        el(eff, "high", {"value": ts(report.validated_at)})
        perf = el(ev, "performer", {"typeCode": "PRF"})
        el(perf, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.3.1.7"})
        el(el(perf, "time"), "high", {"value": ts(report.validated_at)})
        e = hd.assigned_professional(
            perf, "assignedEntity", validator, ctx, ctx.biologist_role, None
        )
        org = el(e, "representedOrganization")
        hd.ii(org, "id", ctx.organization.id)
        text_el(org, "name", ctx.organization.name)
        hd.telecom(org, ctx.organization.telecom)
        hd.address(org, hd._address(ctx.organization))
        hd.practice_setting(org, ctx.organization)


def _chapter(
    body: etree._Element,
    code: str,
    display: str,
    batteries: list[Battery],
    report: LabReport,
    ctx: CdaContext,
    ids: _Ids,
) -> None:
    sec = el(el(body, "component"), "section")
    el(sec, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.3.2.1"})
    el(sec, "templateId", {"root": "1.2.250.1.213.1.1.2.70"})
    loinc_code(sec, "code", code, display)
    text_el(sec, "title", display.upper())
    for battery in batteries:
        _battery_section(sec, code, display, battery, report, ctx, ids)


def _battery_section(
    chapter: etree._Element,
    chapter_code: str,
    chapter_display: str,
    battery: Battery,
    report: LabReport,
    ctx: CdaContext,
    ids: _Ids,
) -> None:
    sec = el(el(chapter, "component"), "section")
    el(sec, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.3.2.2"})
    el(sec, "templateId", {"root": "1.2.250.1.213.1.1.2.71"})
    if battery.code.is_loinc:
        loinc_code(sec, "code", battery.code.code, battery.code.display or chapter_display)
    else:
        loinc_code(sec, "code", chapter_code, chapter_display)
    text_el(sec, "title", battery.code.display or battery.code.code)
    text = el(sec, "text")
    refs = _narrative(text, battery, ids)
    entry = el(sec, "entry", {"typeCode": "DRIV"})
    el(entry, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.1"})
    el(entry, "templateId", {"root": "1.2.250.1.213.1.1.3.21"})
    act = el(entry, "act", {"classCode": "ACT", "moodCode": "EVN"})
    if battery.code.is_loinc:
        loinc_code(act, "code", battery.code.code, battery.code.display)
    else:
        loinc_code(act, "code", chapter_code, chapter_display)
    el(act, "statusCode", {"code": "completed"})
    for spec in battery.specimens:
        _specimen(act, spec, refs, ctx)
    groups = _groups(battery)
    single = (
        len(groups) == 1
        and len(battery.observations) == 1
        and groups[0][0] is None
        and battery.observations[0].loinc == battery.code
    )
    if single:
        er = el(act, "entryRelationship", {"typeCode": "COMP"})
        _observation(er, battery.observations[0], battery, refs, ctx)
        return
    for organism, observations in groups:
        er = el(act, "entryRelationship", {"typeCode": "COMP"})
        if organism is not None:
            _isolate(er, organism, observations, battery, refs, ctx)
        else:
            _battery_organizer(er, battery, observations, refs, ctx)


def _groups(battery: Battery) -> list[tuple[Observation | None, list[Observation]]]:
    """Results grouped by OBX-4; a group with an organism (SNOMED CT coded) is an isolate."""
    by_sub: dict[str, list[Observation]] = {}
    for o in battery.observations:
        by_sub.setdefault(o.sub_id, []).append(o)
    out: list[tuple[Observation | None, list[Observation]]] = []
    plain: list[Observation] = []
    for sub, obs in by_sub.items():
        organism = next(
            (
                o
                for o in obs
                if isinstance(o.value, Coded) and CODE_SYSTEMS.get(o.value.system) == SNOMED_CT
            ),
            None,
        )
        if sub and organism is not None:
            out.append((organism, [o for o in obs if o is not organism]))
        else:
            plain.extend(obs)
    if plain:
        out.insert(0, (None, plain))
    return out


def _battery_organizer(
    parent: etree._Element,
    battery: Battery,
    observations: list[Observation],
    refs: dict[str, str],
    ctx: CdaContext,
) -> None:
    org = el(parent, "organizer", {"classCode": "BATTERY", "moodCode": "EVN"})
    el(org, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.1.4"})
    el(org, "templateId", {"root": "1.2.250.1.213.1.1.3.78"})
    _code(
        org,
        battery.code if battery.code.is_loinc else None,
        battery.code,
        refs.get("battery", ""),
        ctx,
    )
    el(org, "statusCode", {"code": "completed"})
    if battery.observed_at:
        el(el(org, "effectiveTime"), "low", {"value": ts(battery.observed_at)})
    for o in observations:
        _observation(el(org, "component"), o, battery, refs, ctx)


def _isolate(
    parent: etree._Element,
    organism: Observation,
    observations: list[Observation],
    battery: Battery,
    refs: dict[str, str],
    ctx: CdaContext,
) -> None:
    value = organism.value
    assert isinstance(value, Coded)
    org = el(parent, "organizer", {"classCode": "CLUSTER", "moodCode": "EVN"})
    el(org, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.1.5"})
    el(org, "templateId", {"root": "1.2.250.1.213.1.1.3.79"})
    el(org, "statusCode", {"code": "completed"})
    when = organism.observed_at or battery.observed_at
    if when:
        el(org, "effectiveTime", {"value": ts(when)})
    role = el(el(org, "specimen", {"typeCode": "SPC"}), "specimenRole", {"classCode": "SPEC"})
    hd.ii(role, "id", hd.InstanceId(ctx.uuid(f"isolate/{battery.filler_order}/{organism.sub_id}")))
    ent = el(role, "specimenPlayingEntity", {"classCode": "MIC"})
    code = el(
        ent,
        "code",
        {
            "code": value.code,
            "displayName": value.display or value.code,
            "codeSystem": SNOMED_CT,
            "codeSystemName": "SNOMED CT",
        },
    )
    ref = refs.get(f"obs-value-{organism.set_id}")
    if ref:
        el(el(code, "originalText"), "reference", {"value": f"#{ref}"})
    _observation(el(org, "component"), organism, battery, refs, ctx)
    if observations:
        sub = el(org, "component")
        b = el(sub, "organizer", {"classCode": "BATTERY", "moodCode": "EVN"})
        el(b, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.1.4"})
        el(b, "templateId", {"root": "1.2.250.1.213.1.1.3.78"})
        loinc_code(b, "code", "18769-0", "Antibiogramme")
        el(b, "statusCode", {"code": "completed"})
        for o in observations:
            _observation(el(b, "component"), o, battery, refs, ctx)


def _code(
    parent: etree._Element, loinc: Coded | None, local: Coded, ref: str, ctx: CdaContext
) -> None:
    """LOINC with its French display, or (keep_local) no @code and the local translation."""
    if loinc is not None:
        c = loinc_code(parent, "code", loinc.code, loinc.display or local.display)
        if ref:
            el(el(c, "originalText"), "reference", {"value": f"#{ref}"})
        return
    c = el(parent, "code")
    if ref:
        el(el(c, "originalText"), "reference", {"value": f"#{ref}"})
    el(
        c,
        "translation",
        {
            "code": local.code,
            "displayName": local.display or local.code,
            "codeSystem": ctx.local_code_system_oid,
        },
    )


def _observation(
    parent: etree._Element,
    o: Observation,
    battery: Battery,
    refs: dict[str, str],
    ctx: CdaContext,
) -> None:
    obs = el(parent, "observation", {"classCode": "OBS", "moodCode": "EVN"})
    el(obs, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.1.6"})
    el(obs, "templateId", {"root": "1.2.250.1.213.1.1.3.80"})
    _code(obs, o.loinc, o.local_code, refs.get(f"obs-{o.set_id}", ""), ctx)
    aborted = o.status is ResultStatus.CANCELLED
    el(obs, "statusCode", {"code": "aborted" if aborted else "completed"})
    when = o.observed_at or battery.observed_at
    el(obs, "effectiveTime", {"value": ts(when)} if when else {"nullFlavor": "UNK"})
    if not aborted:
        _value(obs, o, refs)
    for flag in o.abnormal_flags[:1]:
        display = interpretation_display(flag)
        if display:
            el(
                obs,
                "interpretationCode",
                {"code": flag, "displayName": display, "codeSystem": OBSERVATION_INTERPRETATION},
            )
    rr = o.reference_range
    bounded = rr is not None and (rr.low is not None or rr.high is not None)
    # a dimensionless range stays in the narrative (IVL_PQ needs a UCUM unit)
    if rr is not None and bounded and _is_quantity(o) and not _dimensionless(o):
        ref = el(
            el(obs, "referenceRange", {"typeCode": "REFV"}),
            "observationRange",
            {"classCode": "OBS", "moodCode": "EVN.CRT"},
        )
        v = el(ref, "value", {hd.XSI_TYPE: "IVL_PQ"})
        unit = _unit(o)
        if rr.low is not None:
            el(v, "low", {"value": _num(rr.low), "unit": unit})
        if rr.high is not None:
            el(v, "high", {"value": _num(rr.high), "unit": unit})
        el(
            ref,
            "interpretationCode",
            {"code": "N", "displayName": "Normal", "codeSystem": OBSERVATION_INTERPRETATION},
        )


def _is_quantity(o: Observation) -> bool:
    return isinstance(o.value, Numeric | StructuredNumeric)


def _num(d: Decimal) -> str:
    return format(d, "f")


def _unit(o: Observation) -> str:
    return o.unit or to_ucum(o.unit_as_sent) or "1"


#: Lab spellings of units → UCUM (case matters in UCUM: L, not l).
_UCUM = {
    "g/l": "g/L",
    "mg/l": "mg/L",
    "µg/l": "ug/L",
    "ug/l": "ug/L",
    "ng/l": "ng/L",
    "mmol/l": "mmol/L",
    "µmol/l": "umol/L",
    "umol/l": "umol/L",
    "nmol/l": "nmol/L",
    "pmol/l": "pmol/L",
    "g/dl": "g/dL",
    "ui/l": "[IU]/L",
    "mui/l": "m[IU]/L",
    "µui/ml": "u[IU]/mL",
    "u/l": "U/L",
    "g/l ": "g/L",
    "t/l": "10*12/L",
    "g/l(cells)": "10*9/L",
    "giga/l": "10*9/L",
    "tera/l": "10*12/L",
    "/ml": "/mL",
    "/mm3": "/mm3",
    "mm/h": "mm/h",
    "fl": "fL",
    "pg": "pg",
    "%": "%",
    "s": "s",
    "sec": "s",
    "ml/min": "mL/min",
    "µg/ml": "ug/mL",
    "ug/ml": "ug/mL",
    "mg/dl": "mg/dL",
    "meq/l": "meq/L",
}


def to_ucum(unit: str) -> str:
    """Best UCUM spelling of a lab unit; "G/l" (giga) and "g/l" (grams) differ by case."""
    u = unit.strip()
    if not u:
        return ""
    if u == "G/l" or u == "G/L":
        return "10*9/L"
    if u == "T/l" or u == "T/L":
        return "10*12/L"
    return _UCUM.get(u.lower(), u.replace(" ", ""))


_BOUNDS = {
    "<": ("high", "false"),
    "<=": ("high", "true"),
    ">": ("low", "false"),
    ">=": ("low", "true"),
}


def _dimensionless(o: Observation) -> bool:
    """No unit, unity, or a bare UCUM annotation such as {INR}: the kit's UCUM table lists
    none of them, and the 2024.01 examples send such results (INR) as REAL."""
    unit = _unit(o)
    return unit == "1" or bool(re.fullmatch(r"\{[^{}]*\}", unit))


def _quantity(obs: etree._Element, value: Decimal, o: Observation) -> None:
    if _dimensionless(o):
        el(obs, "value", {hd.XSI_TYPE: "REAL", "value": _num(value)})
    else:
        el(obs, "value", {hd.XSI_TYPE: "PQ", "value": _num(value), "unit": _unit(o)})


def _value(obs: etree._Element, o: Observation, refs: dict[str, str]) -> None:
    v = o.value
    if isinstance(v, Numeric):
        _quantity(obs, v.value, o)
    elif isinstance(v, StructuredNumeric):
        unit = {} if _dimensionless(o) else {"unit": _unit(o)}
        interval = "IVL_REAL" if _dimensionless(o) else "IVL_PQ"
        if v.comparator in _BOUNDS and v.num1 is not None and not v.separator:
            side, inclusive = _BOUNDS[v.comparator]
            ivl = el(obs, "value", {hd.XSI_TYPE: interval})
            el(ivl, side, {"value": _num(v.num1), **unit, "inclusive": inclusive})
        elif v.separator == "-" and v.num1 is not None and v.num2 is not None:
            ivl = el(obs, "value", {hd.XSI_TYPE: interval})
            el(ivl, "low", {"value": _num(v.num1), **unit})
            el(ivl, "high", {"value": _num(v.num2), **unit})
        elif v.separator in (":", "/") and v.num1 is not None and v.num2 is not None:
            rto = el(obs, "value", {hd.XSI_TYPE: "RTO_QTY_QTY"})
            el(rto, "numerator", {hd.XSI_TYPE: "INT", "value": _num(v.num1)})
            el(rto, "denominator", {hd.XSI_TYPE: "INT", "value": _num(v.num2)})
        elif v.num1 is not None and v.comparator in ("", "="):
            _quantity(obs, v.num1, o)
        else:
            text_el(obs, "value", v.text, **{hd.XSI_TYPE: "ST"})
    elif isinstance(v, Text):
        text_el(obs, "value", v.text, **{hd.XSI_TYPE: "ST"})
    elif isinstance(v, Coded):
        system = CODE_SYSTEMS.get(v.system)
        if system:
            attrs = {hd.XSI_TYPE: "CD", "code": v.code, "codeSystem": system}
            if v.display:
                attrs["displayName"] = v.display
            el(obs, "value", attrs)
        else:
            cd = el(obs, "value", {hd.XSI_TYPE: "CD"})
            ref = refs.get(f"obs-value-{o.set_id}")
            if ref:
                el(el(cd, "originalText"), "reference", {"value": f"#{ref}"})


def _specimen(act: etree._Element, spec: Specimen, refs: dict[str, str], ctx: CdaContext) -> None:
    er = el(act, "entryRelationship", {"typeCode": "COMP"})
    proc = el(er, "procedure", {"classCode": "PROC", "moodCode": "EVN"})
    el(proc, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.1.2"})
    el(proc, "templateId", {"root": "1.2.250.1.213.1.1.3.77"})
    el(proc, "code", {"nullFlavor": "UNK"})
    eff = el(proc, "effectiveTime")
    if spec.collected_at:
        eff.set("value", ts(spec.collected_at))
    else:
        eff.set("nullFlavor", "UNK")
    role = el(
        el(proc, "participant", {"typeCode": "PRD"}), "participantRole", {"classCode": "SPEC"}
    )
    if spec.id:
        hd.ii(role, "id", hd.InstanceId(ctx.order_id_root, spec.id))
    ent = el(role, "playingEntity")
    display = specimen_type_display(spec.type.code) if spec.type else None
    if spec.type is not None and display:
        el(
            ent,
            "code",
            {"code": spec.type.code, "displayName": display, "codeSystem": SPECIMEN_TYPE},
        )
    else:
        code = el(ent, "code")
        ref = refs.get(f"specimen-{spec.id}")
        if ref:
            el(el(code, "originalText"), "reference", {"value": f"#{ref}"})
    if spec.received_at:
        er2 = el(proc, "entryRelationship", {"typeCode": "COMP"})
        rec = el(er2, "act", {"classCode": "ACT", "moodCode": "EVN"})
        el(rec, "templateId", {"root": "1.3.6.1.4.1.19376.1.3.1.3"})
        el(rec, "templateId", {"root": "1.2.250.1.213.1.1.3.107"})
        el(
            rec,
            "code",
            {
                "code": "SPRECEIVE",
                "displayName": "Échantillon reçu",
                "codeSystem": IHE_ACT_CODE,
                "codeSystemName": "IHEActCode",
            },
        )
        el(rec, "effectiveTime", {"value": ts(spec.received_at)})


def format_value(o: Observation) -> str:
    """The result as a reader sees it (narrative and PDF share it)."""
    v = o.value
    if o.status is ResultStatus.CANCELLED:
        return "non réalisé"
    if isinstance(v, Numeric | StructuredNumeric):
        return v.text
    if isinstance(v, Text):
        return v.text
    if isinstance(v, Coded):
        return v.display or v.code
    return ""


def format_range(o: Observation) -> str:
    rr = o.reference_range
    return rr.text if rr is not None else ""


def _narrative(text: etree._Element, battery: Battery, ids: _Ids) -> dict[str, str]:
    """The human-readable table; returns the IDs entries reference (originalText)."""
    refs: dict[str, str] = {}
    if battery.specimens:
        p = el(text, "paragraph")
        parts = []
        for s in battery.specimens:
            ref = ids.next("specimen")
            refs[f"specimen-{s.id}"] = ref
            name = (specimen_type_display(s.type.code) if s.type else None) or (
                s.type.display if s.type else "Échantillon"
            )
            parts.append((ref, f"{name or s.type.code if s.type else 'Échantillon'}"))
        p.text = "Prélèvement : "
        for ref, label in parts:
            c = text_el(p, "content", label, ID=ref)
            c.tail = " "
    table = el(text, "table", {"border": "0"})
    head = el(el(table, "thead"), "tr")
    bref = ids.next("battery")
    refs["battery"] = bref
    th = el(head, "th")
    text_el(th, "content", battery.code.display or battery.code.code, ID=bref)
    for label in ("Résultat", "Unité", "Valeurs de référence", "Interprétation"):
        text_el(head, "th", label)
    tbody = el(table, "tbody")
    for o in battery.observations:
        tr = el(tbody, "tr")
        ref = ids.next("obs")
        refs[f"obs-{o.set_id}"] = ref
        td = el(tr, "td")
        text_el(
            td,
            "content",
            o.local_code.display or (o.loinc.display if o.loinc else "") or o.local_code.code,
            ID=ref,
        )
        vref = ids.next("val")
        refs[f"obs-value-{o.set_id}"] = vref
        td = el(tr, "td")
        text_el(td, "content", format_value(o), ID=vref)
        text_el(tr, "td", o.unit_as_sent or o.unit)
        text_el(tr, "td", format_range(o))
        text_el(tr, "td", ", ".join(o.abnormal_flags))
        for comment in o.comments:
            ctr = el(tbody, "tr")
            text_el(ctr, "td", comment, colspan="5")
    for comment in battery.comments:
        text_el(text, "paragraph", comment)
    return refs


def _comment_section(body: etree._Element, comments: tuple[str, ...], ctx: CdaContext) -> None:
    """FR-Commentaire-non-code: IHE Document Summary, whose code is 55112-7 (IHE.sch)."""
    sec = el(el(body, "component"), "section")
    el(sec, "templateId", {"root": "2.16.840.1.113883.10.12.201"})
    el(sec, "templateId", {"root": "1.3.6.1.4.1.19376.1.4.1.2.16"})
    el(sec, "templateId", {"root": "1.2.250.1.213.1.1.2.73"})
    hd.ii(sec, "id", hd.InstanceId(ctx.uuid("comments")))
    loinc_code(sec, "code", "55112-7", "Commentaire")
    text_el(sec, "title", "Commentaire")
    text = el(sec, "text")
    for c in comments:
        text_el(text, "paragraph", c)


_PDF_COPY = AttachedPdf(
    media_id="pdf-copy",
    label_id="pdf-copy-label",
    uuid_key="pdf",
    type_code=("55108-5", "Copie du document"),
)


def _pdf_section(body: etree._Element, pdf: bytes, ctx: CdaContext) -> None:
    sec = el(el(body, "component"), "section")
    el(sec, "templateId", {"root": "1.2.250.1.213.1.1.2.243"})
    hd.ii(sec, "id", hd.InstanceId(ctx.uuid("pdf-section")))
    loinc_code(sec, "code", "55108-5", "Copie du document")
    text_el(sec, "title", "Copie du document")
    text = el(sec, "text")
    td = el(el(el(el(text, "table", {"border": "0"}), "tbody"), "tr"), "td")
    el(td, "renderMultiMedia", {"referencedObject": "pdf-copy"})
    text_el(text, "paragraph", "Copie PDF du compte rendu", ID="pdf-copy-label")
    attached_pdf_entry(sec, pdf, ctx, _PDF_COPY)
