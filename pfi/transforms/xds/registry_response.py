"""RegistryResponse (ebRS 3.0) reading and writing, and classifying what the DMP answered.

A DMP answer is one of: a RegistryResponse (Success, PartialSuccess or Failure with
RegistryErrors), a SOAP fault, or garbage. `read_dmp_answer` turns the HTTP body into one of
the first two, with a human reason built from the error codes and their codeContext.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from pfi.transforms.xds import ns
from pfi.transforms.xds.errors import SoapError
from pfi.transforms.xds.soap import SoapFault, parse_envelope, parse_fault, soap_root

_RS = f"{{{ns.RS}}}"
Status = Literal["success", "partial", "failure"]
_STATUS_URN = {
    "success": ns.RESPONSE_SUCCESS,
    "partial": ns.RESPONSE_PARTIAL_SUCCESS,
    "failure": ns.RESPONSE_FAILURE,
}
_URN_STATUS = {v: k for k, v in _STATUS_URN.items()}

# What an ops person should read for the codes of ITI TF-3 Table 4.2.4.1-2 (and DMP usage).
ERROR_MEANINGS = {
    "XDSMissingDocument": "a DocumentEntry has no document attached",
    "XDSMissingDocumentMetadata": "a document is attached without its DocumentEntry",
    "XDSRegistryMetadataError": "the metadata is incomplete or inconsistent",
    "XDSRepositoryMetadataError": "the document does not match its metadata (hash, size...)",
    "XDSRegistryDuplicateUniqueIdInMessage": "a uniqueId appears twice in the submission",
    "XDSDuplicateUniqueIdInRegistry": "this uniqueId is already registered",
    "XDSNonIdenticalHash": "same uniqueId already registered with different content",
    "XDSNonIdenticalSize": "same uniqueId already registered with a different size",
    "XDSPatientIdDoesNotMatch": "the patient identifiers of the submission do not agree",
    "XDSUnknownPatientId": "the patient (INS) has no DMP or is unknown",
    "XDSRegistryError": "the registry failed to process the request",
    "XDSRepositoryError": "the repository failed to process the request",
    "XDSRegistryBusy": "the registry is too busy",
    "XDSRepositoryBusy": "the repository is too busy",
    "XDSRegistryOutOfResources": "the registry is out of resources",
    "XDSRepositoryOutOfResources": "the repository is out of resources",
    "XDSMetadataUpdateError": "the metadata update is not allowed",
    "XDSMetadataVersionError": "PreviousVersion does not match the registry's current version",
    "XDSMetadataUpdateOperationError": "the update operation is not supported",
    "UnresolvedReferenceException": "an association points at an unknown object",
    "XDSUnknownRepositoryId": "unknown repository",
    "InvalidRequestException": "the request is invalid",
}
# Failures that go away on their own: the delivery worker retries them.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "XDSRegistryBusy",
        "XDSRepositoryBusy",
        "XDSRegistryOutOfResources",
        "XDSRepositoryOutOfResources",
    }
)


@dataclass(frozen=True, slots=True)
class RegistryError:
    error_code: str
    code_context: str
    severity: str = ns.SEVERITY_ERROR
    location: str = ""

    @property
    def is_error(self) -> bool:
        return not self.severity.endswith("Warning")

    def describe(self) -> str:
        meaning = ERROR_MEANINGS.get(self.error_code)
        head = f"{self.error_code} ({meaning})" if meaning else self.error_code
        text = f"{head}: {self.code_context}" if self.code_context else head
        return text if self.is_error else f"warning {text}"


@dataclass(frozen=True, slots=True)
class RegistryResponse:
    status: Status
    errors: tuple[RegistryError, ...] = ()
    request_id: str = ""

    @property
    def reason(self) -> str:
        """One line for the delivery ledger: the status and every error, most severe first."""
        if not self.errors:
            if self.status == "success":
                return "accepted"
            label = "partially accepted" if self.status == "partial" else "refused"
            return f"{label} (no RegistryError given)"
        ordered = sorted(self.errors, key=lambda e: not e.is_error)
        return "; ".join(e.describe() for e in ordered)

    @property
    def transient(self) -> bool:
        """A failure made only of busy/out-of-resources errors: worth retrying."""
        errors = [e for e in self.errors if e.is_error]
        return (
            self.status == "failure"
            and bool(errors)
            and all(e.error_code in TRANSIENT_ERROR_CODES for e in errors)
        )


def render_registry_response(
    status: Status, errors: Sequence[RegistryError] = (), request_id: str = ""
) -> etree._Element:
    resp = etree.Element(f"{_RS}RegistryResponse", nsmap={"rs": ns.RS}, status=_STATUS_URN[status])
    if request_id:
        resp.set("requestId", request_id)
    if errors:
        lst = etree.SubElement(resp, f"{_RS}RegistryErrorList", highestSeverity=_highest(errors))
        for err in errors:
            el = etree.SubElement(
                lst,
                f"{_RS}RegistryError",
                errorCode=err.error_code,
                codeContext=err.code_context,
                severity=err.severity,
            )
            if err.location:
                el.set("location", err.location)
    return resp


def _highest(errors: Sequence[RegistryError]) -> str:
    return ns.SEVERITY_ERROR if any(e.is_error for e in errors) else ns.SEVERITY_WARNING


def parse_registry_response(el: etree._Element) -> RegistryResponse:
    if el.tag != f"{_RS}RegistryResponse":
        raise SoapError(f"expected rs:RegistryResponse in the SOAP body, got {el.tag!r}")
    status_urn = el.get("status", "")
    status = _URN_STATUS.get(status_urn)
    if status is None:
        raise SoapError(f"RegistryResponse with unknown status {status_urn!r}")
    errors = tuple(
        RegistryError(
            error_code=e.get("errorCode", ""),
            code_context=(e.get("codeContext") or e.text or "").strip(),
            severity=e.get("severity", ns.SEVERITY_ERROR),
            location=e.get("location", ""),
        )
        for e in el.iter(f"{_RS}RegistryError")
    )
    return RegistryResponse(status, errors, el.get("requestId", ""))


def read_dmp_answer(body: bytes, content_type: str) -> RegistryResponse | SoapFault:
    """The RegistryResponse or SOAP fault in an HTTP answer body (MTOM or plain SOAP).

    Raises SoapError/MtomError when the body is neither: the caller decides whether that is
    a transient or a permanent failure (it depends on the HTTP status).
    """
    root, _ = soap_root(body, content_type)
    envelope = parse_envelope(root)
    child = envelope.body_child
    if child.tag == f"{{{ns.SOAP12}}}Fault":
        return parse_fault(child)
    return parse_registry_response(child)
