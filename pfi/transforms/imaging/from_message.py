"""Read a RIS report message (ORU^R01, or MDM^T02/T04/T10/T11) into an `ImagingReport`.

HL7 fields PFI maps (IHE RAD / HL7 France usage):
- OBR-4 exam code (LOINC, CCAM or local; second triplet kept), OBR-2/OBR-3 placer/filler,
  OBR-18 accession number, OBR-7/OBR-8 exam start/end, OBR-22 report time, OBR-24
  modality (DICOM code; HL7 0074 NMR/NMS/VUS translated), OBR-15.4 body site (SNOMED CT),
  OBR-16 prescriber, OBR-25 status, OBR-28 copies, OBR-32 validating radiologist;
  ORC-1 CA/OC/CR cancels, ORC-2/3 fill missing order numbers, ORC-12 prescriber;
- ZDS-1 DICOM Study Instance UID (IHE RAD scheduled workflow);
- OBX: report text (TX/FT/ST) with its section from OBX-3 (`obx_codes`), UIDs (study,
  series, SOP instance/class grouped by OBX-4), modality, body site, PDF (ED), other
  values (NM, SN, CE...) as findings lines; NTE as comments;
- MDM: TXA-12/13 document numbers, TXA-14/15 order numbers, TXA-17 completion status
  (AU/LA = validated), TXA-19 availability (CA = cancelled), TXA-22 authenticator and
  time (else TXA-10, TXA-5), the event (T02 original, T04 status change with content,
  T10 replacement, T11 cancellation). T04 is read as HL7 v2 defines it (the report's new
  status, e.g. dictated then authenticated): validated → published (a new version when
  one exists), TXA-19 CA → cancelled. In the CI-SIS transmission volet T04 is a deletion,
  but that volet's messages carry their CDA and never reach this reader.
Everything that would make the document wrong rather than incomplete is an AE naming the
field. A message that carries a finished CDA (CI-SIS transmission volet, way a) is not a
RIS report to rebuild: AE pointing to `read_cda_transmission`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pfi.transforms.cda.transmission import is_cda_transmission
from pfi.transforms.hl7 import ErrorCode, ErrorLocation, Hl7Error, Hl7Message, Segment
from pfi.transforms.imaging.model import (
    SNOMED_NAMES,
    DicomInstance,
    ImagingExam,
    ImagingReport,
    ImagingSeries,
    ImagingStatus,
    ReportSection,
    SectionKind,
)
from pfi.transforms.imaging.obx_codes import ObxRole, obx_role, section_kind, split_headings
from pfi.transforms.lab.from_oru import read_coded, read_embedded, read_ndl, read_patient, read_xcn
from pfi.transforms.lab.model import Coded, EmbeddedDocument, Patient, Practitioner, ReportAction

#: A DICOM UID: dot-separated numbers without leading zeros, at most 64 characters.
_DICOM_UID = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))+")
_OBR_STATUS = {
    "F": ImagingStatus.FINAL,
    "C": ImagingStatus.CORRECTED,
    "X": ImagingStatus.CANCELLED,
    "P": ImagingStatus.PRELIMINARY,
    "R": ImagingStatus.PRELIMINARY,
    "I": ImagingStatus.PRELIMINARY,
    "S": ImagingStatus.PRELIMINARY,
    "A": ImagingStatus.PRELIMINARY,
}
#: OBX-11 values: kept (text of a report being written or validated), or left out.
_OBX_KEPT = frozenset({"F", "C", "P", "R", "I", "S", "A"})
_OBX_DROPPED = frozenset({"D", "X", "W"})  # deleted, cannot be obtained, wrong
_TEXT_TYPES = frozenset({"TX", "FT", "ST"})
_UID_TYPES = frozenset({"HD", "ST", "RP", "UI", "ID", "IS"})
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
#: HL7 table 0074 diagnostic sections that name one DICOM modality; DICOM codes are used as is.
_HL7_0074_MODALITY = {"NMR": "MR", "NMS": "NM", "VUS": "US"}
_MDM_EVENTS = {
    "T02": ReportAction.PUBLISH,
    "T04": ReportAction.PUBLISH,
    "T10": ReportAction.REPLACE,
    "T11": ReportAction.WITHDRAW,
}
_VALIDATED_TXA = frozenset({"AU", "LA"})  # authenticated, legally authenticated
_PENDING_TXA = frozenset({"DI", "DO", "IN", "IP", "PA"})


def build_imaging_report(msg: Hl7Message) -> ImagingReport:
    """The report a RIS ORU^R01 or MDM^T02/T04/T10/T11 carries; `Hl7Error` (AE) when it
    cannot make a CR-IMG, saying which field is wrong."""
    if is_cda_transmission(msg):
        raise Hl7Error(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "this message carries a finished CDA per the CI-SIS transmission volet "
            "(MSH-21 CISIS_CDA_HL7_V2): it is read by read_cda_transmission, not rebuilt",
            ErrorLocation("MSH", field=21),
        )
    code, event = msg.header.message_code, msg.header.trigger_event
    if code == "ORU" and event in ("R01", ""):
        reader = _Reader(msg, mdm=False)
    elif code == "MDM" and event in _MDM_EVENTS:
        reader = _Reader(msg, mdm=True)
    elif code == "MDM":
        raise Hl7Error(
            ErrorCode.UNSUPPORTED_EVENT_CODE,
            f"MDM^{event or '(empty)'}: PFI builds imaging reports from MDM^T02 (original), "
            "T04 (status change with content), T10 (replacement) and T11 (cancellation)",
            ErrorLocation("MSH", field=9, component=2),
        )
    else:
        raise Hl7Error(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"{msg.header.message_type} is not an imaging report message (ORU^R01 or MDM^T02)",
            ErrorLocation("MSH", field=9),
        )
    pid = msg.first("PID")
    if pid is None:
        raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE_ERROR, "PID is missing", ErrorLocation("PID"))
    patient = read_patient(pid)
    for seg in msg.segments:
        reader.feed(seg)
    return reader.finish(patient)


@dataclass
class _Exam:
    """An OBR being read, with the UIDs its OBX carried (grouped by OBX-4)."""

    index: int
    seg: Segment
    code: Coded
    status: ImagingStatus | None
    modality: Coded | None = None
    body_site: Coded | None = None
    study_uid: str = ""
    groups: dict[str, dict[ObxRole, str]] = field(default_factory=dict)
    group_modality: dict[str, Coded] = field(default_factory=dict)


class _Reader:
    """Walks the segments once, keeping the current OBR for its OBX, NTE and ZDS."""

    def __init__(self, msg: Hl7Message, *, mdm: bool) -> None:
        self.msg = msg
        self.mdm = mdm
        self.exams: list[_Exam] = []
        self.sections: list[ReportSection] = []
        self.attachments: list[EmbeddedDocument] = []
        self.orc: list[Segment] = []
        self.pending_study_uid = ""
        self.obx_index = 0
        self.txa: Segment | None = None

    # -- segments -------------------------------------------------------------------------

    def feed(self, seg: Segment) -> None:
        if seg.name == "ORC":
            self.orc.append(seg)
        elif seg.name == "OBR":
            self._obr(seg)
        elif seg.name == "ZDS":
            self._study_uid(seg.get(1, 1).strip(), ErrorLocation("ZDS", field=1))
        elif seg.name == "TXA":
            self.txa = seg
        elif seg.name == "OBX":
            self.obx_index += 1
            self._obx(seg, self.obx_index)
        elif seg.name == "NTE":
            reps = seg.repetitions(3)
            text = "\n".join(seg.text(3, r) for r in range(1, len(reps) + 1)).strip()
            if text:
                self.sections.append(ReportSection(SectionKind.COMMENT, text, "", self._current))

    @property
    def _current(self) -> int:
        return len(self.exams) - 1 if self.exams else 0

    def _obr(self, seg: Segment) -> None:
        index = len(self.exams) + 1
        code = read_coded(seg, 4)
        if code is None:
            raise Hl7Error(
                ErrorCode.REQUIRED_FIELD_MISSING,
                "OBR-4 (universal service identifier) is empty: the CR-IMG documents an exam",
                ErrorLocation("OBR", sequence=index, field=4),
            )
        raw = seg.get(25).strip().upper()
        status = None
        if raw:
            status = _OBR_STATUS.get(raw)
            if status is None:
                raise Hl7Error(
                    ErrorCode.TABLE_VALUE_NOT_FOUND,
                    f"OBR-25 = {raw!r}: PFI handles F, C, X and the not-yet-validated P, R, I, "
                    "S, A",
                    ErrorLocation("OBR", sequence=index, field=25),
                )
        elif not self.mdm:
            raise Hl7Error(
                ErrorCode.REQUIRED_FIELD_MISSING,
                "OBR-25 (result status) is empty",
                ErrorLocation("OBR", sequence=index, field=25),
            )
        exam = _Exam(index, seg, code, status, body_site=_sub_coded(seg, 15, 4))
        self.exams.append(exam)
        if self.pending_study_uid:
            exam.study_uid, self.pending_study_uid = self.pending_study_uid, ""

    def _study_uid(self, uid: str, where: ErrorLocation) -> None:
        if not uid:
            return
        _check_uid(uid, where, "Study Instance UID")
        if not self.exams:
            self.pending_study_uid = uid
            return
        exam = self.exams[-1]
        if exam.study_uid and exam.study_uid != uid:
            raise Hl7Error(
                ErrorCode.DATA_TYPE_ERROR,
                f"two Study Instance UIDs for exam {exam.index} ({exam.study_uid}, {uid}): "
                "one exam is one DICOM study",
                where,
            )
        exam.study_uid = uid

    def _obx(self, seg: Segment, index: int) -> None:
        status = seg.get(11).strip().upper()
        if status in _OBX_DROPPED:
            return
        if status not in _OBX_KEPT:
            raise Hl7Error(
                ErrorCode.TABLE_VALUE_NOT_FOUND if status else ErrorCode.REQUIRED_FIELD_MISSING,
                f"OBX-11 = {status!r}: PFI reads F, C, P, R, I, S, A (kept) and D, X, W (left out)"
                if status
                else "OBX-11 (result status) is empty",
                ErrorLocation("OBX", sequence=index, field=11),
            )
        if not self.exams and not self.mdm:
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE_ERROR,
                "OBX before any OBR: the report text must follow the exam it reports",
                ErrorLocation("OBX", sequence=index),
            )
        value_type = seg.get(2).strip().upper()
        code = read_coded(seg, 3) or _name_only(seg)
        if code is None:
            raise Hl7Error(
                ErrorCode.REQUIRED_FIELD_MISSING,
                "OBX-3 (observation identifier) is empty",
                ErrorLocation("OBX", sequence=index, field=3),
            )
        if value_type == "ED":
            self._attachment(seg, index)
            return
        role = obx_role(code)
        if role is not None:
            self._role(seg, index, role, value_type)
            return
        if value_type in _TEXT_TYPES:
            reps = seg.repetitions(5)
            text = "\n".join(seg.text(5, r) for r in range(1, len(reps) + 1))
            if text.strip() and text.strip() != '""':
                self._text(section_kind(code), code.display or code.code, text)
            return
        value = _value_text(seg, value_type)
        if value:
            label = code.display or code.code
            unit = seg.get(6, 2).strip() or seg.get(6, 1).strip()
            line = f"{label} : {value}{' ' + unit if unit else ''}"
            self.sections.append(ReportSection(SectionKind.FINDINGS, line, "", self._current))

    def _text(self, kind: SectionKind, title: str, text: str) -> None:
        if kind is not SectionKind.REPORT:
            self.sections.append(ReportSection(kind, text.strip("\n"), title, self._current))
            return
        for part_kind, heading, part in split_headings(text):
            self.sections.append(
                ReportSection(
                    part_kind or SectionKind.REPORT, part, heading or title, self._current
                )
            )

    def _attachment(self, seg: Segment, index: int) -> None:
        doc = read_embedded(seg, index)
        if doc.media_type != "application/pdf":
            raise Hl7Error(
                ErrorCode.DATA_TYPE_ERROR,
                f"OBX-5 embeds {seg.get(5, 2)}^{seg.get(5, 3)} data, not a PDF: a CR-IMG carries "
                "the report as PDF only "
                "(images are referenced by their DICOM UIDs)",
                ErrorLocation("OBX", sequence=index, field=5),
            )
        self.attachments.append(doc)

    def _role(self, seg: Segment, index: int, role: ObxRole, value_type: str) -> None:
        where = ErrorLocation("OBX", sequence=index, field=5)
        if role in (ObxRole.MODALITY, ObxRole.BODY_SITE):
            coded = read_coded(seg, 5) if value_type in _CODED_TYPES else None
            if coded is None:
                text = seg.text(5).strip()
                coded = Coded(text, "", "DCM" if role is ObxRole.MODALITY else "") if text else None
            if coded is None:
                raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, f"OBX-5 ({role}) is empty", where)
            if not self.exams:
                raise Hl7Error(
                    ErrorCode.SEGMENT_SEQUENCE_ERROR,
                    f"OBX {role} before any OBR: it must follow the exam it describes",
                    ErrorLocation("OBX", sequence=index),
                )
            exam = self.exams[-1]
            sub = seg.get(4).strip()
            if role is ObxRole.BODY_SITE:
                exam.body_site = coded
                return
            if sub:
                exam.group_modality[sub] = coded
            if not sub or exam.modality is None:
                exam.modality = coded
            return
        uid = seg.get(5, 1).strip()
        if not uid:
            raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, f"OBX-5 ({role}) is empty", where)
        if role is ObxRole.SR_INSTANCE_UID:
            return  # the RIS's DICOM SR object: the CDA references images, not the SR
        _check_uid(uid, where, role.value)
        if role is ObxRole.STUDY_UID:
            self._study_uid(uid, where)
            return
        if not self.exams:
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE_ERROR,
                f"OBX {role} before any OBR",
                ErrorLocation("OBX", sequence=index),
            )
        group = self.exams[-1].groups.setdefault(seg.get(4).strip(), {})
        if role in group and group[role] != uid:
            raise Hl7Error(
                ErrorCode.DATA_TYPE_ERROR,
                f"two values for {role} in OBX-4 group {seg.get(4).strip() or '(none)'}: "
                "give each series its own OBX-4 sub-id",
                ErrorLocation("OBX", sequence=index, field=4),
            )
        group[role] = uid

    # -- the report -----------------------------------------------------------------------

    def finish(self, patient: Patient) -> ImagingReport:
        header = self.msg.header
        if not self.exams:
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE_ERROR,
                f"{header.message_type} without OBR: the CR-IMG documents an exam (OBR-4)",
                ErrorLocation("OBR"),
            )
        if self.mdm and self.txa is None:
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE_ERROR, "MDM without TXA", ErrorLocation("TXA")
            )
        status, action = self._mdm_status() if self.mdm else self._oru_status()
        exams = tuple(self._exam(e, status if self.mdm else None) for e in self.exams)
        radiologist, validated_at = self._validation(exams)
        sections = self.sections
        if action in (ReportAction.PUBLISH, ReportAction.REPLACE):
            if radiologist is None:
                raise Hl7Error(
                    ErrorCode.REQUIRED_FIELD_MISSING,
                    "a validated imaging report without the radiologist who validated it "
                    + ("(TXA-22 or TXA-10)" if self.mdm else "(OBR-32)")
                    + ": the CR-IMG needs its author and legal authenticator",
                    ErrorLocation("TXA", field=22) if self.mdm else ErrorLocation("OBR", field=32),
                )
            if not sections and not self.attachments:
                raise Hl7Error(
                    ErrorCode.REQUIRED_FIELD_MISSING,
                    "a validated imaging report without report text (OBX TX/FT/ST) nor PDF "
                    "(OBX ED)",
                    ErrorLocation("OBX"),
                )
        first = self.exams[0].seg
        orc = self.orc[0] if self.orc else None
        pv1 = self.msg.first("PV1")
        prescriber = read_xcn(first, 16) or (read_xcn(orc, 12) if orc else None)
        copies: dict[str, Practitioner] = {}
        for e in self.exams:
            for rep in range(1, len(e.seg.repetitions(28)) + 1):
                if p := read_xcn(e.seg, 28, rep):
                    copies.setdefault(p.id or p.family, p)
        txa = self.txa
        return ImagingReport(
            control_id=header.control_id,
            message_type=header.message_type,
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            message_time=header.message_datetime,
            patient=patient,
            exams=exams,
            sections=tuple(sections),
            status=status,
            action=action,
            radiologist=radiologist,
            validated_at=validated_at or header.message_datetime,
            prescriber=prescriber,
            copy_to=tuple(copies.values()),
            attachments=tuple(self.attachments),
            visit_number=pv1.get(19, 1).strip() if pv1 else "",
            patient_class=pv1.get(2).strip() if pv1 else "",
            ordered_at=(orc.get(9, 1).strip() if orc else "") or first.get(6, 1).strip(),
            document_number=txa.get(12, 1).strip() if txa else "",
            parent_document_number=txa.get(13, 1).strip() if txa else "",
        )

    def _oru_status(self) -> tuple[ImagingStatus, ReportAction]:
        statuses = [e.status for e in self.exams]
        cancelled_orders = [o.get(1).strip().upper() in ("CA", "OC", "CR") for o in self.orc]
        if (cancelled_orders and all(cancelled_orders)) or all(
            s is ImagingStatus.CANCELLED for s in statuses
        ):
            return ImagingStatus.CANCELLED, ReportAction.WITHDRAW
        if any(s is ImagingStatus.CORRECTED for s in statuses):
            return ImagingStatus.CORRECTED, ReportAction.REPLACE
        if any(s is ImagingStatus.FINAL for s in statuses):
            return ImagingStatus.FINAL, ReportAction.PUBLISH
        return ImagingStatus.PRELIMINARY, ReportAction.WAIT

    def _mdm_status(self) -> tuple[ImagingStatus, ReportAction]:
        txa = self.txa
        assert txa is not None
        action = _MDM_EVENTS[self.msg.header.trigger_event]
        if action is ReportAction.WITHDRAW or (
            self.msg.header.trigger_event == "T04" and txa.get(19).strip().upper() == "CA"
        ):
            return ImagingStatus.CANCELLED, ReportAction.WITHDRAW
        completion = txa.get(17).strip().upper()
        if not completion:
            raise Hl7Error(
                ErrorCode.REQUIRED_FIELD_MISSING,
                "TXA-17 (document completion status) is empty: PFI publishes AU or LA reports",
                ErrorLocation("TXA", field=17),
            )
        if completion in _PENDING_TXA:
            return ImagingStatus.PRELIMINARY, ReportAction.WAIT
        if completion not in _VALIDATED_TXA:
            raise Hl7Error(
                ErrorCode.TABLE_VALUE_NOT_FOUND,
                f"TXA-17 = {completion!r}: PFI reads AU, LA (validated) and DI, DO, IN, IP, PA "
                "(not yet validated)",
                ErrorLocation("TXA", field=17),
            )
        if action is ReportAction.REPLACE:
            return ImagingStatus.CORRECTED, action
        return ImagingStatus.FINAL, action

    def _exam(self, e: _Exam, forced: ImagingStatus | None) -> ImagingExam:
        seg = e.seg
        orc = self.orc[min(e.index, len(self.orc)) - 1] if self.orc else None
        txa = self.txa
        status = forced or e.status
        assert status is not None
        modality_sent = seg.get(24).strip().upper()
        modality = e.modality or _modality_from_obr24(modality_sent)
        return ImagingExam(
            code=e.code,
            status=status,
            alternate_code=read_coded(seg, 4, 4),
            placer_order=seg.get(2, 1).strip()
            or (orc.get(2, 1).strip() if orc else "")
            or (txa.get(14, 1).strip() if txa else ""),
            filler_order=seg.get(3, 1).strip()
            or (orc.get(3, 1).strip() if orc else "")
            or (txa.get(15, 1).strip() if txa else ""),
            accession_number=seg.get(18, 1).strip(),
            started_at=seg.get(7, 1).strip(),
            ended_at=seg.get(8, 1).strip(),
            reported_at=seg.get(22, 1).strip(),
            modality=modality,
            modality_as_sent=modality_sent,
            body_site=_body_site(e.body_site),
            study_uid=e.study_uid,
            series=_series(e, modality),
            radiologist=read_ndl(seg, 32),
        )

    def _validation(self, exams: tuple[ImagingExam, ...]) -> tuple[Practitioner | None, str]:
        """Who validated the report, and when."""
        if self.mdm:
            txa = self.txa
            assert txa is not None
            who = (
                read_xcn(txa, 22)
                or read_xcn(txa, 10)
                or next((e.radiologist for e in exams if e.radiologist), None)
                or read_xcn(txa, 5)
            )
            when = txa.get(22, 15).strip() or txa.get(6, 1).strip() or txa.get(4, 1).strip()
            return who, when
        validated = [e for e in exams if e.status.is_validated] or list(exams)
        who = next((e.radiologist for e in validated if e.radiologist), None)
        when = max((e.reported_at for e in validated if e.reported_at), default="")
        return who, when


def _name_only(seg: Segment) -> Coded | None:
    """IHE RAD-28 OBX-3 "^Study Instance UID": a name without a code."""
    name = seg.get(3, 2).strip()
    return Coded("", name, seg.get(3, 3).strip()) if name else None


def _sub_coded(seg: Segment, n: int, component: int) -> Coded | None:
    """A CWE held in the subcomponents of one component (OBR-15.4 body site: code&text&system)."""
    code = seg.get(n, component, 1).strip()
    if not code:
        return None
    return Coded(code, seg.get(n, component, 2).strip(), seg.get(n, component, 3).strip())


def _body_site(site: Coded | None) -> Coded | None:
    """Keep the site as sent; the CR-IMG plan checks it against the CI-SIS value set."""
    if site is None or not site.code:
        return None
    system = site.system.upper()
    if system in SNOMED_NAMES or not system:
        return Coded(site.code, site.display, "SCT")
    return site


def _modality_from_obr24(value: str) -> Coded | None:
    """OBR-24 as IHE RAD uses it (a DICOM modality), or an HL7 0074 value naming one."""
    if not value:
        return None
    return Coded(_HL7_0074_MODALITY.get(value, value), "", "DCM")


def _check_uid(uid: str, where: ErrorLocation, what: str) -> None:
    if len(uid) > 64 or not _DICOM_UID.fullmatch(uid):
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR,
            f"{what} {uid!r} is not a DICOM UID (digits and dots, no leading zero, "
            "at most 64 characters)",
            where,
        )


def _series(e: _Exam, exam_modality: Coded | None) -> tuple[ImagingSeries, ...]:
    out = []
    for sub, group in e.groups.items():
        uid = group.get(ObxRole.SERIES_UID)
        if not uid:
            continue
        instances = ()
        if ObxRole.SOP_INSTANCE_UID in group and ObxRole.SOP_CLASS_UID in group:
            instances = (
                DicomInstance(group[ObxRole.SOP_CLASS_UID], group[ObxRole.SOP_INSTANCE_UID]),
            )
        out.append(ImagingSeries(uid, e.group_modality.get(sub) or exam_modality, instances))
    return tuple(out)


def _value_text(seg: Segment, value_type: str) -> str:
    """Other OBX values (NM, SN, CE...) as a reader would read them."""
    if value_type in _CODED_TYPES:
        return seg.get(5, 2).strip() or seg.get(5, 1).strip()
    if value_type == "SN":
        return "".join(seg.get(5, c).strip() for c in (1, 2, 3, 4))
    return seg.text(5).strip()
