"""What the inbound integration needs from pfi.yaml, resolved once."""

from __future__ import annotations

from dataclasses import dataclass

from pfi.config.model import Settings
from pfi.config.mssante import InboundDpiEndpoint, MssImapSettings


@dataclass(frozen=True, slots=True)
class InboundConfig:
    imap: MssImapSettings  # with `mssante.inbound.mailbox` applied
    dpi: InboundDpiEndpoint
    sending_application: str
    sending_facility: str
    processing_id: str
    poll_interval_s: float
    resend_after_s: float
    patient_domain: str = "patient.mssante.fr"

    @classmethod
    def of(cls, settings: Settings) -> InboundConfig | None:
        """None when `mssante` is off, or `mssante.inbound` absent or disabled."""
        mss = settings.mssante
        if mss is None or not mss.enabled or mss.inbound is None or not mss.inbound.enabled:
            return None
        inbound = mss.inbound
        imap = mss.imap
        if inbound.mailbox is not None and inbound.mailbox != imap.mailbox:
            imap = imap.model_copy(update={"mailbox": inbound.mailbox})
        return cls(
            imap=imap,
            dpi=inbound.dpi,
            sending_application=settings.outbound.application,
            sending_facility=settings.outbound.facility,
            processing_id=settings.outbound.processing_id,
            poll_interval_s=imap.poll_interval_s,
            resend_after_s=inbound.resend_after_s,
            patient_domain=mss.patient_domain,
        )
