"""DmpClient: sends ITI-41 and ITI-57 requests to the DMP and classifies the answers.

One httpx client per DmpClient (connection reuse, mutual TLS from the configured client
certificate, bounded timeouts); the signing key and certificate are read once. Building the
requests is delegated to `pfi.transforms.xds.dmp_request`; this module only does I/O and
turns what came back into a DmpOutcome.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from pfi.adapters.dmp.outcome import DmpOutcome, DmpOutcomeKind
from pfi.config.dmp import DmpSettings
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.credentials import SigningCredentials
from pfi.transforms.xds.dmp_request import (
    DmpSigner,
    PreparedRequest,
    prepare_deletion,
    prepare_masking_update,
    prepare_submission,
)
from pfi.transforms.xds.errors import XdsError
from pfi.transforms.xds.hl7_types import esc, xon
from pfi.transforms.xds.metadata import STRUCTURE_IDNST_OID
from pfi.transforms.xds.model import Author, DocumentEntry, MaskingFlags, SubmissionContext
from pfi.transforms.xds.registry_response import RegistryResponse, read_dmp_answer
from pfi.transforms.xds.soap import SoapFault
from pfi.transforms.xds.vihf import VihfIdentity

Clock = Callable[[], datetime]
NO_MASKING = MaskingFlags()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ssl_context(settings: DmpSettings) -> ssl.SSLContext | bool:
    if not settings.url.startswith("https://"):
        return True
    ctx = ssl.create_default_context(
        cafile=str(settings.tls_cafile) if settings.tls_cafile else None
    )
    if settings.tls_certfile and settings.tls_keyfile:
        ctx.load_cert_chain(str(settings.tls_certfile), str(settings.tls_keyfile))
    return ctx


def signer_from_settings(settings: DmpSettings) -> DmpSigner:
    """The VIHF identity and seal credentials of `settings`, key files read once."""
    password = settings.signing_key_password.encode() if settings.signing_key_password else None
    credentials = SigningCredentials.from_pem(
        settings.signing_certfile.read_bytes(), settings.signing_keyfile.read_bytes(), password
    )
    ident = settings.identity
    identity = VihfIdentity(
        structure_id=ident.structure_id,
        secteur_activite=ident.secteur_activite,
        subject_name_id=ident.subject_name_id,
        subject_name=ident.subject_name,
        roles=tuple(Code(r.code, r.code_system, r.display) for r in ident.roles),
        lps_nom=ident.lps_name,
        lps_version=ident.lps_version,
        lps_homologation_dmp=ident.lps_homologation_dmp,
        lps_id=ident.lps_id,
        authn_context=ident.authn_context,
        vihf_version=ident.vihf_version,
    )
    return DmpSigner(identity, credentials, settings.sign_submission_sets)


class DmpClient:
    """Talks to one DMP (or the simulator). Thread-safe for concurrent calls (httpx)."""

    def __init__(
        self,
        settings: DmpSettings,
        *,
        clock: Clock = _utc_now,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._signer = signer_from_settings(settings)
        ident = settings.identity
        self._submitter = Author(
            person=f"{esc(ident.subject_name_id)}^{esc(ident.lps_name)}",
            institutions=(
                xon(ident.structure_name, ident.structure_finess, STRUCTURE_IDNST_OID)
                if ident.structure_finess
                else xon(ident.structure_name),
            ),
        )
        self._content_type = Code(
            ident.content_type.code, ident.content_type.code_system, ident.content_type.display
        )
        self._http = httpx.Client(
            verify=_ssl_context(settings),
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_s,
                read=settings.read_timeout_s,
                write=settings.write_timeout_s,
                pool=settings.pool_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            transport=transport,
        )

    def __enter__(self) -> DmpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def context(
        self,
        *,
        masking: MaskingFlags = NO_MASKING,
        replaces: str | None = None,
        content_type_code: Code | None = None,
    ) -> SubmissionContext:
        """A SubmissionContext stamped now, with this PFI as source and submitter."""
        return SubmissionContext(
            submission_time=self._clock(),
            source_id=self.settings.identity.source_id,
            content_type_code=content_type_code or self._content_type,
            submitter=self._submitter,
            masking=masking,
            replaces=replaces,
        )

    def submit(
        self,
        cda: bytes,
        context: SubmissionContext | None = None,
        *,
        masking: MaskingFlags = NO_MASKING,
        replaces: str | None = None,
    ) -> DmpOutcome:
        """ITI-41: a new document (TD2), or a new version replacing entry `replaces` (TD2.1).

        Metadata that cannot be built from the CDA is a permanent refusal (not sent).
        """
        ctx = context or self.context(masking=masking, replaces=replaces)
        try:
            prepared = prepare_submission(cda, ctx, self._signer, to=self.settings.repository_url)
        except XdsError as exc:
            return DmpOutcome(DmpOutcomeKind.REFUSED, f"not sent: {exc}")
        return self._send(self.settings.repository_url, prepared, version=1)

    def update_metadata(
        self,
        current: DocumentEntry,
        *,
        masking: MaskingFlags,
        previous_version: int = 1,
        context: SubmissionContext | None = None,
    ) -> DmpOutcome:
        """ITI-57 (TD3.3a/b): new masking/visibility codes on a registered entry.

        `context.entry_uuid` is the new metadata version's id (pass a stable one to
        retry the same update)."""
        ctx = context or self.context(masking=masking)
        try:
            prepared = prepare_masking_update(
                current, masking, previous_version, ctx, self._signer, to=self.settings.registry_url
            )
        except (XdsError, ValueError) as exc:
            return DmpOutcome(DmpOutcomeKind.REFUSED, f"not sent: {exc}")
        return self._send(self.settings.registry_url, prepared, version=previous_version + 1)

    def delete(
        self, entry_uuid: str, patient_id: str, context: SubmissionContext | None = None
    ) -> DmpOutcome:
        """ITI-57 (TD3.3c): availability status → urn:asip:ci-sis:2010:StatusType:Deleted."""
        try:
            prepared = prepare_deletion(
                entry_uuid,
                patient_id,
                context or self.context(),
                self._signer,
                to=self.settings.registry_url,
            )
        except XdsError as exc:
            return DmpOutcome(DmpOutcomeKind.REFUSED, f"not sent: {exc}")
        return self._send(self.settings.registry_url, prepared, version=None)

    def _send(self, url: str, prepared: PreparedRequest, *, version: int | None) -> DmpOutcome:
        request = prepared.request
        base = DmpOutcome(
            DmpOutcomeKind.TRANSIENT,
            "",
            entry=prepared.entry,
            signature_entry=prepared.signature_entry,
            submission_set_unique_id=prepared.submission_set.unique_id,
            message_id=request.message_id,
        )
        started = time.perf_counter()
        try:
            response = self._http.post(
                url, content=request.body, headers={"Content-Type": request.content_type}
            )
        except httpx.TimeoutException as exc:
            return replace(
                base,
                reason=f"no answer from {url} in time ({type(exc).__name__})",
                elapsed_s=time.perf_counter() - started,
            )
        except httpx.TransportError as exc:
            return replace(
                base,
                reason=f"cannot reach {url}: {type(exc).__name__}: {exc}",
                elapsed_s=time.perf_counter() - started,
            )
        elapsed = time.perf_counter() - started
        status = response.status_code
        base = replace(base, http_status=status, elapsed_s=elapsed)
        try:
            answer = read_dmp_answer(response.content, response.headers.get("content-type", ""))
        except XdsError as exc:
            retry = status >= 500 or status in (408, 429) or status < 400
            return replace(
                base,
                kind=DmpOutcomeKind.TRANSIENT if retry else DmpOutcomeKind.REFUSED,
                reason=f"HTTP {status}, no readable SOAP answer: {exc}",
            )
        if isinstance(answer, SoapFault):
            kind = DmpOutcomeKind.REFUSED if answer.is_sender else DmpOutcomeKind.TRANSIENT
            return replace(base, kind=kind, reason=f"SOAP fault {answer.code}: {answer.reason}")
        return self._classify(base, answer, version)

    @staticmethod
    def _classify(base: DmpOutcome, answer: RegistryResponse, version: int | None) -> DmpOutcome:
        errors = answer.errors
        if answer.status == "success":
            return replace(
                base,
                kind=DmpOutcomeKind.ACCEPTED,
                reason=answer.reason,
                registry_errors=errors,
                version=version,
            )
        if answer.transient:
            return replace(
                base, kind=DmpOutcomeKind.TRANSIENT, reason=answer.reason, registry_errors=errors
            )
        prefix = "partially accepted, treated as refused: " if answer.status == "partial" else ""
        return replace(
            base,
            kind=DmpOutcomeKind.REFUSED,
            reason=prefix + answer.reason,
            registry_errors=errors,
        )
