"""Which version a message makes: pure decisions over the stored state of document sets.

Rules (docs/documents.md has the table):

Way (a), CDA carried (the sender numbers its documents):
- the set is the CDA setId, else (no setId, as in the official MDM examples) the set of
  the document it replaces / deletes, else the CDA id itself;
- initial (NW/F/T02): version 1 of a new set; a CDA id already stored is a re-delivery
  (no version); an initial naming a setId that already has versions is refused (the
  sender must send a replacement);
- replacement (RO/C/T10): version n+1, RPLC as the CDA says (warning when it does not name
  the latest version PFI knows, or a document PFI never received);
- deletion (CA/D/T04): version n+1 with action DELETION and no CDA; `document_uid` names
  the document the destinations must delete.

Way (b), CR-BIO and CR-IMG built by PFI (the lab request, the imaging exam's accession
number, ties the versions, see `ids.py`):
- publish (OBR-25 F, MDM^T02, T04 validated): version 1, or n+1 (REPLACEMENT) when the
  request already has one; the same report re-sent unchanged (same fingerprint) makes no
  version;
- correction (C, MDM^T10): version n+1 with RPLC to version n; cancellation (X, ORC-1 CA,
  MDM^T11): a DELETION version naming the last document; only preliminary results /
  a report not yet authenticated: nothing yet.

A message that already produced a version makes no other one, except that a version
held for unmapped codes whose hold was released, or an invalid version, is rebuilt in
place (same version number and ids) when its message is replayed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pfi.config.documents import DocumentOids
from pfi.documents.ids import built_document_id, built_set_id
from pfi.documents.reading import (
    BuiltReading,
    DocumentRefused,
    ImagingReading,
    LabReading,
    TransmissionReading,
)
from pfi.documents.repository import HELD, INVALID, SetState, VersionState
from pfi.transforms.cda import cr_bio, cr_img
from pfi.transforms.cda.context import DocumentIds
from pfi.transforms.cda.summary import InstanceId
from pfi.transforms.cda.transmission import DocumentAction
from pfi.transforms.lab.model import ReportAction

INITIAL, REPLACEMENT, DELETION = "INITIAL", "REPLACEMENT", "DELETION"


@dataclass(frozen=True, slots=True)
class VersionPlan:
    """The version to write, and the state it was planned against."""

    set_id: str
    document_type: str
    document_code: str
    title: str
    new_document: bool
    expected_version: int  # the set's current_version when planned (0: no document yet)
    version: int
    action: str
    document_uid: str
    replaces_uid: str | None
    document_ids: DocumentIds | None = None  # way (b): the ids to build with
    rebuild_of: int | None = None  # version row rebuilt in place (released hold, invalid)
    supersedes_held: int | None = None  # a held version whose hold this version closes
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NoVersion:
    """The message makes no version (re-delivery, nothing validated yet...): why."""

    reason: str


Plan = VersionPlan | NoVersion


class BatchState:
    """The stored state of the sets a batch touches, updated as the batch is planned, so
    that an initial and its correction polled together become versions 1 and 2."""

    def __init__(
        self,
        sets: dict[str, SetState],
        set_by_uid: dict[str, str],
        by_message: dict[int, VersionState],
    ) -> None:
        self._sets = dict(sets)
        self._set_by_uid = dict(set_by_uid)
        self._by_message = dict(by_message)
        self._next_fake_id = -1

    def set(self, set_id: str) -> SetState | None:
        return self._sets.get(set_id)

    def set_of_uid(self, uid: str) -> str | None:
        return self._set_by_uid.get(uid)

    def version_of_message(self, message_id: int) -> VersionState | None:
        return self._by_message.get(message_id)

    def planned(
        self, plan: VersionPlan, message_id: int, status: str, fingerprint: str = ""
    ) -> None:
        """Record what `plan` will have written, for the records after it in the batch."""
        if plan.rebuild_of is not None:
            return
        fake_id = self._next_fake_id
        self._next_fake_id -= 1
        current = self._sets.get(plan.set_id)
        version = VersionState(
            id=fake_id,
            document_id=current.document_id if current else fake_id,
            set_id=plan.set_id,
            version=plan.version,
            action=plan.action,
            status=status,
            document_uid=plan.document_uid,
            replaces_uid=plan.replaces_uid,
            message_id=message_id,
            fingerprint=fingerprint,
            open_unmapped_hold=status == HELD,
            release_policy="",
        )
        self._sets[plan.set_id] = SetState(
            document_id=version.document_id,
            set_id=plan.set_id,
            patient_id=current.patient_id if current else None,
            status="withdrawn" if plan.action == DELETION else "active",
            current_version=plan.version,
            latest=version,
            latest_document=(
                version
                if plan.action != DELETION
                else (current.latest_document if current else None)
            ),
        )
        if plan.document_uid:
            self._set_by_uid.setdefault(plan.document_uid, plan.set_id)
        self._by_message[message_id] = version


_TRANSMISSION_ACTIONS = {
    DocumentAction.INITIAL: INITIAL,
    DocumentAction.REPLACEMENT: REPLACEMENT,
    DocumentAction.DELETION: DELETION,
}


def plan_transmission(reading: TransmissionReading, batch: BatchState) -> Plan:
    t = reading.transmission
    s = t.summary
    uid = str(s.id)
    action = _TRANSMISSION_ACTIONS[t.action]
    common = {
        "document_type": reading.document_type,
        "document_code": s.code,
        "title": s.title,
    }
    done = batch.version_of_message(reading.facts.message_id)
    if done is not None:
        if done.status == INVALID and action != DELETION:
            return _rebuild(done, batch, common)
        return NoVersion(f"message already produced version {done.version} of {done.set_id}")
    if action == INITIAL:
        known = batch.set_of_uid(uid)
        if known is not None:
            return NoVersion(f"document {uid} is already stored (set {known})")
        set_id = str(s.set_id) if s.set_id else uid
        state = batch.set(set_id)
        if state is not None and state.latest is not None:
            raise DocumentRefused(
                f"initial transmission of document {uid} names setId {set_id}, which already "
                f"has version {state.current_version} (document {state.latest.document_uid}): "
                "a new version is sent as a replacement (ORC-1 RO, OBX-11 C, MDM^T10)"
            )
        return VersionPlan(
            set_id=set_id,
            new_document=state is None,
            expected_version=0,
            version=1,
            action=INITIAL,
            document_uid=uid,
            replaces_uid=None,
            **common,
        )
    if action == REPLACEMENT:
        known = batch.set_of_uid(uid)
        if known is not None:
            return NoVersion(f"document {uid} is already stored (set {known})")
        replaced = str(s.replaced_document_id) if s.replaced_document_id else ""
        set_of_replaced = batch.set_of_uid(replaced) if replaced else None
        set_id = str(s.set_id) if s.set_id else (set_of_replaced or replaced or uid)
        if s.set_id and set_of_replaced and set_of_replaced != set_id:
            raise DocumentRefused(
                f"replacement {uid} names setId {set_id} but the document it replaces "
                f"({replaced}) belongs to set {set_of_replaced}"
            )
        state = batch.set(set_id)
        warnings = []
        if state is None or state.latest_document is None:
            warnings.append(f"replaces {replaced or '?'}, which PFI never received")
        elif state.latest_document.document_uid != replaced:
            warnings.append(
                f"replaces {replaced}, but the latest version PFI knows of set {set_id} is "
                f"{state.latest_document.document_uid} (version {state.current_version})"
            )
        return VersionPlan(
            set_id=set_id,
            new_document=state is None,
            expected_version=state.current_version if state else 0,
            version=(state.current_version + 1) if state else 1,
            action=REPLACEMENT,
            document_uid=uid,
            replaces_uid=replaced or None,
            warnings=tuple(warnings),
            **common,
        )
    set_id = batch.set_of_uid(uid) or (str(s.set_id) if s.set_id else uid)
    state = batch.set(set_id)
    warnings = []
    if state is not None and state.latest is not None and state.latest.action == DELETION:
        return NoVersion(f"set {set_id} is already withdrawn (version {state.current_version})")
    if state is None or state.latest_document is None:
        warnings.append(f"deletes document {uid}, which PFI never received")
    elif state.latest_document.document_uid != uid:
        warnings.append(
            f"deletes document {uid}; the latest version PFI knows of set {set_id} is "
            f"{state.latest_document.document_uid}"
        )
    return VersionPlan(
        set_id=set_id,
        new_document=state is None,
        expected_version=state.current_version if state else 0,
        version=(state.current_version + 1) if state else 1,
        action=DELETION,
        document_uid=uid,
        replaces_uid=None,
        warnings=tuple(warnings),
        **common,
    )


def plan_lab(reading: LabReading, batch: BatchState, oids: DocumentOids) -> Plan:
    common = {
        "document_type": "CR-BIO",
        "document_code": cr_bio.DOCUMENT_CODE[0],
        "title": cr_bio.TITLE,
    }
    report = reading.result.report
    return _plan_built(reading, report.action, "request", common, batch, oids)


def plan_imaging(reading: ImagingReading, batch: BatchState, oids: DocumentOids) -> Plan:
    """Same rules as a CR-BIO, the exam (accession number...) tying the versions."""
    common = {
        "document_type": "CR-IMG",
        "document_code": cr_img.DOCUMENT_CODE[0],
        "title": cr_img.TITLE,
    }
    return _plan_built(reading, reading.report.action, "exam", common, batch, oids)


def _plan_built(
    reading: BuiltReading,
    report_action: ReportAction,
    what: str,
    common: dict[str, str],
    batch: BatchState,
    oids: DocumentOids,
) -> Plan:
    """Way (b): the version a report PFI builds makes (see the module doc)."""
    facts = reading.facts
    if report_action is ReportAction.WAIT:
        return NoVersion("only preliminary results: nothing validated to publish yet")
    done = batch.version_of_message(facts.message_id)
    if done is not None:
        rebuildable = (done.status == HELD and not done.open_unmapped_hold) or (
            done.status == INVALID
        )
        if rebuildable and done.action != DELETION:
            return _rebuild(done, batch, common, oids)
        return NoVersion(f"message already produced version {done.version} of {done.set_id}")
    request = reading.request
    if not request:
        if report_action is not ReportAction.PUBLISH:
            raise DocumentRefused(
                f"{'correction' if report_action is ReportAction.REPLACE else 'cancellation'} "
                + (
                    "without an order number (OBR-3, OBR-2 or ORC-4)"
                    if isinstance(reading, LabReading)
                    else "without an accession number (OBR-18), order number (OBR-3, OBR-2) "
                    "or document number (TXA-12/13)"
                )
                + ": PFI cannot find the report it applies to"
            )
        request = f"MSG-{facts.control_id}"
    set_ii = built_set_id(oids.set_id_root, facts.source, request)
    set_id = str(set_ii)
    state = batch.set(set_id)
    latest = state.latest if state else None
    if report_action is ReportAction.WITHDRAW:
        if state is None or state.latest_document is None:
            return NoVersion(f"cancellation of {what} {request}: no document was built for it")
        if latest is not None and latest.action == DELETION:
            return NoVersion(f"{what} {request} is already withdrawn")
        return VersionPlan(
            set_id=set_id,
            new_document=False,
            expected_version=state.current_version,
            version=state.current_version + 1,
            action=DELETION,
            document_uid=state.latest_document.document_uid,
            replaces_uid=None,
            supersedes_held=latest.id if latest and latest.status == HELD else None,
            **common,
        )
    if (
        latest is not None
        and latest.action != DELETION
        and latest.fingerprint == reading.fingerprint
    ):
        return NoVersion(
            f"same report re-sent unchanged (version {latest.version} of {what} {request})"
        )
    warnings: list[str] = []
    if state is None or latest is None:
        if report_action is ReportAction.REPLACE:
            warnings.append("correction of a report PFI never received: sent as version 1")
        version, action, replaces = 1, INITIAL, None
    else:
        version, action = state.current_version + 1, REPLACEMENT
        previous = state.latest_document or latest
        replaces = previous.document_uid
        if latest.action == DELETION:
            warnings.append(f"{what} {request} published again after its cancellation")
    document_uid = str(built_document_id(oids.document_id_root, set_ii, version))
    return VersionPlan(
        set_id=set_id,
        new_document=state is None,
        expected_version=state.current_version if state else 0,
        version=version,
        action=action,
        document_uid=document_uid,
        replaces_uid=replaces,
        document_ids=DocumentIds(
            parse_instance_id(document_uid),
            set_ii,
            version,
            parse_instance_id(replaces) if replaces else None,
        ),
        supersedes_held=latest.id if latest is not None and latest.status == HELD else None,
        warnings=tuple(warnings),
        **common,
    )


def _rebuild(
    done: VersionState,
    batch: BatchState,
    common: dict[str, str],
    oids: DocumentOids | None = None,
) -> Plan:
    """The same version again (released hold, invalid): only while it is the latest."""
    state = batch.set(done.set_id)
    if state is None or state.latest is None or state.latest.id != done.id:
        return NoVersion(f"version {done.version} of {done.set_id} was superseded: not rebuilt")
    ids = None
    if oids is not None:
        ids = DocumentIds(
            parse_instance_id(done.document_uid),
            parse_instance_id(done.set_id),
            done.version,
            parse_instance_id(done.replaces_uid) if done.replaces_uid else None,
        )
    return VersionPlan(
        set_id=done.set_id,
        new_document=False,
        expected_version=state.current_version,
        version=done.version,
        action=done.action,
        document_uid=done.document_uid,
        replaces_uid=done.replaces_uid,
        document_ids=ids,
        rebuild_of=done.id,
        **common,
    )


def parse_instance_id(value: str) -> InstanceId:
    """`root^extension` (or a bare root), as `str(InstanceId)` writes it."""
    root, _, extension = value.partition("^")
    return InstanceId(root, extension)


def with_warnings(plan: VersionPlan, *more: str) -> VersionPlan:
    return dataclasses.replace(plan, warnings=plan.warnings + tuple(m for m in more if m))
