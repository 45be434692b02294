"""What the simulated DMP does with a request: the strict checks, then the registry change.

Checks, in the order a real DMP applies them: SOAP/MTOM structure (else a SOAP Sender fault),
WS-Addressing action, VIHF (present, well-formed, signed), metadata completeness, value
sets, patient consistency (submission set, entries, VIHF, CDA), document/metadata pairing,
hash and size, CDA XSD, XAdES submission-set signature, uniqueId duplicates, associations.
Every refusal is a RegistryResponse Failure with the ITI error code and a codeContext that
says exactly what was wrong.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources

from cryptography import x509
from lxml import etree

from pfi.simulators.dmp.registry import DmpRegistry, StoredEntry, ins_of
from pfi.transforms.xds import ns, value_sets
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.ebrim import ParsedSubmission, parse_submit_objects
from pfi.transforms.xds.errors import MtomError, SoapError, XdsError, XdsMetadataError
from pfi.transforms.xds.iti41 import read_provide_and_register
from pfi.transforms.xds.model import DocumentEntry, SubmissionSet
from pfi.transforms.xds.mtom import MtomMessage, encode_mtom
from pfi.transforms.xds.registry_response import RegistryError, render_registry_response
from pfi.transforms.xds.soap import (
    SoapEnvelope,
    build_envelope,
    parse_envelope,
    render_fault,
    soap_root,
)
from pfi.transforms.xds.vihf import VihfClaims, VihfError, find_vihf, verify_vihf
from pfi.transforms.xds.xades import (
    SIGNATURE_CLASS,
    SIGNATURE_FORMAT,
    XadesError,
    verify_submission_signature,
)

_CDA_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
V3 = {"h": ns.HL7V3}


@cache
def cda_schema() -> etree.XMLSchema:
    """CDA_extended.xsd of the CI-SIS kit, compiled once."""
    path = resources.files("pfi.resources").joinpath(
        "ci-sis/TestContenuCDA-3.0/infrastructure/cda/CDA_extended.xsd"
    )
    with resources.as_file(path) as xsd:
        return etree.XMLSchema(etree.parse(str(xsd)))


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class SimulatorOptions:
    require_signed_submission_set: bool = True
    require_signed_vihf: bool = True
    validate_cda_schema: bool = True
    trusted_signers: tuple[x509.Certificate, ...] = ()


class Refusal(Exception):
    def __init__(self, errors: Iterable[RegistryError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(e.describe() for e in self.errors))


def _err(code: str, context: str, location: str = "") -> RegistryError:
    return RegistryError(code, context, ns.SEVERITY_ERROR, location)


def _fault(
    code: str, reason: str, subcodes: tuple[str, ...] = (), relates_to: str = ""
) -> HttpAnswer:
    status = 400 if code == "Sender" else 500
    return HttpAnswer(
        status,
        "application/soap+xml; charset=UTF-8",
        render_fault(code, reason, subcodes, relates_to=relates_to),
    )


def _now() -> datetime:
    return datetime.now(UTC)


class DmpService:
    """ITI-41 (repository) and ITI-57 (registry) of the simulated DMP."""

    def __init__(self, registry: DmpRegistry, options: SimulatorOptions) -> None:
        self.registry = registry
        self.options = options

    # --- entry points -----------------------------------------------------------------

    def handle(self, body: bytes, content_type: str, expected_action: str) -> HttpAnswer:
        try:
            root, mtom = soap_root(body, content_type)
            envelope = parse_envelope(root)
        except (MtomError, SoapError) as exc:
            return _fault("Sender", f"malformed request: {exc}")
        if envelope.action != expected_action:
            return _fault(
                "Sender",
                f"wsa:Action {envelope.action or '(missing)'} is not {expected_action} "
                "on this endpoint",
                ("wsa:ActionNotSupported",),
                envelope.message_id,
            )
        if not envelope.message_id:
            return _fault(
                "Sender", "wsa:MessageID is missing", ("wsa:MessageAddressingHeaderRequired",)
            )
        try:
            claims = verify_vihf(
                find_vihf(envelope.header),
                trusted=self.options.trusted_signers,
                require_signature=self.options.require_signed_vihf,
            )
        except VihfError as exc:
            return _fault(
                "Sender", f"VIHF rejected: {exc}", ("wsse:InvalidSecurity",), envelope.message_id
            )
        try:
            if expected_action == ns.ACTION_ITI41:
                self._provide_and_register(envelope, mtom, claims)
            else:
                self._update_document_set(envelope, claims)
        except Refusal as refusal:
            return self._response(expected_action, envelope, "failure", refusal.errors)
        except (MtomError, SoapError) as exc:
            return _fault("Sender", f"malformed request: {exc}", relates_to=envelope.message_id)
        return self._response(expected_action, envelope, "success", ())

    def refusal(
        self, body: bytes, content_type: str, action: str, error: RegistryError
    ) -> HttpAnswer:
        """A RegistryResponse Failure with `error` for this request (failure injection)."""
        try:
            envelope = parse_envelope(soap_root(body, content_type)[0])
        except (MtomError, SoapError) as exc:
            return _fault("Sender", f"malformed request: {exc}")
        return self._response(action, envelope, "failure", (error,))

    def _response(
        self,
        action: str,
        request: SoapEnvelope,
        status: str,
        errors: tuple[RegistryError, ...],
    ) -> HttpAnswer:
        response_action = (
            ns.ACTION_ITI41_RESPONSE if action == ns.ACTION_ITI41 else ns.ACTION_ITI57_RESPONSE
        )
        env = build_envelope(
            action=response_action,
            to="",
            message_id=f"urn:uuid:{uuid.uuid4()}",
            body=render_registry_response(status, errors),  # type: ignore[arg-type]
            relates_to=request.message_id,
        )
        xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
        if action == ns.ACTION_ITI41:
            body, content_type = encode_mtom(xml, [], soap_action=response_action)
            return HttpAnswer(200, content_type, body)
        return HttpAnswer(
            200, f'application/soap+xml; charset=UTF-8; action="{response_action}"', xml
        )

    # --- ITI-41 -----------------------------------------------------------------------

    def _provide_and_register(
        self, envelope: SoapEnvelope, mtom: MtomMessage | None, claims: VihfClaims
    ) -> None:
        try:
            received = read_provide_and_register(envelope, mtom)
        except XdsMetadataError as exc:
            raise Refusal([_err("XDSRegistryMetadataError", str(exc))]) from exc
        sub = received.submission
        ss = self._one_submission_set(sub)
        self._check_patient(ss, sub.entries, claims)
        errors: list[RegistryError] = []
        entry_ids = {e.entry_uuid for e in sub.entries}
        for missing in sorted(entry_ids - set(received.documents)):
            errors.append(
                _err("XDSMissingDocument", f"DocumentEntry {missing} has no xdsb:Document")
            )
        for extra in sorted(set(received.documents) - entry_ids):
            errors.append(
                _err("XDSMissingDocumentMetadata", f"xdsb:Document {extra} has no DocumentEntry")
            )
        if errors:
            raise Refusal(errors)
        seen: set[str] = set()
        for entry in sub.entries:
            if entry.unique_id in seen:
                errors.append(
                    _err("XDSRegistryDuplicateUniqueIdInMessage", f"uniqueId {entry.unique_id}")
                )
            seen.add(entry.unique_id)
            errors += self._check_entry_codes(entry)
            errors += self._check_content(entry, received.documents[entry.entry_uuid])
        errors += self._check_content_type(ss.content_type_code)
        if errors:
            raise Refusal(errors)
        signatures = [e for e in sub.entries if e.class_code.code == SIGNATURE_CLASS.code]
        documents = [e for e in sub.entries if e.class_code.code != SIGNATURE_CLASS.code]
        self._check_signature(ss, signatures, documents, received.documents)
        # A uniqueId already registered is answered as such before the associations are
        # looked at: a resubmission of a replacement that went through must read
        # "duplicate", not "RPLC target is not Approved" (its target is Deprecated now).
        self._check_duplicates(documents)
        self._check_associations(ss, sub, documents, signatures)
        self._register(ss, sub, documents, signatures, received.documents)

    def _one_submission_set(self, sub: ParsedSubmission) -> SubmissionSet:
        if len(sub.submission_sets) != 1:
            raise Refusal(
                [
                    _err(
                        "XDSRegistryMetadataError",
                        f"expected one SubmissionSet, found {len(sub.submission_sets)}",
                    )
                ]
            )
        ss = sub.submission_sets[0]
        if not ss.authors:
            raise Refusal([_err("XDSRegistryMetadataError", "SubmissionSet.author is missing")])
        return ss

    def _check_patient(
        self, ss: SubmissionSet, entries: Iterable[DocumentEntry], claims: VihfClaims
    ) -> None:
        ins = ins_of(ss.patient_id)
        oid = ss.patient_id.split("&")[1] if "&" in ss.patient_id else ""
        if oid not in ns.INS_OIDS:
            raise Refusal(
                [
                    _err(
                        "XDSUnknownPatientId",
                        f"patientId {ss.patient_id} is not an INS (authority {oid or '?'})",
                    )
                ]
            )
        if ins in self.registry.closed_ins:
            raise Refusal([_err("XDSUnknownPatientId", f"the DMP of INS {ins} is closed")])
        wrong = [e.entry_uuid for e in entries if e.patient_id != ss.patient_id]
        if wrong:
            raise Refusal(
                [
                    _err(
                        "XDSPatientIdDoesNotMatch",
                        f"DocumentEntry patientId differs from the SubmissionSet's in {wrong}",
                    )
                ]
            )
        if ins_of(claims.patient_ins) != ins:
            raise Refusal(
                [
                    _err(
                        "XDSPatientIdDoesNotMatch",
                        f"the VIHF resource-id {claims.patient_ins} is not the submission's "
                        f"patient {ss.patient_id}",
                    )
                ]
            )

    def _check_entry_codes(self, entry: DocumentEntry) -> list[RegistryError]:
        errors: list[RegistryError] = []
        where = f"DocumentEntry {entry.entry_uuid}"

        def check(attribute: str, code: Code, vs: value_sets.ValueSet) -> None:
            if (code.code, code.scheme) not in vs:
                errors.append(
                    _err(
                        "XDSRegistryMetadataError",
                        f"{attribute} {code.code!r} (codingScheme {code.scheme}) "
                        f"is not in {vs.name}",
                        where,
                    )
                )

        check("classCode", entry.class_code, value_sets.class_code())
        check("typeCode", entry.type_code, value_sets.type_code())
        check(
            "healthcareFacilityTypeCode",
            entry.healthcare_facility_type_code,
            value_sets.healthcare_facility_type(),
        )
        check("practiceSettingCode", entry.practice_setting_code, value_sets.practice_setting())
        for code in entry.confidentiality_codes:
            check("confidentialityCode", code, value_sets.confidentiality())
        formats = {(c.code, c.scheme) for c in value_sets.format_codes().codes}
        formats.add((SIGNATURE_FORMAT.code, SIGNATURE_FORMAT.scheme))
        if (entry.format_code.code, entry.format_code.scheme) not in formats:
            errors.append(
                _err(
                    "XDSRegistryMetadataError",
                    f"formatCode {entry.format_code.code!r} is not in JDV_J60 (ASS_A11/A12)",
                    where,
                )
            )
        hl7 = [c for c in entry.confidentiality_codes if c.scheme == ns.HL7_CONFIDENTIALITY]
        if len(hl7) != 1:
            errors.append(
                _err(
                    "XDSRegistryMetadataError",
                    "exactly one N/R/V confidentialityCode is required",
                    where,
                )
            )
        for author in entry.authors:
            for spec in author.specialties:
                parts = spec.split("^")
                if len(parts) < 3 or (parts[0], parts[2]) not in value_sets.author_specialty():
                    errors.append(
                        _err(
                            "XDSRegistryMetadataError",
                            f"authorSpecialty {spec!r} not in JDV_J01",
                            where,
                        )
                    )
        for slot, value in (
            ("creationTime", entry.creation_time),
            ("languageCode", entry.language_code),
            ("sourcePatientId", entry.source_patient_id),
        ):
            if not value:
                errors.append(_err("XDSRegistryMetadataError", f"{slot} is missing", where))
        if not entry.title:
            errors.append(_err("XDSRegistryMetadataError", "title (rim:Name) is missing", where))
        if entry.class_code.code != SIGNATURE_CLASS.code and not entry.legal_authenticator:
            errors.append(_err("XDSRegistryMetadataError", "legalAuthenticator is missing", where))
        return errors

    def _check_content_type(self, code: Code) -> list[RegistryError]:
        if (code.code, code.scheme) in value_sets.content_type_code():
            return []
        return [
            _err(
                "XDSRegistryMetadataError",
                f"contentTypeCode {code.code!r} (codingScheme {code.scheme}) is not in "
                f"{value_sets.content_type_code().name}",
            )
        ]

    def _check_content(self, entry: DocumentEntry, content: bytes) -> list[RegistryError]:
        where = f"DocumentEntry {entry.entry_uuid}"
        errors = []
        actual = hashlib.sha1(content).hexdigest()
        if entry.hash.lower() != actual:
            errors.append(
                _err(
                    "XDSRepositoryMetadataError",
                    f"hash mismatch: metadata says {entry.hash}, the document's SHA-1 is {actual}",
                    where,
                )
            )
        if entry.size != len(content):
            errors.append(
                _err(
                    "XDSRepositoryMetadataError",
                    f"size mismatch: metadata says {entry.size}, "
                    f"the document has {len(content)} bytes",
                    where,
                )
            )
        if errors or entry.class_code.code == SIGNATURE_CLASS.code:
            return errors
        try:
            cda = etree.fromstring(content, _CDA_PARSER)
        except etree.XMLSyntaxError as exc:
            return [_err("XDSRepositoryError", f"the CDA is not well-formed XML: {exc}", where)]
        if self.options.validate_cda_schema and not cda_schema().validate(cda):
            log = cda_schema().error_log
            first = log[0] if len(log) else None
            detail = f"line {first.line}: {first.message}" if first else "invalid"
            return [
                _err(
                    "XDSRepositoryError",
                    f"the CDA does not validate against CDA_extended.xsd: {detail}",
                    where,
                )
            ]
        id_el = cda.find("h:id", V3)
        cda_uid = ""
        if id_el is not None:
            cda_uid = id_el.get("root", "") + (
                f"^{id_el.get('extension')}" if id_el.get("extension") else ""
            )
        if cda_uid != entry.unique_id:
            errors.append(
                _err(
                    "XDSRegistryMetadataError",
                    f"uniqueId {entry.unique_id} is not the CDA id {cda_uid}",
                    where,
                )
            )
        ins = ins_of(entry.patient_id)
        cda_ids = [
            pid.get("extension", "")
            for pid in cda.iterfind("h:recordTarget/h:patientRole/h:id", V3)
        ]
        if ins not in cda_ids:
            errors.append(
                _err(
                    "XDSPatientIdDoesNotMatch",
                    f"patientId {entry.patient_id} is not a recordTarget id of the CDA",
                    where,
                )
            )
        return errors

    def _check_signature(
        self,
        ss: SubmissionSet,
        signatures: list[DocumentEntry],
        documents: list[DocumentEntry],
        contents: dict[str, bytes],
    ) -> None:
        if not signatures:
            if self.options.require_signed_submission_set:
                raise Refusal(
                    [
                        _err(
                            "XDSRegistryMetadataError",
                            "the submission set is not signed "
                            "(no XAdES Digital Signature document)",
                        )
                    ]
                )
            return
        if len(signatures) > 1:
            raise Refusal([_err("XDSRegistryMetadataError", "more than one signature document")])
        try:
            verify_submission_signature(
                contents[signatures[0].entry_uuid],
                submission_set_unique_id=ss.unique_id,
                documents={d.unique_id: contents[d.entry_uuid] for d in documents},
                trusted=self.options.trusted_signers,
            )
        except XadesError as exc:
            raise Refusal(
                [_err("XDSRegistryMetadataError", f"XAdES signature rejected: {exc}")]
            ) from exc

    def _check_associations(
        self,
        ss: SubmissionSet,
        sub: ParsedSubmission,
        documents: list[DocumentEntry],
        signatures: list[DocumentEntry],
    ) -> None:
        members = {
            a.target
            for a in sub.associations
            if a.association_type == ns.ASSOC_HAS_MEMBER and a.source == ss.entry_uuid
        }
        missing = [e.entry_uuid for e in (*documents, *signatures) if e.entry_uuid not in members]
        if missing:
            raise Refusal(
                [_err("XDSRegistryMetadataError", f"no HasMember association to {missing}")]
            )
        for assoc in sub.associations:
            if assoc.association_type == ns.ASSOC_HAS_MEMBER:
                if assoc.slot("SubmissionSetStatus") != ("Original",):
                    raise Refusal(
                        [
                            _err(
                                "XDSRegistryMetadataError",
                                "HasMember needs SubmissionSetStatus=Original",
                            )
                        ]
                    )
            elif assoc.association_type == ns.ASSOC_SIGNS:
                if assoc.target != ss.entry_uuid or assoc.source not in {
                    s.entry_uuid for s in signatures
                }:
                    raise Refusal(
                        [
                            _err(
                                "XDSRegistryMetadataError",
                                "signs association must go from the signature "
                                "to the submission set",
                            )
                        ]
                    )
            elif assoc.association_type == ns.ASSOC_RPLC:
                self._check_replacement(assoc.source, assoc.target, documents)
            else:
                raise Refusal(
                    [
                        _err(
                            "XDSRegistryMetadataError",
                            f"association type {assoc.association_type} not accepted in ITI-41",
                        )
                    ]
                )

    def _check_replacement(self, source: str, target: str, documents: list[DocumentEntry]) -> None:
        new = next((d for d in documents if d.entry_uuid == source), None)
        old = self.registry.get(target)
        if new is None:
            raise Refusal(
                [
                    _err(
                        "XDSRegistryMetadataError",
                        f"RPLC source {source} is not a document of this submission",
                    )
                ]
            )
        if old is None:
            raise Refusal(
                [
                    _err(
                        "UnresolvedReferenceException",
                        f"RPLC target {target} is not a registered entry",
                    )
                ]
            )
        if old.status != ns.STATUS_APPROVED:
            raise Refusal(
                [
                    _err(
                        "XDSRegistryMetadataError",
                        f"RPLC target {target} is not Approved "
                        f"(it is {old.status.rsplit(':', 1)[-1]})",
                    )
                ]
            )
        if old.entry.patient_id != new.patient_id:
            raise Refusal(
                [
                    _err(
                        "XDSPatientIdDoesNotMatch",
                        "the replacement is for another patient than the replaced document",
                    )
                ]
            )

    def _check_duplicates(self, documents: list[DocumentEntry]) -> None:
        errors = []
        for doc in documents:
            existing = self.registry.by_unique_id(doc.unique_id)
            if existing is None:
                continue
            if existing.entry.hash != doc.hash:
                errors.append(
                    _err(
                        "XDSNonIdenticalHash",
                        f"uniqueId {doc.unique_id} is registered with another hash",
                    )
                )
            else:
                errors.append(
                    _err(
                        "XDSDuplicateUniqueIdInRegistry",
                        f"uniqueId {doc.unique_id} is already registered",
                    )
                )
        if errors:
            raise Refusal(errors)

    def _register(
        self,
        ss: SubmissionSet,
        sub: ParsedSubmission,
        documents: list[DocumentEntry],
        signatures: list[DocumentEntry],
        contents: dict[str, bytes],
    ) -> None:
        now = _now().isoformat()
        for doc in (*documents, *signatures):
            set_id, cda_version = "", ""
            if doc in documents:
                cda = etree.fromstring(contents[doc.entry_uuid], _CDA_PARSER)
                set_el = cda.find("h:setId", V3)
                if set_el is not None:
                    set_id = set_el.get("root", "") + (
                        f"^{set_el.get('extension')}" if set_el.get("extension") else ""
                    )
                ver = cda.find("h:versionNumber", V3)
                cda_version = ver.get("value", "") if ver is not None else ""
            self.registry.add(
                StoredEntry(
                    entry=doc,
                    logical_id=doc.entry_uuid,
                    version=1,
                    status=ns.STATUS_APPROVED,
                    received_at=now,
                    set_id=set_id,
                    cda_version=cda_version,
                    submission_set_unique_id=ss.unique_id,
                    content=contents[doc.entry_uuid],
                )
            )
        for assoc in sub.associations:
            if assoc.association_type == ns.ASSOC_RPLC:
                self.registry.update(
                    assoc.target, status=ns.STATUS_DEPRECATED, replaced_by=assoc.source
                )

    # --- ITI-57 -----------------------------------------------------------------------

    def _update_document_set(self, envelope: SoapEnvelope, claims: VihfClaims) -> None:
        req = envelope.body_child
        if req.tag != f"{{{ns.LCM}}}SubmitObjectsRequest":
            raise SoapError(f"expected lcm:SubmitObjectsRequest, got {req.tag!r}")
        try:
            sub = parse_submit_objects(req)
        except XdsError as exc:
            raise Refusal([_err("XDSRegistryMetadataError", str(exc))]) from exc
        ss = self._one_submission_set(sub)
        self._check_patient(ss, sub.entries, claims)
        errors = self._check_content_type(ss.content_type_code)
        for entry in sub.entries:
            errors += self._check_entry_codes(entry)
        if errors:
            raise Refusal(errors)
        status_updates = [
            a for a in sub.associations if a.association_type == ns.ASSOC_UPDATE_AVAILABILITY_STATUS
        ]
        members = [a for a in sub.associations if a.association_type == ns.ASSOC_HAS_MEMBER]
        if not status_updates and not sub.entries:
            raise Refusal(
                [
                    _err(
                        "XDSMetadataUpdateError",
                        "the update carries neither a DocumentEntry "
                        "nor an UpdateAvailabilityStatus",
                    )
                ]
            )
        for assoc in status_updates:
            self._status_update(
                ss, assoc.target, assoc.slot("OriginalStatus"), assoc.slot("NewStatus")
            )
        for entry in sub.entries:
            link = next(
                (a for a in members if a.target == entry.entry_uuid and a.source == ss.entry_uuid),
                None,
            )
            if link is None:
                raise Refusal(
                    [_err("XDSRegistryMetadataError", f"no HasMember to {entry.entry_uuid}")]
                )
            self._metadata_update(ss, entry, link.slot("PreviousVersion"))

    def _status_update(
        self, ss: SubmissionSet, target: str, original: tuple[str, ...], new: tuple[str, ...]
    ) -> None:
        stored = self.registry.get(target)
        if stored is None:
            raise Refusal(
                [_err("UnresolvedReferenceException", f"entry {target} is not registered")]
            )
        if stored.entry.patient_id != ss.patient_id:
            raise Refusal(
                [_err("XDSPatientIdDoesNotMatch", f"entry {target} belongs to another patient")]
            )
        if len(original) != 1 or len(new) != 1:
            raise Refusal(
                [_err("XDSMetadataUpdateError", "OriginalStatus and NewStatus slots are required")]
            )
        if original[0] != stored.status:
            raise Refusal(
                [
                    _err(
                        "XDSMetadataUpdateError",
                        f"OriginalStatus {original[0]} is not the current status {stored.status}",
                    )
                ]
            )
        if new[0] not in (ns.STATUS_DELETED, ns.STATUS_ARCHIVED, ns.STATUS_APPROVED):
            raise Refusal([_err("XDSMetadataUpdateError", f"NewStatus {new[0]} is not allowed")])
        self.registry.update(target, status=new[0])

    def _metadata_update(
        self, ss: SubmissionSet, entry: DocumentEntry, previous: tuple[str, ...]
    ) -> None:
        if not entry.logical_id:
            raise Refusal(
                [
                    _err(
                        "XDSMetadataUpdateError",
                        f"ExtrinsicObject {entry.entry_uuid} has no lid (logical id)",
                    )
                ]
            )
        current = self.registry.current_of(entry.logical_id)
        if current is None:
            raise Refusal(
                [
                    _err(
                        "UnresolvedReferenceException",
                        f"no registered entry with logical id {entry.logical_id}",
                    )
                ]
            )
        if len(previous) != 1 or previous[0] != str(current.version):
            raise Refusal(
                [
                    _err(
                        "XDSMetadataVersionError",
                        f"PreviousVersion {previous[0] if previous else '(missing)'} but the "
                        f"registry holds version {current.version}",
                    )
                ]
            )
        if current.status != ns.STATUS_APPROVED:
            raise Refusal(
                [
                    _err(
                        "XDSMetadataUpdateError",
                        f"entry {current.entry.entry_uuid} is not Approved",
                    )
                ]
            )
        immutable = ("unique_id", "patient_id", "hash", "size")
        changed = [f for f in immutable if getattr(entry, f) != getattr(current.entry, f)]
        if changed:
            raise Refusal(
                [
                    _err(
                        "XDSMetadataUpdateError",
                        f"a metadata update cannot change {', '.join(changed)}",
                    )
                ]
            )
        if self.registry.get(entry.entry_uuid) is not None:
            raise Refusal(
                [_err("XDSMetadataUpdateError", f"entryUUID {entry.entry_uuid} is already used")]
            )
        self.registry.update(current.entry.entry_uuid, status=ns.STATUS_DEPRECATED)
        self.registry.add(
            StoredEntry(
                entry=entry,
                logical_id=entry.logical_id,
                version=current.version + 1,
                status=ns.STATUS_APPROVED,
                received_at=_now().isoformat(),
                set_id=current.set_id,
                cda_version=current.cda_version,
                submission_set_unique_id=ss.unique_id,
                content=current.content,
            )
        )
