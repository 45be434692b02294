"""What one inbound message means for the documents stage: pure, no store, no clock.

- ADT and anything but ORU^R01 / MDM^T02/T04/T10: not a document (identity handles ADT);
  MDM^T11 (cancellation) is a document message only from a CR-IMG source.
- MSH-21 declares the CI-SIS transmission volet: way (a), the CDA carried is the
  document (`read_cda_transmission`: decoded, checked against the message).
- Otherwise the source's `documents.sources` entry says what to build: CR-BIO from a
  plain lab ORU (way b: `build_lab_report` then LOINC `transcode` with the lab's mapping),
  CR-IMG from a plain RIS report (ORU^R01 or MDM^T02/T04/T10/T11: `build_imaging_report`,
  plus the PRT recipients the message may name). A source without an entry has its plain
  ORU/MDM refused with a reason (dead letter), never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pfi.config.documents import DocumentsSettings
from pfi.documents.ids import message_fingerprint
from pfi.documents.mappings import LoincMappings
from pfi.identity.traits import IdentityRules, PatientTraits, read_patient
from pfi.transforms.cda.transmission import (
    CdaTransmission,
    Participant,
    is_cda_transmission,
    read_cda_transmission,
    read_participant,
)
from pfi.transforms.hl7 import ErrorCode, ErrorLocation, Hl7Error, Hl7Message, parse_message
from pfi.transforms.imaging import ImagingReport, build_imaging_report
from pfi.transforms.lab import TranscodeResult, build_lab_report, transcode

DOCUMENT_MESSAGES = frozenset({"ORU^R01", "MDM^T02", "MDM^T04", "MDM^T10", "MDM^T11"})
#: Messages that are documents only from a source PFI builds CR-IMG for (a RIS
#: cancellation); from any other source they are ignored as before.
_IMAGING_ONLY_MESSAGES = frozenset({"MDM^T11"})

#: Volet templateIds and document codes → the document type PFI files a document under.
_VOLET_TYPES = {"1.2.250.1.213.1.1.1.55": "CR-BIO", "1.2.250.1.213.1.1.1.45": "CR-IMG"}
_CODE_TYPES = {"11502-2": "CR-BIO", "18748-4": "CR-IMG"}
OTHER_TYPE = "OTHER"


class DocumentRefused(Exception):
    """A message the documents stage will not turn into a document, with why (dead letter)."""


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """The inbound record's envelope and the patient its PID describes."""

    message_id: int
    source: str
    message_type: str
    control_id: str
    sender: str
    patient_key: str
    received_at: datetime
    patient: PatientTraits
    trigger: str


@dataclass(frozen=True, slots=True)
class TransmissionReading:
    """Way (a): a CDA built by the sender."""

    facts: MessageFacts
    transmission: CdaTransmission
    document_type: str
    prescriber_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class LabReading:
    """Way (b): a lab report PFI turns into a CR-BIO."""

    facts: MessageFacts
    result: TranscodeResult
    fingerprint: str

    @property
    def request(self) -> str:
        """The lab request the report answers (filler, else placer order number)."""
        report = self.result.report
        return report.filler_group or report.placer_group


@dataclass(frozen=True, slots=True)
class ImagingReading:
    """Way (b): a RIS report PFI turns into a CR-IMG."""

    facts: MessageFacts
    report: ImagingReport
    fingerprint: str
    participants: tuple[Participant, ...] = ()  # PRT of the message (RCT recipients...)

    @property
    def request(self) -> str:
        """The exam the report documents (accession, filler, placer, TXA document number)."""
        return self.report.document_key


@dataclass(frozen=True, slots=True)
class NotADocument:
    reason: str


BuiltReading = LabReading | ImagingReading
Reading = TransmissionReading | LabReading | ImagingReading | NotADocument


def message_type_of(value: dict) -> str:
    """`ORU^R01` from the inbound record's MSH-9 (code^trigger, structure dropped)."""
    parts = str(value.get("message_type", "")).upper().split("^")
    return "^".join(parts[:2])


def document_type_of(transmission: CdaTransmission) -> str:
    summary = transmission.summary
    for template in summary.template_ids:
        if template.root in _VOLET_TYPES:
            return _VOLET_TYPES[template.root]
    return _CODE_TYPES.get(summary.code, OTHER_TYPE)


def read_document_message(
    value: dict,
    settings: DocumentsSettings,
    mappings: LoincMappings,
    rules: IdentityRules,
    *,
    policy_override: str | None = None,
) -> Reading:
    """Classify and read one inbound record; `Hl7Error` / `DocumentRefused` when it cannot
    be a document. `policy_override` (keep_local) is an operator's release decision."""
    message_type = message_type_of(value)
    if message_type not in DOCUMENT_MESSAGES:
        return NotADocument(f"{message_type or 'unknown type'} is not a document message")
    source = str(value.get("source", ""))
    configured = settings.sources.get(source)
    if message_type in _IMAGING_ONLY_MESSAGES and (
        configured is None or configured.document_type != "CR-IMG"
    ):
        return NotADocument(f"{message_type} is a document message from CR-IMG sources only")
    msg = parse_message(value["raw"], value.get("charset") or "8859/1")
    facts = _facts(value, msg, message_type, rules)
    if is_cda_transmission(msg):
        transmission = read_cda_transmission(msg)
        return TransmissionReading(
            facts, transmission, document_type_of(transmission), _prescriber_ids(msg)
        )
    if configured is None:
        raise DocumentRefused(
            f"{message_type} from source {source} carries no CDA (MSH-21 does not declare "
            f"2.1^CISIS_CDA_HL7_V2) and documents.sources has no entry for {source}: PFI "
            "does not know which document to build from it (add documents.sources."
            f"{source}.document_type: CR-BIO or CR-IMG, or have the sender use the transmission "
            "volet)"
        )
    if configured.document_type == "CR-IMG":
        report = build_imaging_report(msg)
        participants = tuple(
            read_participant(seg, i) for i, seg in enumerate(msg.all("PRT"), start=1)
        )
        return ImagingReading(facts, report, message_fingerprint(msg), participants)
    if msg.header.message_code != "ORU":
        raise DocumentRefused(
            f"{message_type} from lab source {source} carries no CDA: PFI builds the CR-BIO "
            "from ORU^R01 results only (or send the CDA per the transmission volet)"
        )
    report = build_lab_report(msg)
    policy = policy_override or configured.unmapped_policy
    result = transcode(report, mappings.get(source), policy)
    return LabReading(facts, result, message_fingerprint(msg))


def _facts(value: dict, msg: Hl7Message, message_type: str, rules: IdentityRules) -> MessageFacts:
    pid = msg.first("PID")
    if pid is None:
        raise Hl7Error(
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            f"{message_type} without PID: a document needs its patient",
            ErrorLocation("PID"),
        )
    return MessageFacts(
        message_id=int(value["message_id"]),
        source=str(value["source"]),
        message_type=message_type,
        control_id=str(value.get("control_id", "")),
        sender=str(value.get("sender", "")),
        patient_key=str(value.get("patient_key", "")),
        received_at=value["received_at"],
        patient=read_patient(pid, rules),
        trigger=msg.header.trigger_event or message_type,
    )


def _prescriber_ids(msg: Hl7Message) -> frozenset[str]:
    """ORC-12 and OBR-16 ids: the PRT RCT naming one of them is the prescriber."""
    ids = set()
    for seg, n in (("ORC", 12), ("OBR", 16)):
        for s in msg.all(seg):
            value = s.get(n, 1).strip()
            if value:
                ids.add(value)
    return frozenset(ids)
