"""Driving the documents stage through the real engine: messages, waits, store reads."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from pfi.adapters.mllp import MllpClient
from pfi.bus import codec
from pfi.bus.stage import Record
from pfi.bus.topics import DOCUMENTS, INBOUND
from pfi.config.model import Settings
from pfi.documents.stage import DocumentsStage
from pfi.store import Database
from pfi.store.models import (
    DeadLetter,
    Document,
    DocumentVersion,
    Message,
    OutboxEvent,
    ProcessedEvent,
)
from pfi.transforms.hl7 import parse_message
from tests.support.inprocess import RunningEngine, engine_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ORU_DIR = FIXTURES / "hl7/oru"
OFFICIAL = (
    FIXTURES
    / "ci-sis/hl7V2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
)
ORU_INIT = OFFICIAL / "ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"
ORU_RPLC = OFFICIAL / "ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7"
ORU_DEL = OFFICIAL / "ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N3_SEGUR.hl7"
ORU_DEL_CDA = OFFICIAL / "ORU/Suppression ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml"
MDM_INIT = OFFICIAL / "MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7"
MDM_INIT_B64 = OFFICIAL / "MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
MDM_RPLC = OFFICIAL / "MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
MDM_DEL = OFFICIAL / "MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7"
SGL_MAPPING = Path(__file__).resolve().parents[2] / "config/loinc/SGL.csv"


def documents_engine_settings(
    tmp_path: Path,
    db_url: str,
    *,
    schematron: str = "required",
    processes: int = 1,
    policy: str = "hold",
    mapping: Path | None = None,
) -> Settings:
    settings = engine_settings(tmp_path, db_url)
    docs = settings.documents
    docs.schematron = schematron  # type: ignore[assignment]
    docs.validation_processes = processes
    # one compile cache for the whole session: the first engine pays the SchXslt step
    docs.validation_cache_dir = Path("/tmp") / "pfi-test-cda-validation-cache"
    sgl = docs.sources["SGL"]
    sgl.unmapped_policy = policy  # type: ignore[assignment]
    sgl.loinc_mapping = mapping or SGL_MAPPING
    return settings


def with_control_id(raw: bytes, control_id: str) -> bytes:
    """The same message with another MSH-10 (the official examples all use 015)."""
    fields = raw.split(b"|", 10)
    fields[9] = control_id.encode()
    return b"|".join(fields)


def oru(name: str, control_id: str | None = None) -> bytes:
    raw = (ORU_DIR / f"{name}.hl7").read_bytes()
    return with_control_id(raw, control_id) if control_id else raw


def replace_cda(raw: bytes, cda: bytes) -> bytes:
    """The same transmission message with another CDA in its OBX ED (OBX-5.5)."""
    text = raw.decode("utf-8")
    lines = re.split(r"\r\n|\r|\n", text)
    for i, line in enumerate(lines):
        if line.startswith("OBX|") and "|ED|" in line[:12]:
            fields = line.split("|")
            comps = fields[5].split("^")
            comps[4] = base64.b64encode(cda).decode()
            fields[5] = "^".join(comps)
            lines[i] = "|".join(fields)
            break
    return "\r".join(lines).encode("utf-8")


def carried_cda(raw: bytes) -> bytes:
    text = raw.decode("utf-8")
    for line in re.split(r"\r\n|\r|\n", text):
        if line.startswith("OBX|") and "|ED|" in line[:12]:
            data = line.split("|")[5].split("^")[4]
            return base64.b64decode(data + "=" * (-len(data) % 4))
    raise AssertionError("no OBX ED in the message")


def conform_to_current_kit(cda: bytes) -> bytes:
    """The official Vague 2 CDAs predate the 2024 kit: drop the patient's family name
    qualified "SP" (StrucMin allows BR and CL only; the professionals' keep theirs, without
    the qualifier) and give the N1 radiology reports the setId the kit
    requires (their first version's id, which is what the MDM TXA numbers chain)."""

    def patient_names(m: re.Match[bytes]) -> bytes:
        return re.sub(rb"\s*<family qualifier=\"SP\">[^<]*</family>", b"", m.group(0))

    out = re.sub(rb"<patient[ >].*?</patient>", patient_names, cda, flags=re.S)
    out = out.replace(b'<family qualifier="SP">', b"<family>")  # author, legal authenticator
    if b"<setId" not in out:
        out = re.sub(
            rb"(<versionNumber[^>]*/>)",
            rb'<setId root="1.2.250.1.71.4.2.2.120456789.71024000081"/>\1',
            out,
            count=1,
        )
        # setId goes before versionNumber in the CDA XSD sequence
    return out


def official(
    path: Path, control_id: str, *, conform: bool = False, cda: bytes | None = None
) -> bytes:
    raw = with_control_id(path.read_bytes(), control_id)
    if cda is not None:
        raw = replace_cda(raw, cda)
    if conform:
        raw = replace_cda(raw, conform_to_current_kit(carried_cda(raw)))
    return raw


def send(engine: RunningEngine, source: str, *messages: bytes) -> list[bytes]:
    acks = []
    with MllpClient("127.0.0.1", engine.port(source), timeout_s=60) as client:
        for message in messages:
            acks.append(client.send(message))
    return acks


def ack_code(ack: bytes) -> str:
    for seg in ack.split(b"\r"):
        if seg.startswith(b"MSA|"):
            return seg.split(b"|")[1].decode()
    raise AssertionError(f"no MSA in {ack!r}")


def db_of(engine: RunningEngine) -> Database:
    assert engine.engine is not None
    return engine.engine.db


def wait_for_documents_stage(engine: RunningEngine, timeout_s: float = 180.0) -> None:
    """Until the documents stage applied every inbound record published so far.

    The first engine of a session also waits for the document workers to compile the
    schematrons (15-45 s on a quiet machine, minutes on a loaded one)."""
    assert engine.engine is not None
    for stage in engine.engine.stages:
        if isinstance(stage, DocumentsStage):
            assert stage.workers.wait_ready(900.0), "document workers did not start"
    db = db_of(engine)
    deadline = time.monotonic() + timeout_s
    while True:
        with db.reader() as s:
            published = s.scalar(select(func.count()).where(OutboxEvent.topic == INBOUND.name))
            done = s.scalar(select(func.count()).where(ProcessedEvent.consumer == "documents"))
        if done == published:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"documents stage applied {done} of {published} records")
        time.sleep(0.2)


