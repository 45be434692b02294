"""DmpClient against the strict DMP simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from pfi.adapters.dmp import DmpClient, DmpOutcomeKind
from pfi.simulators.dmp import DmpSimulatorServer
from pfi.transforms.xds.dmp_request import prepare_submission
from pfi.transforms.xds.iti41 import build_provide_and_register
from pfi.transforms.xds.metadata import document_entry_from_cda, submission_set_for
from pfi.transforms.xds.model import MaskingFlags
from tests.support.dmp_fixtures import (
    CR_BIO,
    CR_BIO_MICRO_V1,
    CR_BIO_MICRO_V2,
    CR_IMG,
    TEST_INS,
    dmp_settings,
)


def documents(sim: DmpSimulatorServer, ins: str = TEST_INS) -> list[dict]:
    response = httpx.get(f"{sim.url}/_sim/documents", params={"ins": ins}, timeout=5)
    response.raise_for_status()
    return response.json()


def approved(sim: DmpSimulatorServer) -> list[dict]:
    return [d for d in documents(sim) if d["status"] == "Approved" and d["classCode"] == "10"]


def test_submitted_cr_bio_is_registered_for_the_patient(client: DmpClient, sim) -> None:
    outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.kind is DmpOutcomeKind.ACCEPTED, outcome.reason
    docs = documents(sim)
    cr = [d for d in docs if d["classCode"] == "10"]
    signatures = [d for d in docs if d["classCode"].endswith("1.2.1.1.1")]
    assert len(cr) == 1 and len(signatures) == 1
    assert cr[0]["uniqueId"] == "1.2.250.1.213.1.1.1.55.2024.9.1"
    assert cr[0]["setId"] == "1.2.250.1.213.1.1.1.55.2024.9"
    assert cr[0]["version"] == "1"
    assert cr[0]["status"] == "Approved"
    assert cr[0]["confidentialityCodes"] == ["N"]
    assert cr[0]["entryUUID"] == outcome.entry.entry_uuid
    assert cr[0]["hash"] == hashlib.sha1(CR_BIO.read_bytes()).hexdigest()
    assert signatures[0]["confidentialityCodes"] == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]


def test_masking_flags_at_submission_are_confidentiality_codes(client, sim) -> None:
    masking = MaskingFlags(masque_ps=True, invisible_representants_legaux=True)
    outcome = client.submit(CR_IMG.read_bytes(), masking=masking)

    assert outcome.accepted, outcome.reason
    (doc,) = approved(sim)
    assert doc["confidentialityCodes"] == ["N", "MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX"]


def test_new_version_replaces_the_previous_one(client, sim) -> None:
    first = client.submit(CR_BIO_MICRO_V1.read_bytes())
    assert first.accepted, first.reason

    second = client.submit(CR_BIO_MICRO_V2.read_bytes(), replaces=first.entry.entry_uuid)

    assert second.accepted, second.reason
    by_uuid = {d["entryUUID"]: d for d in documents(sim)}
    assert by_uuid[first.entry.entry_uuid]["status"] == "Deprecated"
    assert by_uuid[first.entry.entry_uuid]["replacedBy"] == second.entry.entry_uuid
    assert by_uuid[second.entry.entry_uuid]["status"] == "Approved"
    assert by_uuid[second.entry.entry_uuid]["version"] == "2"
    assert [d["uniqueId"] for d in approved(sim)] == ["1.2.250.1.213.1.1.1.55.2024.8.2"]


def test_replacing_an_unknown_entry_is_refused(client, sim) -> None:
    outcome = client.submit(CR_BIO.read_bytes(), replaces=f"urn:uuid:{uuid.uuid4()}")

    assert outcome.kind is DmpOutcomeKind.REFUSED
    assert "UnresolvedReferenceException" in outcome.reason
    assert approved(sim) == []


def test_deletion_marks_the_entry_deleted(client, sim) -> None:
    sent = client.submit(CR_BIO.read_bytes())
    assert sent.accepted, sent.reason

    outcome = client.delete(sent.entry.entry_uuid, sent.entry.patient_id)

    assert outcome.accepted, outcome.reason
    by_uuid = {d["entryUUID"]: d for d in documents(sim)}
    assert by_uuid[sent.entry.entry_uuid]["status"] == "Deleted"


def test_deleting_twice_is_refused_with_the_registry_reason(client, sim) -> None:
    sent = client.submit(CR_BIO.read_bytes())
    assert client.delete(sent.entry.entry_uuid, sent.entry.patient_id).accepted

    again = client.delete(sent.entry.entry_uuid, sent.entry.patient_id)

    assert again.permanent
    assert "XDSMetadataUpdateError" in again.reason and "OriginalStatus" in again.reason


def test_masking_update_changes_confidentiality_codes(client, sim) -> None:
    sent = client.submit(CR_IMG.read_bytes(), masking=MaskingFlags(invisible_patient=True))
    assert sent.accepted, sent.reason

    updated = client.update_metadata(sent.entry, masking=MaskingFlags(), previous_version=1)

    assert updated.accepted, updated.reason
    assert updated.version == 2
    entries = [d for d in documents(sim) if d["classCode"] == "10"]
    old = next(d for d in entries if d["entryUUID"] == sent.entry.entry_uuid)
    new = next(d for d in entries if d["entryUUID"] == updated.entry.entry_uuid)
    assert old["status"] == "Deprecated" and old["confidentialityCodes"] == [
        "N",
        "INVISIBLE_PATIENT",
    ]
    assert new["status"] == "Approved" and new["confidentialityCodes"] == ["N"]
    assert new["logicalID"] == sent.entry.entry_uuid and new["metadataVersion"] == 2
    assert new["uniqueId"] == old["uniqueId"]

    masked_again = client.update_metadata(
        updated.entry, masking=MaskingFlags(masque_ps=True), previous_version=2
    )
    assert masked_again.accepted, masked_again.reason
    (current,) = approved(sim)
    assert current["confidentialityCodes"] == ["N", "MASQUE_PS"]
    assert current["metadataVersion"] == 3


def test_masking_update_with_a_stale_version_is_refused(client, sim) -> None:
    sent = client.submit(CR_IMG.read_bytes())
    outcome = client.update_metadata(
        sent.entry, masking=MaskingFlags(masque_ps=True), previous_version=4
    )

    assert outcome.permanent
    assert "XDSMetadataVersionError" in outcome.reason


def test_metadata_error_is_a_permanent_refusal_with_the_simulator_reason(sim, pki) -> None:
    unsigned = dmp_settings(sim.url, pki.signing_cert, pki.signing_key, sign_submission_sets=False)
    with DmpClient(unsigned) as client:
        outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.kind is DmpOutcomeKind.REFUSED
    assert outcome.http_status == 200
    assert outcome.reason.startswith("XDSRegistryMetadataError")
    assert "not signed" in outcome.reason
    assert [e.error_code for e in outcome.registry_errors] == ["XDSRegistryMetadataError"]
    assert approved(sim) == []


def test_injected_refusal_reaches_the_ledger_with_its_code_and_context(client, sim) -> None:
    httpx.post(
        f"{sim.url}/_sim/fail",
        json={
            "mode": "refuse",
            "error_code": "XDSUnknownPatientId",
            "code_context": "DMP inexistant pour cet INS",
        },
        timeout=5,
    ).raise_for_status()

    outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.permanent
    assert "XDSUnknownPatientId" in outcome.reason
    assert "DMP inexistant pour cet INS" in outcome.reason


def test_closed_dmp_refuses_with_unknown_patient(client, sim) -> None:
    httpx.post(f"{sim.url}/_sim/patients/{TEST_INS}/close", timeout=5).raise_for_status()

    outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.permanent and "XDSUnknownPatientId" in outcome.reason


def test_same_document_twice_is_refused_as_duplicate(client, sim) -> None:
    assert client.submit(CR_BIO.read_bytes()).accepted

    again = client.submit(CR_BIO.read_bytes())

    assert again.permanent and "XDSDuplicateUniqueIdInRegistry" in again.reason


def test_http_500_is_transient(client, sim) -> None:
    httpx.post(f"{sim.url}/_sim/fail", json={"mode": "http_500", "status_code": 503}, timeout=5)

    outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.kind is DmpOutcomeKind.TRANSIENT
    assert outcome.http_status == 503
    # the failure was for one request only: the retry goes through
    assert client.submit(CR_BIO.read_bytes()).accepted


def test_receiver_soap_fault_is_transient(client, sim) -> None:
    httpx.post(f"{sim.url}/_sim/fail", json={"mode": "soap_fault"}, timeout=5)

    outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.transient and "SOAP fault Receiver" in outcome.reason


def test_hanging_dmp_is_a_transient_timeout(sim, pki) -> None:
    httpx.post(f"{sim.url}/_sim/fail", json={"mode": "hang", "seconds": 3}, timeout=5)
    settings = dmp_settings(sim.url, pki.signing_cert, pki.signing_key, read_timeout_s=0.5)
    with DmpClient(settings) as client:
        outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.kind is DmpOutcomeKind.TRANSIENT
    assert "no answer" in outcome.reason and outcome.elapsed_s < 2.5


def test_refused_connection_is_transient(pki) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = dmp_settings(f"http://127.0.0.1:{port}", pki.signing_cert, pki.signing_key)
    with DmpClient(settings) as client:
        outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.kind is DmpOutcomeKind.TRANSIENT and "cannot reach" in outcome.reason


def _post(sim: DmpSimulatorServer, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        f"{sim.url}/repository", content=body, headers={"Content-Type": content_type}, timeout=10
    )


def _prepared(client: DmpClient, cda: bytes):
    from pfi.adapters.dmp.client import signer_from_settings

    return signer_from_settings(client.settings), client.context()


def test_wrong_hash_is_rejected_by_the_simulator(client, sim) -> None:
    signer, context = _prepared(client, CR_BIO.read_bytes())
    cda = CR_BIO.read_bytes()
    entry = document_entry_from_cda(cda, context)
    wrong = dataclasses.replace(entry, hash=hashlib.sha1(b"another document").hexdigest())
    ss = submission_set_for(wrong, context)
    request = build_provide_and_register(
        ss,
        [(wrong, cda)],
        security=signer.security(entry.patient_id, now=datetime.now(UTC)),
        to=client.settings.repository_url,
        message_id=f"urn:uuid:{uuid.uuid4()}",
    )

    response = _post(sim, request.body, request.content_type)

    assert response.status_code == 200
    assert b"ResponseStatusType:Failure" in response.content
    assert (
        b"XDSRepositoryMetadataError" in response.content and b"hash mismatch" in response.content
    )
    assert approved(sim) == []


def test_wrong_size_and_invalid_cda_are_rejected(client, sim) -> None:
    signer, context = _prepared(client, CR_BIO.read_bytes())
    cda = CR_BIO.read_bytes().replace(b"<title>", b"<titre>x</titre><title>", 1)
    entry = dataclasses.replace(
        document_entry_from_cda(CR_BIO.read_bytes(), context), hash=hashlib.sha1(cda).hexdigest()
    )
    ss = submission_set_for(entry, context)
    request = build_provide_and_register(
        ss,
        [(entry, cda)],
        security=signer.security(entry.patient_id, now=datetime.now(UTC)),
        to=client.settings.repository_url,
        message_id=f"urn:uuid:{uuid.uuid4()}",
    )

    body = _post(sim, request.body, request.content_type).content

    assert b"size mismatch" in body
    fixed = dataclasses.replace(entry, size=len(cda))
    request = build_provide_and_register(
        ss,
        [(fixed, cda)],
        security=signer.security(entry.patient_id, now=datetime.now(UTC)),
        to=client.settings.repository_url,
        message_id=f"urn:uuid:{uuid.uuid4()}",
    )
    body = _post(sim, request.body, request.content_type).content
    assert b"CDA_extended.xsd" in body and b"titre" in body


def test_vihf_signed_by_an_unknown_certificate_is_rejected(sim, tmp_path) -> None:
    from tests.support.dmp_pki import make_pki

    other = make_pki(tmp_path / "other")
    settings = dmp_settings(sim.url, other.signing_cert, other.signing_key)
    with DmpClient(settings) as client:
        outcome = client.submit(CR_BIO.read_bytes())

    assert outcome.permanent
    assert outcome.http_status == 400
    assert "VIHF rejected" in outcome.reason and "untrusted certificate" in outcome.reason


def test_malformed_mtom_gets_a_soap_fault(client, sim) -> None:
    prepared = prepare_submission(
        CR_BIO.read_bytes(),
        client.context(),
        _prepared(client, b"")[0],
        to=client.settings.repository_url,
    )
    truncated = prepared.request.body[: len(prepared.request.body) // 2]

    response = _post(sim, truncated, prepared.request.content_type)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/soap+xml")
    assert b"soap:Sender" in response.content and b"not closed" in response.content

    no_boundary = _post(sim, prepared.request.body, 'multipart/related; type="application/xop+xml"')
    assert no_boundary.status_code == 400 and b"boundary" in no_boundary.content
    assert approved(sim) == []


def test_request_without_vihf_gets_a_security_fault(client, sim) -> None:
    prepared = prepare_submission(
        CR_BIO.read_bytes(),
        client.context(),
        _prepared(client, b"")[0],
        to=client.settings.repository_url,
    )
    start = prepared.request.body.index(b"<wsse:Security")
    end = prepared.request.body.index(b"</wsse:Security>") + len(b"</wsse:Security>")
    stripped = prepared.request.body[:start] + prepared.request.body[end:]

    response = _post(sim, stripped, prepared.request.content_type)

    assert response.status_code == 400
    assert b"wsse:InvalidSecurity" in response.content and b"VIHF" in response.content


def test_mutual_tls_to_the_simulator(pki) -> None:
    from pfi.simulators.dmp import SimulatorOptions
    from pfi.simulators.dmp.server import load_certificates

    server = DmpSimulatorServer(
        "127.0.0.1",
        0,
        options=SimulatorOptions(trusted_signers=load_certificates([pki.signing_cert])),
        tls_certfile=pki.server_cert,
        tls_keyfile=pki.server_key,
        tls_client_cafile=pki.ca_cert,
    ).start()
    try:
        settings = dmp_settings(
            server.url,
            pki.signing_cert,
            pki.signing_key,
            tls_certfile=pki.client_cert,
            tls_keyfile=pki.client_key,
            tls_cafile=pki.ca_cert,
        )
        with DmpClient(settings) as client:
            assert client.submit(CR_BIO.read_bytes()).accepted
        import ssl

        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/_sim/stats", verify=ctx, timeout=5)
    finally:
        server.stop()
