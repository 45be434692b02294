"""MTOM packaging, RegistryResponse reading, VIHF and XAdES signatures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.credentials import SigningCredentials
from pfi.transforms.xds.errors import MtomError
from pfi.transforms.xds.mtom import MimePart, decode_multipart_related, encode_mtom
from pfi.transforms.xds.registry_response import (
    RegistryError,
    read_dmp_answer,
    render_registry_response,
)
from pfi.transforms.xds.soap import SoapFault, build_envelope, render_fault
from pfi.transforms.xds.vihf import VihfError, VihfIdentity, build_vihf, sign_vihf, verify_vihf
from pfi.transforms.xds.xades import XadesError, sign_submission_set, verify_submission_signature
from tests.support.dmp_fixtures import CR_BIO
from tests.support.dmp_pki import make_pki

INS = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> SigningCredentials:
    pki = make_pki(Path(tmp_path_factory.mktemp("pki")))
    return SigningCredentials.from_pem(pki.signing_cert.read_bytes(), pki.signing_key.read_bytes())


def test_mtom_round_trip_keeps_binary_parts_byte_exact() -> None:
    payload = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"
    body, ctype = encode_mtom(
        b"<root/>", [MimePart("doc1@pfi", "text/xml", payload)], soap_action="a"
    )

    message = decode_multipart_related(body, ctype)

    assert message.root.data == b"<root/>"
    assert message.attachment("cid:doc1@pfi") == payload


def test_mtom_with_lf_line_breaks_is_read() -> None:
    body = (
        b"--B\nContent-Type: application/xop+xml\nContent-ID: <r>\n\n<root/>\n"
        b"--B\nContent-Type: text/xml\nContent-ID: <d>\n\n<doc/>\n--B--\n"
    )
    message = decode_multipart_related(body, 'multipart/related; boundary=B; start="<r>"')
    assert message.root.data == b"<root/>" and message.attachments["d"].data == b"<doc/>"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b[:-12], "not closed"),
        (lambda b: b[:30], "no MIME part delimited"),
        (lambda b: b.replace(b"Content-ID: <doc1@pfi>", b"", 1), "no Content-ID"),
        (lambda b: b.replace(b"\r\n\r\n", b"\r\n", 1), "no blank line"),
    ],
)
def test_malformed_mtom_is_refused_with_the_reason(mutate, error) -> None:
    body, ctype = encode_mtom(
        b"<root/>", [MimePart("doc1@pfi", "text/xml", b"<d/>")], soap_action="a"
    )
    with pytest.raises(MtomError, match=error):
        decode_multipart_related(mutate(body), ctype)


def test_registry_failure_gives_a_human_reason() -> None:
    resp = render_registry_response(
        "failure",
        [
            RegistryError("XDSRegistryMetadataError", "typeCode '1' not in JDV_J07"),
            RegistryError(
                "XDSExtraMetadataNotSaved",
                "slot ignored",
                "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning",
            ),
        ],
    )
    env = build_envelope(action="r", to="", message_id="urn:uuid:1", body=resp, relates_to="m")
    body, ctype = encode_mtom(etree.tostring(env), [], soap_action="r")

    answer = read_dmp_answer(body, ctype)

    assert answer.status == "failure" and not answer.transient
    assert answer.reason == (
        "XDSRegistryMetadataError (the metadata is incomplete or inconsistent): "
        "typeCode '1' not in JDV_J07; warning XDSExtraMetadataNotSaved: slot ignored"
    )


def test_busy_registry_failure_is_transient_and_fault_is_parsed() -> None:
    env = build_envelope(
        action="r",
        to="",
        message_id="urn:uuid:1",
        body=render_registry_response("failure", [RegistryError("XDSRegistryBusy", "later")]),
        relates_to="m",
    )
    answer = read_dmp_answer(etree.tostring(env), "application/soap+xml")
    assert answer.transient

    fault = read_dmp_answer(render_fault("Sender", "bad VIHF"), "application/soap+xml")
    assert fault == SoapFault("Sender", (), "bad VIHF") and fault.is_sender


def _identity() -> VihfIdentity:
    return VihfIdentity(
        structure_id="10B0123456",
        secteur_activite="SA01",
        subject_name_id="ops",
        subject_name="PFI",
        roles=(Code("AUTOMATE", "1.2.250.1.213.1.1.4.6", "AUTOMATE"),),
        lps_nom="PFI",
        lps_version="1",
    )


def test_signed_vihf_verifies_and_tampering_is_detected(credentials) -> None:
    assertion = build_vihf(
        _identity(), INS, issuer=credentials.subject_dn, now=datetime.now(UTC), assertion_id="_x1"
    )
    signed = etree.fromstring(etree.tostring(sign_vihf(assertion, credentials)))

    claims = verify_vihf(signed, trusted=[credentials.certificate])
    assert claims.patient_ins == INS and claims.version == "4.0"
    assert claims.issuer == credentials.subject_dn and not claims.connexion_secrete

    tampered = etree.fromstring(etree.tostring(signed).replace(b"SA01", b"SA02"))
    with pytest.raises(VihfError, match="does not verify"):
        verify_vihf(tampered)


def test_unsigned_or_incomplete_vihf_is_refused(credentials) -> None:
    assertion = build_vihf(
        _identity(), INS, issuer=credentials.subject_dn, now=datetime.now(UTC), assertion_id="_x2"
    )
    with pytest.raises(VihfError, match="not signed"):
        verify_vihf(assertion)
    for attr in assertion.iter("{urn:oasis:names:tc:SAML:2.0:assertion}Attribute"):
        if attr.get("Name") == "Ressource_URN":
            attr.getparent().remove(attr)
    with pytest.raises(VihfError, match="Ressource_URN"):
        verify_vihf(assertion, require_signature=False)


def test_xades_signature_covers_every_document_of_the_submission(credentials) -> None:
    cda = CR_BIO.read_bytes()
    signature = sign_submission_set(
        "2.25.7", [("1.2.3", cda)], credentials, signing_time=datetime.now(UTC), signature_id="s1"
    )

    check = verify_submission_signature(
        signature, submission_set_unique_id="2.25.7", documents={"1.2.3": cda}
    )
    assert check.referenced == ("1.2.3",)
    with pytest.raises(XadesError, match=r"digest of document 1\.2\.3"):
        verify_submission_signature(
            signature,
            submission_set_unique_id="2.25.7",
            documents={"1.2.3": cda.replace(b"TSH", b"T4L")},
        )
    with pytest.raises(XadesError, match="references"):
        verify_submission_signature(
            signature, submission_set_unique_id="2.25.7", documents={"1.2.3": cda, "1.2.4": cda}
        )


CONTENT_TYPES = [
    'multipart/related; boundary="MIMEBoundary_0d33"; type="application/xop+xml"; '
    'start="<root.message@pfi>"; start-info="application/soap+xml"; action="urn:ihe:iti:2007:x"',
    "application/soap+xml; charset=UTF-8",
    'Multipart/Related;boundary=abc;type="a\\"b;c"',
    "application/soap+xml",
    "",
    "garbage",
    'text/xml; charset="utf-8" ; x=y',
    "multipart/related; boundary*=utf-8''abc",
    "a/b; c",
    'multipart/related; boundary="a b"',
]


@pytest.mark.parametrize("value", CONTENT_TYPES)
def test_content_type_fast_parser_reads_headers_as_the_email_parser_does(value: str) -> None:
    from pfi.transforms.xds.mtom import _content_type_params_email, content_type_params

    assert content_type_params(value) == _content_type_params_email(value)