def versions(db: Database) -> list[dict[str, Any]]:
    """Every stored version, oldest first, with its document's columns."""
    with db.reader() as s:
        rows = s.execute(
            select(DocumentVersion, Document)
            .join(Document, Document.id == DocumentVersion.document_id)
            .order_by(DocumentVersion.id)
        ).all()
        return [
            {
                "id": v.id,
                "set_id": d.set_id,
                "document_status": d.status,
                "document_type": d.document_type,
                "patient_id": d.patient_id,
                "version": v.version,
                "action": v.action,
                "status": v.status,
                "document_uid": v.document_uid,
                "replaces_uid": v.replaces_uid,
                "message_id": v.message_id,
                "cda": v.cda,
                "pdf": v.pdf,
                "validation": v.validation,
                "findings": v.findings,
                "meta": v.meta,
            }
            for v, d in rows
        ]


def document_events(db: Database) -> list[dict[str, Any]]:
    with db.reader() as s:
        rows = s.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == DOCUMENTS.name).order_by(OutboxEvent.id)
        ).all()
        return [codec.decode(DOCUMENTS.schema, r.value) for r in rows]


def dead_letters(db: Database, stage: str = "documents") -> list[DeadLetter]:
    with db.reader() as s:
        return list(
            s.scalars(select(DeadLetter).where(DeadLetter.stage == stage).order_by(DeadLetter.id))
        )


def stored_record(db: Database, raw: bytes, offset: int) -> Record:
    """`raw` stored as an accepted SGL message, and the inbound record intake made of it."""
    header = parse_message(raw).header
    received = datetime(2024, 1, 4, 11, 0, tzinfo=UTC)
    with db.transaction() as s:
        message = Message(
            source="SGL",
            received_at=received,
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            control_id=header.control_id,
            message_type=header.message_type,
            version=header.version,
            charset=header.charset,
            status="accepted",
            ack_code="AA",
            raw=raw,
        )
        s.add(message)
        s.flush()
        value = {
            "message_id": message.id,
            "source": "SGL",
            "sender": header.sender,
            "control_id": header.control_id,
            "message_type": header.message_type,
            "version": header.version,
            "charset": header.charset,
            "patient_key": header.patient_key(),
            "received_at": received,
            "raw": raw,
        }
    encoded = codec.encode(INBOUND.schema, value)
    return Record(INBOUND, 0, offset, b"k", codec.decode(INBOUND.schema, encoded), encoded,
                  offset + 1, None)  # fmt: skip


def inline_stage(db: Database, tmp_path: Path) -> DocumentsStage:
    """A documents stage that builds and checks (XSD only) in the caller's thread."""
    settings = Settings()
    settings.engine.data_dir = tmp_path / "var"
    settings.documents.schematron = "off"
    settings.documents.validation_processes = 0
    settings.documents.sources["SGL"].loinc_mapping = SGL_MAPPING
    return DocumentsStage(settings, db)
