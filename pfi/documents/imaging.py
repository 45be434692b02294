"""The CR-IMG hook: radiology reports sent as plain ORU/MDM (no CDA carried).

A RIS that follows the CI-SIS transmission volet sends its CDA (way a) and needs nothing
here. A RIS that sends a plain report (ORU^R01 with OBX text, or MDM^T02 with TXA and
OBX) needs PFI to build the CR-IMG itself. That builder (`build_cr_img` in
`pfi/transforms/cda/cr_img.py`, with its message reader) is being written on its own
branch; until it is wired here such a message is **not dropped**: the documents stage
dead-letters it with `CrImgNotAvailable` and the reason below, the message itself stays
in the store (accepted, ACKed AA), and a replay after the builder is installed makes the
document.

Wiring it, once merged: make `imaging_build_available()` return True and implement
`plan_imaging` in the stage the way `LabReading` is planned (same set/version rules, keyed
on the RIS accession number OBR-3 / TXA-12), submitting the build to the document workers
like `DocumentWorkers.submit_lab`.
"""

from __future__ import annotations

import importlib.util

CR_IMG_NOT_BUILT = (
    "CR-IMG not built: this {message_type} from {source} carries no CDA (MSH-21 does not "
    "declare 2.1^CISIS_CDA_HL7_V2) and PFI does not build CR-IMG documents from plain "
    "RIS messages yet{detail}. The message is kept (message id {message_id}); replay this "
    "dead letter once CR-IMG building is installed, or have the RIS send the CDA per the "
    "transmission volet."
)


class CrImgNotAvailable(Exception):
    """A plain RIS report arrived before PFI can build CR-IMG documents (see module doc)."""


def imaging_builder_present() -> bool:
    """Whether the CR-IMG builder module exists in this installation (not yet wired)."""
    return importlib.util.find_spec("pfi.transforms.cda.cr_img") is not None


def refuse_plain_imaging(message_type: str, source: str, message_id: int) -> CrImgNotAvailable:
    detail = (
        " (pfi.transforms.cda.cr_img is installed but not wired into the documents stage: "
        "see pfi/documents/imaging.py)"
        if imaging_builder_present()
        else ""
    )
    return CrImgNotAvailable(
        CR_IMG_NOT_BUILT.format(
            message_type=message_type, source=source, detail=detail, message_id=message_id
        )
    )
