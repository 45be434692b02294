"""Read a lab ORU^R01 (IHE LAB-3 style, HL7 2.3.1–2.5.1) into a `LabReport`.

Everything that would make the CR-BIO wrong rather than incomplete is an AE naming the
field: a final result without a value, a number that is not one, a PDF that is not a
PDF, a validated report without its validating biologist. Optional parts (copies,
specimens, ranges, comments) are simply absent from the model when absent from the
message.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation

from pfi.transforms.hl7 import ErrorCode, ErrorLocation, Hl7Error, Hl7Message, Segment
from pfi.transforms.lab.model import (
    Address,
    Battery,
    Coded,
    EmbeddedDocument,
    Identifier,
    LabReport,
    Numeric,
    Observation,
    ObservationValue,
    Patient,
    Practitioner,
    ReferenceRange,
    ReportAction,
    ResultStatus,
    Specimen,
    StructuredNumeric,
    Text,
)

_OID = re.compile(r"[0-2](\.\d+)+")
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)")
_RANGE = re.compile(
    r"^\s*(?P<low>[+-]?\d+(?:[.,]\d+)?)?\s*(?:-|–|à)\s*(?P<high>[+-]?\d+(?:[.,]\d+)?)\s*$"
)
_BOUND = re.compile(r"^\s*(?P<op><=?|>=?)\s*(?P<num>[+-]?\d+(?:[.,]\d+)?)\s*$")
_TEXT_TYPES = frozenset({"ST", "TX", "FT"})
_CODED_TYPES = frozenset({"CE", "CWE", "CNE"})
_SEX = {"F": "F", "M": "M"}


def build_lab_report(msg: Hl7Message) -> LabReport:
    """The report an ORU^R01 carries; `Hl7Error` (AE) when it cannot make a CR-BIO."""
    if msg.header.message_code != "ORU" or msg.header.trigger_event not in ("R01", ""):
        raise Hl7Error(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"{msg.header.message_type} is not a lab result message (ORU^R01)",
            ErrorLocation("MSH", field=9),
        )
    pid = msg.first("PID")
    if pid is None:
        raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE_ERROR, "PID is missing", ErrorLocation("PID"))
    patient = read_patient(pid)
    builder = _ReportBuilder(msg)
    for seg in msg.segments:
        builder.feed(seg)
    return builder.finish(patient)


class _ReportBuilder:
    """Walks the segments once, keeping the current OBR / OBX for NTE and SPM."""

    def __init__(self, msg: Hl7Message) -> None:
        self.msg = msg
        self.batteries: list[dict] = []
        self.report_comments: list[str] = []
        self.current_obx: dict | None = None
        self.lab_pdf: bytes | None = None
        self.obr_index = 0
        self.obx_index = 0
        self.orc_cancel: list[bool] = []
        self.placer_group = ""

    def feed(self, seg: Segment) -> None:
        if seg.name == "ORC":
            self.orc_cancel.append(seg.get(1).strip().upper() in ("CA", "OC", "CR"))
            if not self.placer_group:
                self.placer_group = seg.get(4, 1).strip()
        elif seg.name == "OBR":
            self.obr_index += 1
            self.batteries.append(_battery_fields(seg, self.obr_index, self.msg))
            self.current_obx = None
        elif seg.name == "OBX":
            self.obx_index += 1
            if not self.batteries:
                raise Hl7Error(
                    ErrorCode.SEGMENT_SEQUENCE_ERROR,
                    "OBX before any OBR: results must belong to an order",
                    ErrorLocation("OBX", sequence=self.obx_index),
                )
            obx = _observation_fields(seg, self.obx_index)
            if obx is None:  # OBX-11 = D: the sender deletes this result
                self.current_obx = None
                return
            if isinstance(obx["value"], EmbeddedDocument):
                if obx["value"].media_type == "application/pdf" and self.lab_pdf is None:
                    self.lab_pdf = obx["value"].data
                self.current_obx = None
                return
            self.batteries[-1]["observations"].append(obx)
            self.current_obx = obx
        elif seg.name == "NTE":
            text = "\n".join(seg.text(3, r) for r in range(1, len(seg.repetitions(3)) + 1))
            if not text.strip():
                return
            if self.current_obx is not None:
                self.current_obx["comments"].append(text)
            elif self.batteries:
                self.batteries[-1]["comments"].append(text)
            else:
                self.report_comments.append(text)
        elif seg.name == "SPM" and self.batteries:
            self.batteries[-1]["specimens"].append(_spm_specimen(seg))
            self.current_obx = None

    def finish(self, patient: Patient) -> LabReport:
        if not self.batteries:
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE_ERROR,
                "ORU^R01 without OBR: no order, no report",
                ErrorLocation("OBR"),
            )
        batteries = tuple(_battery(b) for b in self.batteries)
        statuses = [b.status for b in batteries]
        any_correction = any(b.status is ResultStatus.CORRECTED for b in batteries) or any(
            o.status is ResultStatus.CORRECTED for b in batteries for o in b.observations
        )
        if (self.orc_cancel and all(self.orc_cancel)) or all(
            s is ResultStatus.CANCELLED for s in statuses
        ):
            action = ReportAction.WITHDRAW
        elif any(s.is_validated for s in statuses):
            action = ReportAction.REPLACE if any_correction else ReportAction.PUBLISH
        else:
            action = ReportAction.WAIT
        first = self.batteries[0]
        validator = next((b.validator for b in batteries if b.validator), None) or next(
            (o.validator for b in batteries for o in b.observations if o.validator), None
        )
        if action in (ReportAction.PUBLISH, ReportAction.REPLACE):
            if validator is None:
                raise Hl7Error(
                    ErrorCode.REQUIRED_FIELD_MISSING,
                    "validated results without the validating biologist (OBR-32 or OBX-16): "
                    "a CR-BIO needs its legal authenticator",
                    ErrorLocation("OBR", field=32),
                )
            if not any(b.status.is_validated and b.observations for b in batteries):
                raise Hl7Error(
                    ErrorCode.REQUIRED_FIELD_MISSING,
                    "validated orders (OBR-25 F/C) without any result OBX",
                    ErrorLocation("OBX"),
                )
        copies: dict[str, Practitioner] = {}
        for b in self.batteries:
            for p in b["copy_to"]:
                copies.setdefault(p.id or p.family, p)
        validated_at = max((b.reported_at for b in batteries if b.reported_at), default="")
        pv1 = self.msg.first("PV1")
        orc = self.msg.first("ORC")
        ordering = first["ordering"] or (read_xcn(orc, 12) if orc else None)
        return LabReport(
            control_id=self.msg.header.control_id,
            sending_application=self.msg.header.sending_application,
            sending_facility=self.msg.header.sending_facility,
            message_time=self.msg.header.message_datetime,
            patient=patient,
            batteries=batteries,
            action=action,
            ordering_provider=ordering,
            copy_to=tuple(copies.values()),
            validator=validator,
            validated_at=validated_at or self.msg.header.message_datetime,
            placer_group=self.placer_group or first["placer"],
            filler_group=first["filler"],
            comments=tuple(self.report_comments),
            lab_pdf=self.lab_pdf,
            visit_number=pv1.get(19, 1).strip() if pv1 else "",
            ordered_at=(orc.get(9, 1).strip() if orc else "") or first["requested_at"],
            patient_class=pv1.get(2).strip() if pv1 else "",
        )


def _oid_of(seg: Segment, n: int, comp: int, rep: int = 1) -> tuple[str, str]:
    """(namespace, OID) of an HD held in components comp.1 / comp.2."""
    ns = seg.get(n, comp, 1, rep).strip()
    oid = seg.get(n, comp, 2, rep).strip()
    if not oid and _OID.fullmatch(ns):
        oid = ns
    return ns, oid


def read_patient(pid: Segment) -> Patient:
    """PID as the CDA header needs it (INS, IPP, birth names, birth date); shared with
    the imaging reader, which follows the same PAM-FR conventions."""
    ids = []
    for rep in range(1, len(pid.repetitions(3)) + 1):
        value = pid.get(3, 1, rep=rep).strip()
        if not value:
            continue
        ns, oid = _oid_of(pid, 3, 4, rep)
        ids.append(Identifier(value, ns, oid, pid.get(3, 5, rep=rep).strip().upper()))
    birth, used = None, None
    for rep in range(1, len(pid.repetitions(5)) + 1):
        kind = pid.get(5, 7, rep=rep).strip().upper()
        if kind in ("L", "") and birth is None:
            birth = rep
        elif kind == "D" and used is None:
            used = rep
    if birth is None:
        birth = used
    if birth is None or not pid.get(5, 1, rep=birth).strip():
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "PID-5 (patient name) is empty",
            ErrorLocation("PID", field=5),
        )
    address = Address()
    birth_place = pid.get(23).strip()
    for rep in range(1, len(pid.repetitions(11)) + 1):
        kind = pid.get(11, 7, rep=rep).strip().upper()
        if kind == "BDL":
            birth_place = birth_place or pid.get(11, 9, rep=rep).strip()
        elif address.is_empty:
            address = Address(
                street=pid.get(11, 1, rep=rep).strip(),
                other=pid.get(11, 2, rep=rep).strip(),
                city=pid.get(11, 3, rep=rep).strip(),
                postal_code=pid.get(11, 5, rep=rep).strip(),
                country=pid.get(11, 6, rep=rep).strip(),
            )
    birth_date = pid.get(7, 1).strip()[:8]
    if not birth_date:
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "PID-7 (birth date) is empty: the CDA header requires it (Structuration minimale)",
            ErrorLocation("PID", field=7),
        )
    if not re.fullmatch(r"\d{4}(\d{2}(\d{2})?)?", birth_date):
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR,
            f"PID-7 = {birth_date!r} is not a date (YYYYMMDD)",
            ErrorLocation("PID", field=7),
        )
    return Patient(
        ids=tuple(ids),
        birth_family=pid.get(5, 1, rep=birth).strip(),
        given=pid.get(5, 2, rep=birth).strip(),
        given_names=pid.get(5, 3, rep=birth).strip(),
        used_family=pid.get(5, 1, rep=used).strip() if used else "",
        birth_date=birth_date,
        sex=_SEX.get(pid.get(8).strip().upper(), "U"),
        identity_status=pid.get(32).strip().upper(),
        address=address,
        birth_place_code=birth_place,
    )


def read_xcn(seg: Segment, n: int, rep: int = 1) -> Practitioner | None:
    """An XCN professional (RPPS in component 1, authority OID in 9.2, type in 13)."""
    pid = seg.get(n, 1, rep=rep).strip()
    family = seg.get(n, 2, rep=rep).strip()
    if not pid and not family:
        return None
    _ns, oid = _oid_of(seg, n, 9, rep)
    return Practitioner(
        id=pid,
        family=family,
        given=seg.get(n, 3, rep=rep).strip(),
        prefix=seg.get(n, 6, rep=rep).strip(),
        id_authority_oid=oid,
        id_type=seg.get(n, 13, rep=rep).strip().upper(),
    )


def read_ndl(seg: Segment, n: int) -> Practitioner | None:
    """OBR-32 (NDL): CNN in component 1, subcomponents id&family&given&...&prefix."""
    ident = seg.get(n, 1, 1).strip()
    family = seg.get(n, 1, 2).strip()
    if not ident and not family:
        return None
    return Practitioner(
        id=ident,
        family=family,
        given=seg.get(n, 1, 3).strip(),
        prefix=seg.get(n, 1, 6).strip(),
        id_authority_oid=seg.get(n, 1, 10).strip(),
    )


def read_coded(seg: Segment, n: int, start: int = 1) -> Coded | None:
    """A CE/CWE triplet starting at component `start` (4 reads the alternate triplet)."""
    code = seg.get(n, start).strip()
    if not code:
        return None
    return Coded(code, seg.get(n, start + 1).strip(), seg.get(n, start + 2).strip())


def _status(seg: Segment, n: int, where: ErrorLocation) -> ResultStatus:
    value = seg.get(n).strip().upper()
    if not value:
        raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, f"{where} (result status) is empty", where)
    try:
        return ResultStatus(value)
    except ValueError:
        raise Hl7Error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"{where} = {value!r}: PFI handles F, C, X, P (and D for OBX-11)",
            where,
        ) from None


def _battery_fields(seg: Segment, index: int, msg: Hl7Message) -> dict:
    code = read_coded(seg, 4)
    if code is None:
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "OBR-4 (universal service identifier) is empty",
            ErrorLocation("OBR", sequence=index, field=4),
        )
    status = _status(seg, 25, ErrorLocation("OBR", sequence=index, field=25))
    if status is ResultStatus.DELETED:
        raise Hl7Error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            "OBR-25 = D is not an order status (use X to cancel)",
            ErrorLocation("OBR", sequence=index, field=25),
        )
    specimens = []
    source = seg.get(15, 1, 1).strip()
    if source:
        specimens.append(
            Specimen(
                id=seg.get(3, 1).strip() or f"OBR{index}",
                type=Coded(source, seg.get(15, 1, 2).strip(), "HL70487"),
                collected_at=seg.get(7, 1).strip(),
                received_at=seg.get(14, 1).strip(),
            )
        )
    return {
        "index": index,
        "code": code,
        "status": status,
        "placer": seg.get(2, 1).strip(),
        "filler": seg.get(3, 1).strip(),
        "observed_at": seg.get(7, 1).strip(),
        "requested_at": seg.get(6, 1).strip(),
        "received_at": seg.get(14, 1).strip(),
        "reported_at": seg.get(22, 1).strip(),
        "section": seg.get(24).strip().upper(),
        "ordering": read_xcn(seg, 16),
        "copy_to": [
            p for r in range(1, len(seg.repetitions(28)) + 1) if (p := read_xcn(seg, 28, r))
        ],
        "validator": read_ndl(seg, 32),
        "parent": seg.get(26, 1).strip(),
        "specimens": specimens,
        "observations": [],
        "comments": [],
    }


def _spm_specimen(seg: Segment) -> Specimen:
    type_ = read_coded(seg, 4)
    return Specimen(
        id=seg.get(2, 1, 1).strip() or seg.get(2, 2, 1).strip() or seg.get(1).strip(),
        type=Coded(type_.code, type_.display, type_.system or "HL70487") if type_ else None,
        collected_at=seg.get(17, 1).strip(),
        received_at=seg.get(18).strip(),
        site=read_coded(seg, 8),
    )


def _battery(b: dict) -> Battery:
    observations = tuple(Observation(**o) for o in b["observations"])
    return Battery(
        code=b["code"],
        status=b["status"],
        observations=observations,
        placer_order=b["placer"],
        filler_order=b["filler"],
        observed_at=b["observed_at"],
        reported_at=b["reported_at"],
        section=b["section"],
        specimens=tuple(b["specimens"]),
        validator=b["validator"],
        comments=tuple(b["comments"]),
        parent_result=b["parent"],
    )


def _decimal(text: str, where: ErrorLocation, what: str) -> Decimal:
    t = text.strip()
    if "," in t and "." not in t:
        t = t.replace(",", ".")  # French decimal comma: unambiguous without a dot
    if not _NUMBER.fullmatch(t):
        raise Hl7Error(ErrorCode.DATA_TYPE_ERROR, f"{what} = {text!r} is not a number", where)
    try:
        return Decimal(t)
    except InvalidOperation:
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR, f"{what} = {text!r} is not a number", where
        ) from None


def _reference_range(text: str) -> ReferenceRange | None:
    text = text.strip()
    if not text:
        return None
    if m := _RANGE.match(text):
        low = m.group("low")
        return ReferenceRange(
            low=Decimal(low.replace(",", ".")) if low else None,
            high=Decimal(m.group("high").replace(",", ".")),
            text=text,
        )
    if m := _BOUND.match(text):
        num = Decimal(m.group("num").replace(",", "."))
        if m.group("op").startswith("<"):
            return ReferenceRange(high=num, text=text)
        return ReferenceRange(low=num, text=text)
    return ReferenceRange(text=text)


def _observation_fields(seg: Segment, index: int) -> dict | None:
    status = _status(seg, 11, ErrorLocation("OBX", sequence=index, field=11))
    if status is ResultStatus.DELETED:
        return None
    value_type = seg.get(2).strip().upper()
    code = read_coded(seg, 3)
    alternate = read_coded(seg, 3, 4)
    if code is None:
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "OBX-3 (observation identifier) is empty",
            ErrorLocation("OBX", sequence=index, field=3),
        )
    loinc = None
    local = code
    if code.is_loinc:
        loinc, local = code, (alternate or code)
    elif alternate is not None and alternate.is_loinc:
        loinc = alternate
    value = _value(seg, index, value_type, status)
    unit_sent = seg.get(6, 1).strip()
    unit_system = seg.get(6, 3).strip().upper()
    return {
        "set_id": int(seg.get(1)) if seg.get(1).strip().isdigit() else index,
        "value_type": value_type,
        "local_code": local,
        "loinc": loinc,
        "value": value,
        "status": status,
        "unit": unit_sent if unit_system == "UCUM" else "",
        "unit_as_sent": unit_sent,
        "reference_range": _reference_range(seg.get(7)),
        "abnormal_flags": tuple(
            f.strip() for f in seg.repetitions(8) if f.strip() and f.strip() != '""'
        ),
        "observed_at": seg.get(14, 1).strip(),
        "method": read_coded(seg, 17),
        "comments": [],
        "sub_id": seg.get(4).strip(),
        "validator": read_xcn(seg, 16),
    }


def _value(seg: Segment, index: int, value_type: str, status: ResultStatus) -> ObservationValue:
    where = ErrorLocation("OBX", sequence=index, field=5)
    raw = seg.raw(5)
    if not raw.strip() or raw.strip() == '""':
        if status is ResultStatus.CANCELLED or status is ResultStatus.PRELIMINARY:
            return None
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            f"OBX-5 (value) is empty for a result with status {status.value}",
            where,
        )
    if value_type == "NM":
        text = seg.text(5).strip()
        return Numeric(_decimal(text, where, "OBX-5 (NM)"), text)
    if value_type == "SN":
        comparator = seg.get(5, 1).strip()
        if comparator not in ("", "<", ">", "<=", ">=", "=", "<>"):
            raise Hl7Error(
                ErrorCode.DATA_TYPE_ERROR,
                f"OBX-5.1 (SN comparator) = {comparator!r}: expected <, >, <=, >=, = or <>",
                ErrorLocation("OBX", sequence=index, field=5, component=1),
            )
        n1, sep, n2 = seg.get(5, 2).strip(), seg.get(5, 3).strip(), seg.get(5, 4).strip()
        if not n1 and not n2:
            raise Hl7Error(ErrorCode.DATA_TYPE_ERROR, "OBX-5 (SN) carries no number", where)
        num1 = _decimal(n1, where, "OBX-5.2 (SN num1)") if n1 else None
        num2 = _decimal(n2, where, "OBX-5.4 (SN num2)") if n2 else None
        text = f"{comparator}{n1}" + (f"{sep}{n2}" if sep or n2 else "")
        return StructuredNumeric(comparator, num1, sep, num2, text)
    if value_type in _TEXT_TYPES:
        reps = seg.repetitions(5)
        return Text("\n".join(seg.text(5, r) for r in range(1, len(reps) + 1)), value_type != "ST")
    if value_type in _CODED_TYPES:
        coded = read_coded(seg, 5)
        if coded is None:
            raise Hl7Error(ErrorCode.DATA_TYPE_ERROR, "OBX-5.1 (coded value) is empty", where)
        return coded
    if value_type == "ED":
        return read_embedded(seg, index)
    raise Hl7Error(
        ErrorCode.TABLE_VALUE_NOT_FOUND,
        f"OBX-2 = {value_type or '(empty)'}: PFI reads NM, SN, ST, TX, FT, CE, CWE, CNE, ED",
        ErrorLocation("OBX", sequence=index, field=2),
    )


def read_embedded(seg: Segment, index: int) -> EmbeddedDocument:
    """OBX-5 of type ED: Base64 only, and a PDF announced as such must be one."""
    where = ErrorLocation("OBX", sequence=index, field=5, component=5)
    encoding = seg.get(5, 4).strip().upper()
    if encoding != "BASE64":
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR,
            f"OBX-5.4 = {encoding or '(empty)'}: embedded documents must be Base64",
            ErrorLocation("OBX", sequence=index, field=5, component=4),
        )
    data = re.sub(r"\s+", "", seg.get(5, 5))
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise Hl7Error(ErrorCode.DATA_TYPE_ERROR, "OBX-5.5 is not valid Base64", where) from None
    subtype = seg.get(5, 3).strip().upper()
    if subtype == "PDF" or raw.startswith(b"%PDF"):
        if not raw.startswith(b"%PDF-"):
            raise Hl7Error(
                ErrorCode.DATA_TYPE_ERROR,
                "OBX-5 announces a PDF but the decoded data does not start with %PDF-",
                where,
            )
        return EmbeddedDocument("application/pdf", raw)
    return EmbeddedDocument(
        f"{seg.get(5, 2).strip().lower() or 'application'}/{subtype.lower() or 'octet-stream'}",
        raw,
    )
