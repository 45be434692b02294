"""Stable identities for the documents PFI builds from plain results (way b).

A lab or a RIS does not number its reports: a correction is a new message about the same
request. The request number is what ties them, so:

- setId = `<oids.set_id_root>` + extension `<SOURCE>-<request>`, where the request is,
  for a lab, its filler order number (first OBR-3, the lab's "numéro de demande"), else
  the placer group / order number (ORC-4, first OBR-2); for a RIS, the exam's accession
  number (OBR-18), else the filler (OBR-3), else the placer number (OBR-2), else the MDM
  document number (`ImagingReport.document_key`). One request = one document; every
  later message about it is a new version of that document.
- ClinicalDocument/id of version n = `<oids.document_id_root>` + `<SOURCE>-<request>.<n>`,
  so that version n+1's RPLC names version n without looking anything up, and a rebuild
  of a held version gives the same id.
- A request number with characters outside [A-Za-z0-9.-_] or longer than 40 is kept
  readable where possible and made unique with a digest suffix.

A report without any order number cannot be found again by a correction: its initial
version gets a setId from the message control id, and a correction or cancellation
without an order number is refused (nothing to replace).
"""

from __future__ import annotations

import hashlib
import re

from pfi.transforms.cda.summary import InstanceId
from pfi.transforms.hl7 import Hl7Message

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_REQUEST = 40


def _safe(value: str) -> str:
    cleaned = _SAFE.sub("_", value.strip())
    if cleaned == value.strip() and len(cleaned) <= _MAX_REQUEST:
        return cleaned
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:10]
    return f"{cleaned[: _MAX_REQUEST - 12]}-h{digest}"


def set_key(source: str, request: str) -> str:
    """The setId extension of a request: `SGL-REQ12345`, `RIS-ACC1003`."""
    return f"{source}-{_safe(request)}"


def built_set_id(root: str, source: str, request: str) -> InstanceId:
    return InstanceId(root, set_key(source, request))


def built_document_id(root: str, set_id: InstanceId, version: int) -> InstanceId:
    return InstanceId(root, f"{set_id.extension}.{version}")


def message_fingerprint(msg: Hl7Message) -> str:
    """SHA-256 of every segment but MSH: the same report re-sent with a new MSH-10 or
    MSH-7 has the same fingerprint and makes no new version."""
    digest = hashlib.sha256()
    for seg in msg.segments:
        if seg.name == "MSH":
            continue
        digest.update(str(seg).encode("utf-8", "surrogatepass"))
        digest.update(b"\r")
    return digest.hexdigest()
