"""The documents stage: ORU/MDM from the inbound topic → stored, validated document
versions → the documents topic.

Two steps per polled batch, so that building and validating (tens to hundreds of ms a
document) never runs while the stage holds the database's write lock:

1. `prepare(records)` (no transaction): read each message (`reading.py`), read the
   stored state of the document sets the batch touches from a read snapshot, plan each
   version (`planning.py`), and have the document workers build and validate what needs
   it (`workers.py`, other processes); wait for them.
2. `handle(record, ctx)` (the runner's transaction, per record): check the plan still
   matches the store (else plan again and build in place: rare), link the patient, write
   the version, its holds and unmapped codes, and emit the document event, or the dead
   letter of an invalid document.

What a version becomes: `valid` (event on the documents topic, routing takes it from
there), `invalid` (XSD or schematron errors: not sent, dead letter with the findings,
`pfi documents list --status invalid`), `held` (unmapped LOINC codes with policy hold: a
hold row, no event until released), `withdrawn` (a DELETION: event, routing withdraws).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pfi.bus.stage import Record, StageContext, TransientError, dead_letter
from pfi.bus.topics import DOCUMENTS, INBOUND
from pfi.config.documents import DocumentsSettings
from pfi.config.model import Settings
from pfi.documents import repository as repo
from pfi.documents.checks import CheckedDocument
from pfi.documents.ids import built_set_id
from pfi.documents.mappings import LoincMappings
from pfi.documents.meta import (
    WAY_BUILT,
    WAY_TRANSMISSION,
    PractitionerRef,
    VersionMeta,
    imaging_people,
    metadata_as_sent,
    transmission_people,
)
from pfi.documents.planning import (
    DELETION,
    BatchState,
    NoVersion,
    Plan,
    VersionPlan,
    plan_imaging,
    plan_lab,
    plan_transmission,
)
from pfi.documents.reading import (
    DOCUMENT_MESSAGES,
    BuiltReading,
    DocumentRefused,
    ImagingReading,
    LabReading,
    NotADocument,
    Reading,
    TransmissionReading,
    message_type_of,
    read_document_message,
)
from pfi.documents.workers import DocumentWorkers, WorkersUnavailable, shared_workers
from pfi.identity.registry import PatientRegistry
from pfi.identity.stage import identity_rules
from pfi.observability.metrics import DEFAULT_METRICS, EngineMetrics
from pfi.store.db import Database
from pfi.store.models import Document, DocumentVersion, Patient
from pfi.transforms.cda.context import CdaContext, Organization, PostalAddress
from pfi.transforms.cda.cr_img import cr_img_plan
from pfi.transforms.hl7.dtm import parse_dtm
from pfi.transforms.lab import TranscodePolicy

log = logging.getLogger(__name__)

#: How long `prepare` waits for the workers to compile their validators before it lets
#: `handle` deal with the records (the stage is then simply slower, never wrong).
READY_WAIT_S = 900.0
_FINDINGS_IN_DEAD_LETTER = 50


class StalePlan(Exception):
    """The store changed between `prepare` and `handle` (plan again, in the transaction)."""


@dataclass
class Prepared:
    """One record, read, planned and (for documents to build or check) worked on."""

    event_id: int | None
    reading: Reading | None = None
    error: BaseException | None = None
    plan: Plan | None = None
    work: Future[CheckedDocument] | None = None
    status: str = ""


class DocumentsStage:
    name = "documents"
    input = INBOUND

    def __init__(
        self,
        settings: Settings,
        db: Database | None = None,
        *,
        workers: DocumentWorkers | None = None,
        metrics: EngineMetrics = DEFAULT_METRICS,
        clock: Any = None,
    ) -> None:
        self.settings: DocumentsSettings = settings.documents
        self.db = db
        self.rules = identity_rules(settings.identity)
        self.zone = ZoneInfo(settings.identity.local_timezone)
        self.metrics = metrics
        self._clock = clock or (lambda: datetime.now(UTC))
        docs = self.settings
        self.mappings = LoincMappings(
            {
                name: docs.mapping_path(name)
                for name, source in docs.sources.items()
                if source.document_type == "CR-BIO"
            }
        )
        self.mappings.check_all()  # a broken mapping file stops the engine, naming the line
        cache = docs.validation_cache_dir or settings.engine.data_dir / "cache" / "cda-validation"
        self.workers = workers or shared_workers(
            docs.schematron, docs.validation_processes, Path(cache)
        )
        addr = docs.establishment.address
        self._organization = {
            "finess": docs.establishment.finess,
            "name": docs.establishment.name,
            "telecom": docs.establishment.telecom,
            "address": PostalAddress(addr.street, addr.postal_code, addr.city, addr.country),
            "practice_setting": (
                docs.establishment.practice_setting.code,
                docs.establishment.practice_setting.display,
            ),
        }
        self._prepared: dict[tuple[int, int], Prepared] = {}

    # -- runner hooks --------------------------------------------------------------
    def open(self) -> None:
        self.workers.start()

    def close(self) -> None:
        self._prepared = {}

    def prepare(self, records: list[Record]) -> None:
        """Read, plan and build/validate the batch before any transaction (see module doc)."""
        if self.db is None:
            return
        prepared = {(r.partition, r.offset): Prepared(r.event_id) for r in records}
        readings: list[tuple[Record, Prepared]] = []
        for record in records:
            p = prepared[(record.partition, record.offset)]
            try:
                p.reading = self._read(record.value)
            except Exception as exc:  # refused: handle() dead-letters it
                p.error = exc
                continue
            if not isinstance(p.reading, NotADocument):
                readings.append((record, p))
        if readings:
            with self.db.reader() as session:
                batch = self._batch_state(session, [p.reading for _, p in readings])
            for _record, p in readings:
                try:
                    self._plan_and_submit(p, batch)
                except Exception as exc:
                    p.error = exc
            self._wait(p for _, p in readings)
        self._prepared = prepared

    def handle(self, record: Record, ctx: StageContext) -> None:
        value = record.value
        if message_type_of(value) not in DOCUMENT_MESSAGES:
            return
        p = self._prepared.pop((record.partition, record.offset), None)
        if p is None or p.event_id != record.event_id:
            p = self._prepare_inline(record, ctx.session)
        if p.error is not None:
            raise p.error
        if isinstance(p.reading, NotADocument) or p.reading is None:
            return
        try:
            self._apply(p, record, ctx)
        except StalePlan as stale:
            log.info("documents: %s; planning message %s again", stale, value["message_id"])
            # later plans of this batch for the same set rest on the same stale state
            stale_set = p.plan.set_id if isinstance(p.plan, VersionPlan) else None
            self._prepared = {
                key: other
                for key, other in self._prepared.items()
                if not (isinstance(other.plan, VersionPlan) and other.plan.set_id == stale_set)
            }
            p = self._prepare_inline(record, ctx.session)
            if p.error is not None:
                raise p.error from None
            self._apply(p, record, ctx)

    # -- preparing -----------------------------------------------------------------
    def _read(self, value: dict[str, Any], policy_override: str | None = None) -> Reading:
        return read_document_message(
            value, self.settings, self.mappings, self.rules, policy_override=policy_override
        )

    def _batch_state(self, session: Session, readings: list[Reading | None]) -> BatchState:
        set_ids: set[str] = set()
        uids: set[str] = set()
        message_ids: set[int] = set()
        for reading in readings:
            if isinstance(reading, TransmissionReading):
                s = reading.transmission.summary
                uids.add(str(s.id))
                if s.set_id:
                    set_ids.add(str(s.set_id))
                if s.replaced_document_id:
                    uids.add(str(s.replaced_document_id))
                message_ids.add(reading.facts.message_id)
            elif isinstance(reading, LabReading | ImagingReading):
                message_ids.add(reading.facts.message_id)
                request = reading.request or f"MSG-{reading.facts.control_id}"
                set_ids.add(
                    str(built_set_id(self.settings.oids.set_id_root, reading.facts.source, request))
                )
        sets, set_by_uid = repo.load_set_states(session, set_ids, uids)
        by_message = repo.versions_of_messages(session, message_ids)
        for version in by_message.values():
            if version.set_id not in sets:
                more, _ = repo.load_set_states(session, [version.set_id])
                sets.update(more)
        return BatchState(sets, set_by_uid, by_message)

    def _plan_and_submit(self, p: Prepared, batch: BatchState) -> None:
        reading = p.reading
        if isinstance(reading, TransmissionReading):
            plan = plan_transmission(reading, batch)
            p.plan = plan
            if isinstance(plan, VersionPlan):
                if plan.action != DELETION:
                    p.work = self.workers.submit_check(reading.transmission.cda)
                    p.status = repo.VALID  # until the check says otherwise
                else:
                    p.status = repo.WITHDRAWN
                batch.planned(plan, reading.facts.message_id, p.status)
            return
        if isinstance(reading, LabReading):
            plan = plan_lab(reading, batch, self.settings.oids)
            if isinstance(plan, VersionPlan) and plan.rebuild_of is not None:
                done = batch.version_of_message(reading.facts.message_id)
                if done is not None and done.release_policy == TranscodePolicy.KEEP_LOCAL:
                    reading = dataclasses.replace(
                        reading,
                        result=dataclasses.replace(
                            reading.result, policy=TranscodePolicy.KEEP_LOCAL
                        ),
                    )
                    p.reading = reading
            p.plan = plan
            if isinstance(plan, VersionPlan):
                if plan.action == DELETION:
                    p.status = repo.WITHDRAWN
                else:
                    assert plan.document_ids is not None
                    p.work = self.workers.submit_lab(
                        reading.result.report, self._context(reading, plan)
                    )
                    p.status = repo.HELD if reading.result.must_hold else repo.VALID
                batch.planned(plan, reading.facts.message_id, p.status, reading.fingerprint)
            return
        if isinstance(reading, ImagingReading):
            plan = plan_imaging(reading, batch, self.settings.oids)
            p.plan = plan
            if isinstance(plan, VersionPlan):
                if plan.action == DELETION:
                    p.status = repo.WITHDRAWN
                else:
                    p.work = self.workers.submit_imaging(
                        reading.report, self._context(reading, plan)
                    )
                    p.status = repo.VALID  # until the check says otherwise
                batch.planned(plan, reading.facts.message_id, p.status, reading.fingerprint)

    def _context(self, reading: BuiltReading, plan: VersionPlan) -> CdaContext:
        source = self.settings.sources[reading.facts.source]
        oids = self.settings.oids
        assert plan.document_ids is not None
        return CdaContext(
            organization=Organization(
                **self._organization,
                facility_type=(source.facility_type.code, source.facility_type.display),
            ),
            ids=plan.document_ids,
            effective_time=self._clock().astimezone(self.zone),
            patient_id_root=oids.patient_id_root,
            order_id_root=oids.order_id_root,
            local_code_system_oid=source.local_code_system_oid or oids.local_codes_root,
            practitioner_local_root=oids.practitioner_local_root,
            accession_id_root=oids.accession_id_root or "",
        )

    def _wait(self, prepared: Any) -> None:
        """Wait for the workers: for their start-up first (logged), then per document."""
        pending = [p for p in prepared if p.work is not None]
        if not pending:
            return
        started = time.monotonic()
        while not self.workers.ready and time.monotonic() - started < READY_WAIT_S:
            if self.workers.wait_ready(30.0):
                break
            log.info(
                "documents: %d document(s) waiting for the document workers to compile "
                "the validator (%.0fs so far)",
                len(pending),
                time.monotonic() - started,
            )
        deadline = time.monotonic() + self.settings.validation_timeout_s * max(
            1, len(pending) // max(1, self.workers.processes)
        )
        for p in pending:
            assert p.work is not None
            try:
                p.work.result(timeout=max(0.1, deadline - time.monotonic()))
            except FutureTimeout:
                log.warning("documents: build/validation not done in time; handled inline")
            except Exception:  # surfaced by handle()
                pass

    def _prepare_inline(self, record: Record, session: Session) -> Prepared:
        """`prepare` for one record inside the transaction (fallback: slower, same result)."""
        p = Prepared(record.event_id)
        try:
            p.reading = self._read(record.value)
            if not isinstance(p.reading, NotADocument):
                batch = self._batch_state(session, [p.reading])
                self._plan_and_submit(p, batch)
        except Exception as exc:
            p.error = exc
        return p

    # -- applying (inside the runner's transaction) --------------------------------
    def _apply(self, p: Prepared, record: Record, ctx: StageContext) -> None:
        reading = p.reading
        assert isinstance(reading, TransmissionReading | LabReading | ImagingReading)
        plan = p.plan
        facts = reading.facts
        if isinstance(plan, NoVersion) or plan is None:
            log.info(
                "documents: message %s (%s %s) makes no new version: %s",
                facts.message_id,
                facts.message_type,
                facts.control_id,
                plan.reason if plan else "not planned",
            )
            return
        session = ctx.session
        document = self._check_plan(session, plan)
        patient = self._patient(session, reading)
        if document is not None and document.patient_id is not None and patient is not None:
            registry = PatientRegistry(session)
            owner = registry.survivor(session.get(Patient, document.patient_id) or patient)
            if owner.id != patient.id:
                raise DocumentRefused(
                    f"document set {plan.set_id} belongs to patient {owner.id}, this "
                    f"{facts.message_type} (message {facts.message_id}) is about patient "
                    f"{patient.id}: not filed under another patient's document"
                )
        checked = self._checked(p)
        status = p.status
        if checked is not None and not checked.report.valid:
            status = repo.INVALID
        meta = self._meta(reading, plan)
        if document is None:
            document = repo.create_document(
                session,
                set_id=plan.set_id,
                document_type=plan.document_type,
                document_code=plan.document_code,
                title=plan.title,
                source=facts.source,
                patient_id=patient.id if patient else None,
            )
        elif document.patient_id is None and patient is not None:
            document.patient_id = patient.id
        values = {
            "status": status,
            "cda": checked.cda if checked else None,
            "pdf": checked.pdf if checked else None,
            "validation": checked.report.summary() if checked else None,
            "findings": _findings_json(checked) if checked else None,
            "meta": meta.to_json(),
        }
        if plan.rebuild_of is not None:
            version = session.get(DocumentVersion, plan.rebuild_of)
            if version is None:
                raise StalePlan(f"version {plan.rebuild_of} disappeared")
            previous_meta = dict(version.meta or {})
            for key, value in values.items():
                setattr(version, key, value)
            if previous_meta.get("release_policy"):
                version.meta = {**values["meta"], "release_policy": previous_meta["release_policy"]}
            document.status = "active"
            session.flush()
        else:
            version = repo.add_version(
                session,
                document,
                version=plan.version,
                action=plan.action,
                document_uid=plan.document_uid[:200],
                replaces_uid=plan.replaces_uid[:200] if plan.replaces_uid else None,
                way=WAY_TRANSMISSION if isinstance(reading, TransmissionReading) else WAY_BUILT,
                message_id=facts.message_id,
                confidentiality_code=self._confidentiality(reading),
                effective_time=self._effective_time(reading, checked),
                received_at=facts.received_at,
                **values,
            )
        if plan.supersedes_held is not None:
            repo.close_holds(
                session,
                plan.supersedes_held,
                repo.HOLD_UNMAPPED,
                by="documents",
                reason=f"superseded by version {plan.version}",
            )
        if isinstance(reading, LabReading) and plan.action != DELETION:
            self._unmapped(session, reading, plan, status, version)
        self._record_metrics(plan, status, checked)
        if status == repo.INVALID:
            assert checked is not None
            dead_letter(
                ctx,
                self.name,
                record,
                "CdaValidationError",
                _invalid_text(plan, version, checked),
            )
            return
        if status in (repo.VALID, repo.WITHDRAWN):
            ctx.emit(
                DOCUMENTS,
                record.key,
                {
                    "document_id": document.id,
                    "version_id": version.id,
                    "set_id": document.set_id,
                    "version": version.version,
                    "action": plan.action,
                    "document_type": document.document_type,
                    "source": facts.source,
                    "patient_key": facts.patient_key,
                    "message_id": facts.message_id,
                    "received_at": facts.received_at,
                },
                record.correlation_id,
            )

    def _check_plan(self, session: Session, plan: VersionPlan) -> Document | None:
        document = session.scalar(select(Document).where(Document.set_id == plan.set_id))
        if document is None:
            if not plan.new_document:
                raise StalePlan(f"set {plan.set_id} is no longer stored")
            return None
        if plan.new_document:
            if document.current_version != 0:
                raise StalePlan(f"set {plan.set_id} was created meanwhile")
            return document
        if document.current_version != plan.expected_version:
            raise StalePlan(
                f"set {plan.set_id} is at version {document.current_version}, planned against "
                f"{plan.expected_version}"
            )
        return document

    def _patient(
        self, session: Session, reading: TransmissionReading | BuiltReading
    ) -> Patient | None:
        """The patient the message's PID designates; created from it when unknown (an
        ADT arriving later completes it: it is created without an event time)."""
        facts = reading.facts
        traits = facts.patient
        if not traits.identifiers:
            return None
        registry = PatientRegistry(session)
        found = registry.find(traits)
        if found is not None:
            return found
        try:
            with session.begin_nested():
                return registry.upsert(
                    traits, trigger=facts.trigger[:16], event_at=None, message_id=facts.message_id
                )
        except IntegrityError:
            # PostgreSQL: the identity stage created it meanwhile; this statement sees it
            found = registry.find(traits)
            if found is None:
                raise
            return found

    def _checked(self, p: Prepared) -> CheckedDocument | None:
        if p.work is None:
            return None
        try:
            return p.work.result(timeout=self.settings.validation_timeout_s)
        except FutureTimeout:
            raise TransientError("document build/validation timed out; retrying") from None
        except BrokenProcessPool as exc:
            self.workers.broken(exc)
            raise TransientError(f"document workers died ({exc}); retrying") from exc
        except WorkersUnavailable as exc:
            raise TransientError(str(exc)) from exc

    def _meta(self, reading: TransmissionReading | BuiltReading, plan: VersionPlan) -> VersionMeta:
        facts = reading.facts
        if isinstance(reading, TransmissionReading):
            t = reading.transmission
            return VersionMeta(
                way=WAY_TRANSMISSION,
                message_type=facts.message_type,
                control_id=facts.control_id,
                sender=facts.sender,
                sender_metadata=metadata_as_sent(t.metadata),
                people=transmission_people(t, set(reading.prescriber_ids)),
                patient_may_not_reply=t.metadata.patient_may_not_reply,
                cda_version_number=t.summary.version_number,
                txa_unique_document_number=t.unique_document_number,
                txa_parent_document_number=t.parent_document_number,
                warnings=t.warnings + plan.warnings,
            )
        if isinstance(reading, ImagingReading):
            return self._imaging_meta(reading, plan)
        report = reading.result.report
        people: list[PractitionerRef] = []
        if report.ordering_provider is not None:
            people.append(PractitionerRef.from_practitioner("prescriber", report.ordering_provider))
        people += [PractitionerRef.from_practitioner("copy", c) for c in report.copy_to]
        if report.validator is not None:
            people.append(PractitionerRef.from_practitioner("validator", report.validator))
        return VersionMeta(
            way=WAY_BUILT,
            message_type=facts.message_type,
            control_id=facts.control_id,
            sender=facts.sender,
            people=tuple(people),
            placer_order=report.placer_group,
            filler_order=report.filler_group,
            unmapped_codes=tuple(str(u) for u in reading.result.unmapped),
            fingerprint=reading.fingerprint,
            warnings=plan.warnings,
        )

    @staticmethod
    def _imaging_meta(reading: ImagingReading, plan: VersionPlan) -> VersionMeta:
        facts, report = reading.facts, reading.report
        exams = report.validated_exams or report.exams
        first = exams[0]
        level, gaps = None, ()
        if plan.action != DELETION:
            cr_plan = cr_img_plan(report)
            level, gaps = int(cr_plan.level), cr_plan.gaps
        return VersionMeta(
            way=WAY_BUILT,
            message_type=facts.message_type,
            control_id=facts.control_id,
            sender=facts.sender,
            people=imaging_people(report, reading.participants),
            placer_order=first.placer_order,
            filler_order=first.filler_order,
            accession_number=first.accession_number,
            txa_unique_document_number=report.document_number,
            txa_parent_document_number=report.parent_document_number,
            fingerprint=reading.fingerprint,
            cr_img_level=level,
            cr_img_gaps=tuple(gaps),
            warnings=plan.warnings,
        )

    @staticmethod
    def _confidentiality(reading: TransmissionReading | BuiltReading) -> str:
        if isinstance(reading, TransmissionReading):
            code = reading.transmission.summary.confidentiality_code.strip().upper()
            return code if code in ("N", "R", "V") else "N"
        return "N"

    def _effective_time(
        self, reading: TransmissionReading | BuiltReading, checked: CheckedDocument | None
    ) -> datetime | None:
        if isinstance(reading, TransmissionReading):
            return parse_dtm(reading.transmission.summary.effective_time, self.zone)
        return self._clock() if checked is not None else None

    def _unmapped(
        self,
        session: Session,
        reading: LabReading,
        plan: VersionPlan,
        status: str,
        version: DocumentVersion,
    ) -> None:
        result = reading.result
        if result.unmapped and plan.rebuild_of is None:
            repo.count_unmapped(
                session, reading.facts.source, ((u.code, u.display) for u in result.unmapped)
            )
            self.metrics.record_unmapped_loinc(reading.facts.source, len(result.unmapped))
        if status == repo.HELD:
            repo.open_hold(session, version.id, repo.HOLD_UNMAPPED, result.hold_reason)

    def _record_metrics(
        self, plan: VersionPlan, status: str, checked: CheckedDocument | None
    ) -> None:
        kind = plan.action.lower()
        if status == repo.INVALID and checked is not None:
            sources = {f.source for f in checked.report.errors}
            check = "xsd" if sources & {"xsd", "xml"} else "schematron"
            self.metrics.record_document_invalid(plan.document_type, check)
            return
        self.metrics.record_document_built(plan.document_type, kind)


def _findings_json(checked: CheckedDocument) -> list[dict[str, Any]]:
    return [
        {
            "severity": f.severity.value,
            "source": f.source,
            "message": f.message,
            "rule_id": f.rule_id,
            "location": f.location,
            "line": f.line,
            "unverifiable": f.unverifiable,
        }
        for f in checked.report.findings
    ]


def _invalid_text(plan: VersionPlan, version: DocumentVersion, checked: CheckedDocument) -> str:
    errors = checked.report.errors
    lines = [
        f"document {plan.document_uid} (set {plan.set_id}, version {plan.version}, stored as "
        f"document version {version.id} with status invalid) is not sent: "
        + checked.report.summary()
    ]
    lines += [str(f) for f in errors[:_FINDINGS_IN_DEAD_LETTER]]
    if len(errors) > _FINDINGS_IN_DEAD_LETTER:
        more = len(errors) - _FINDINGS_IN_DEAD_LETTER
        lines.append(f"... {more} more: pfi documents show {version.id} --json")
    return "\n".join(lines)
