"""The `outbound:` section of pfi.yaml: HL7 messages PFI sends back to the hospital.

Two feeds go back over MLLP:
- business acknowledgements (ZAM^Z01 DMP, ZAM^Z02 MSSanté DSN, ZAM^Z03 MSSanté MDN) to
  the system that sent a document per the CI-SIS transmission volet. The volet leaves
  the transport to the establishment: each sending system (told apart by the MSH-3/MSH-4
  of its message, or by the PFI source it came in on) has its own listener, so the
  endpoints are a list, first match wins;
- the "ORU with masking data" to the DPI: which document went where, with which
  visibility, so that the patient record shows what was shared.

No endpoint configured means nothing is sent (and the log says so once per document),
not an error: many establishments start without these feeds.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pfi.config.base import Port, Section

HdText = Annotated[str, Field(max_length=227, pattern=r"^[^|^~\\&\r\n]*$")]


class MllpEndpoint(Section):
    """An MLLP listener PFI connects to; MSH-5/MSH-6 of what it receives."""

    host: str
    port: Port
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    receiving_application: HdText = ""
    receiving_facility: HdText = ""


class ReplyEndpoint(MllpEndpoint):
    """Where one sending system wants its business acknowledgements (ZAM).

    Matched against the original message: `source` (the PFI source it came in on),
    `sending_application` (MSH-3.1) and `sending_facility` (MSH-4.1); a key left out
    matches anything. Empty `receiving_*` answer to the original MSH-3/MSH-4.
    """

    source: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")] | None = None
    sending_application: HdText | None = None
    sending_facility: HdText | None = None

    def matches(self, *, source: str, sending_application: str, sending_facility: str) -> bool:
        return (
            (self.source is None or self.source == source)
            and (
                self.sending_application is None
                or self.sending_application.casefold() == sending_application.casefold()
            )
            and (
                self.sending_facility is None
                or self.sending_facility.casefold() == sending_facility.casefold()
            )
        )


class MaskingOruSettings(MllpEndpoint):
    """The DPI's listener for the ORU carrying each document's masking and destinations."""

    receiving_application: HdText = "DPI"
    include_cda: bool = Field(
        default=True,
        description="carry the CDA (base64, OBX ED) so that the DPI can file the document",
    )


class OutboundRetry(Section):
    """How the HL7 sender retries a message its peer refused (AE/AR) or did not answer.

    Messages to one endpoint leave in order: the head of the queue is retried (after
    `initial_backoff_s`, doubling up to `max_backoff_s`) before anything after it goes,
    until `max_attempts`; then it is dead (kept, with the reason; `pfi outbound retry`)
    and the next goes.
    """

    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 8
    initial_backoff_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    max_backoff_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 200
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0

    @model_validator(mode="after")
    def _backoff_order(self) -> OutboundRetry:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("max_backoff_s must be at least initial_backoff_s")
        return self


class OutboundSettings(Section):
    application: HdText = Field(default="PFI", min_length=1, description="MSH-3 of PFI")
    facility: HdText = Field(default="", description="MSH-4 of PFI (the establishment)")
    processing_id: Literal["P", "T", "D"] = "P"
    charset: Literal["UNICODE UTF-8", "8859/15"] = "UNICODE UTF-8"
    business_acks: list[ReplyEndpoint] = Field(
        default_factory=list,
        description="ZAM endpoints per sending system; the first that matches is used",
    )
    masking_oru: MaskingOruSettings | None = Field(
        default=None, description="empty: no ORU with masking data to the DPI"
    )
    retry: OutboundRetry = Field(
        default_factory=OutboundRetry, description="retries of a refused or unanswered message"
    )

    @model_validator(mode="after")
    def _catch_all_last(self) -> OutboundSettings:
        for i, endpoint in enumerate(self.business_acks[:-1]):
            if (
                endpoint.source is None
                and endpoint.sending_application is None
                and endpoint.sending_facility is None
            ):
                raise ValueError(
                    f"business_acks[{i}] matches every sender, so the endpoints after it "
                    "are never used: put it last"
                )
        return self

    @property
    def configured(self) -> bool:
        """Whether any reply can be owed: without an endpoint nothing is queued or sent."""
        return bool(self.business_acks) or self.masking_oru is not None

    def reply_endpoint(
        self, *, source: str, sending_application: str, sending_facility: str
    ) -> ReplyEndpoint | None:
        """The first endpoint for this sender, or None (no ZAM for it)."""
        return next(
            (
                e
                for e in self.business_acks
                if e.matches(
                    source=source,
                    sending_application=sending_application,
                    sending_facility=sending_facility,
                )
            ),
            None,
        )
