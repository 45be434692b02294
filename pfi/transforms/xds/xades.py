"""XAdES signature of a DMP submission set (IHE DSG « Document Digital Signature »).

The DMP wants every lot de soumission signed (TD2/TD2.1: « transmis au système DMP sous la
forme d'un lot de soumission XDS signé (XAdES) »). As in IHE DSG and ANS's own DRIMbox, the
signature is an extra XML document in the submission: a ds:Signature whose SignedInfo signs
an IHE Manifest (one Reference per document, URI `urn:oid:<uniqueId>`, digest of the
canonicalized document; one Reference to the submission set) and the XAdES SignedProperties
(signing time, signing certificate digest and issuer/serial, implied policy, and the
purpose « Source » 1.2.840.10065.1.12.1.14 as a CommitmentTypeIndication; DRIMbox puts it as
bare text in a ds:SignatureProperty, which the XML-DSig schema does not allow). Its
DocumentEntry (class « Digital Signature », type E1762, format xmldsig#) is linked to the
submission set by a `signs` association and hidden from patients and professionals.

Algorithms: RSA-SHA256, SHA-256 digests, exclusive C14N for SignedInfo and the signed
objects, inclusive C14N with comments for the CDA documents (as DRIMbox does). The
submission-set reference has no content to digest: it carries SHA-256 of the empty string.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree
from signxml import XMLVerifier
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration

from pfi.transforms.xds import ns
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.credentials import SigningCredentials
from pfi.transforms.xds.errors import XdsError
from pfi.transforms.xds.hl7_types import utc_dtm
from pfi.transforms.xds.model import Author, DocumentEntry

_D = f"{{{ns.DS}}}"
_X = f"{{{ns.XADES}}}"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_WITH_COMMENTS = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
MANIFEST_TYPE = "http://www.w3.org/2000/09/xmldsig#Manifest"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
MANIFEST_ID = "IHEManifest"
PURPOSE_SOURCE = "1.2.840.10065.1.12.1.14"

SIGNATURE_CLASS = Code("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN", "Digital Signature")
SIGNATURE_TYPE = Code("E1762", "ASTM", "Full Document")
SIGNATURE_FORMAT = Code("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style")
SIGNATURE_EVENT = Code(PURPOSE_SOURCE, "1.2.840.10065.1.12", "Source")


class XadesError(XdsError):
    """A submission-set signature is malformed, does not verify, or does not match."""


def _c14n_exclusive(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def document_digest(document: bytes) -> str:
    """SHA-256 of the document as the Manifest references it (C14N with comments if XML)."""
    try:
        root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, huge_tree=True))
    except etree.XMLSyntaxError:
        return _digest(document)
    return _digest(etree.tostring(root, method="c14n", with_comments=True))


def _reference(
    parent: etree._Element, uri: str, digest: str, *, ref_type: str = "", transform: str = ""
) -> etree._Element:
    ref = etree.SubElement(parent, f"{_D}Reference", URI=uri)
    if ref_type:
        ref.set("Type", ref_type)
    if transform:
        transforms = etree.SubElement(ref, f"{_D}Transforms")
        etree.SubElement(transforms, f"{_D}Transform", Algorithm=transform)
    etree.SubElement(ref, f"{_D}DigestMethod", Algorithm=SHA256)
    etree.SubElement(ref, f"{_D}DigestValue").text = digest
    return ref


def sign_submission_set(
    submission_set_unique_id: str,
    documents: Sequence[tuple[str, bytes]],
    credentials: SigningCredentials,
    *,
    signing_time: datetime,
    signature_id: str,
) -> bytes:
    """The XAdES (IHE DSG) signature document over a submission set and its documents."""
    sig = etree.Element(f"{_D}Signature", nsmap={"ds": ns.DS}, Id=signature_id)
    signed_info = etree.SubElement(sig, f"{_D}SignedInfo")
    etree.SubElement(signed_info, f"{_D}CanonicalizationMethod", Algorithm=EXC_C14N)
    is_ec = isinstance(credentials.private_key, ec.EllipticCurvePrivateKey)
    etree.SubElement(
        signed_info, f"{_D}SignatureMethod", Algorithm=ECDSA_SHA256 if is_ec else RSA_SHA256
    )
    signature_value = etree.SubElement(sig, f"{_D}SignatureValue")
    key_info = etree.SubElement(sig, f"{_D}KeyInfo")
    x509_data = etree.SubElement(key_info, f"{_D}X509Data")
    etree.SubElement(x509_data, f"{_D}X509Certificate").text = credentials.cert_b64

    props_id = f"{signature_id}-SignedProperties"
    qp_object = etree.SubElement(sig, f"{_D}Object")
    qp = etree.SubElement(
        qp_object, f"{_X}QualifyingProperties", nsmap={"xades": ns.XADES}, Target=f"#{signature_id}"
    )
    sp = etree.SubElement(qp, f"{_X}SignedProperties", Id=props_id)
    ssp = etree.SubElement(sp, f"{_X}SignedSignatureProperties")
    etree.SubElement(ssp, f"{_X}SigningTime").text = signing_time.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    cert_el = etree.SubElement(etree.SubElement(ssp, f"{_X}SigningCertificate"), f"{_X}Cert")
    cert_digest = etree.SubElement(cert_el, f"{_X}CertDigest")
    etree.SubElement(cert_digest, f"{_D}DigestMethod", Algorithm=SHA256)
    etree.SubElement(cert_digest, f"{_D}DigestValue").text = credentials.cert_digest_b64()
    issuer_serial = etree.SubElement(cert_el, f"{_X}IssuerSerial")
    etree.SubElement(
        issuer_serial, f"{_D}X509IssuerName"
    ).text = credentials.certificate.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, f"{_D}X509SerialNumber").text = str(
        credentials.certificate.serial_number
    )
    policy = etree.SubElement(ssp, f"{_X}SignaturePolicyIdentifier")
    etree.SubElement(policy, f"{_X}SignaturePolicyImplied")
    # Purpose of signature « Source » (ASTM E1762), as an XAdES commitment on all documents.
    sdop = etree.SubElement(sp, f"{_X}SignedDataObjectProperties")
    commitment = etree.SubElement(sdop, f"{_X}CommitmentTypeIndication")
    ct_id = etree.SubElement(commitment, f"{_X}CommitmentTypeId")
    etree.SubElement(ct_id, f"{_X}Identifier").text = f"urn:oid:{PURPOSE_SOURCE}"
    etree.SubElement(commitment, f"{_X}AllSignedDataObjects")

    manifest_object = etree.SubElement(sig, f"{_D}Object")
    manifest = etree.SubElement(manifest_object, f"{_D}Manifest", Id=MANIFEST_ID)
    _reference(manifest, f"urn:oid:{submission_set_unique_id}", _digest(b""))
    for unique_id, content in documents:
        _reference(
            manifest,
            f"urn:oid:{unique_id}",
            document_digest(content),
            transform=C14N_WITH_COMMENTS,
        )

    _reference(
        signed_info,
        f"#{MANIFEST_ID}",
        _digest(_c14n_exclusive(manifest)),
        ref_type=MANIFEST_TYPE,
        transform=EXC_C14N,
    )
    _reference(
        signed_info,
        f"#{props_id}",
        _digest(_c14n_exclusive(sp)),
        ref_type=SIGNED_PROPERTIES_TYPE,
        transform=EXC_C14N,
    )
    to_sign = _c14n_exclusive(signed_info)
    key = credentials.private_key
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = _ecdsa_raw(key.sign(to_sign, ec.ECDSA(hashes.SHA256())), key.curve.key_size)
    signature_value.text = base64.b64encode(raw).decode("ascii")
    return etree.tostring(sig, xml_declaration=True, encoding="UTF-8")


def _ecdsa_raw(der: bytes, bits: int) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    size = (bits + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


@dataclass(frozen=True, slots=True)
class XadesCheck:
    signer: x509.Certificate
    signing_time: str
    referenced: tuple[str, ...]


def verify_submission_signature(
    signature: bytes,
    *,
    submission_set_unique_id: str,
    documents: Mapping[str, bytes],
    trusted: Sequence[x509.Certificate] = (),
) -> XadesCheck:
    """Check the DSG signature: core XML-DSig (signxml), signed properties, and that the
    Manifest references the submission set and exactly the submitted documents with the
    right digests."""
    try:
        root = etree.fromstring(signature, etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise XadesError(f"the signature document is not well-formed XML: {exc}") from exc
    if root.tag != f"{_D}Signature":
        raise XadesError(f"the signature document root is {root.tag!r}, not ds:Signature")
    cert_el = root.find(f"{_D}KeyInfo/{_D}X509Data/{_D}X509Certificate")
    if cert_el is None or not (cert_el.text or "").strip():
        raise XadesError("the signature carries no X509Certificate")
    cert = x509.load_der_x509_certificate(base64.b64decode("".join(cert_el.text.split())))
    if trusted and cert not in trusted:
        raise XadesError(f"signed by an untrusted certificate ({cert.subject.rfc4514_string()})")
    try:
        XMLVerifier().verify(
            root,
            x509_cert=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            expect_config=SignatureConfiguration(expect_references=2),
        )
    except (InvalidSignature, InvalidInput, etree.DocumentInvalid) as exc:
        raise XadesError(f"the submission-set signature does not verify: {exc}") from exc
    signing_time = root.findtext(f".//{_X}SigningTime") or ""
    if not signing_time:
        raise XadesError("XAdES SignedProperties without SigningTime")
    cert_digest = root.findtext(f".//{_X}CertDigest/{_D}DigestValue") or ""
    expected_cert_digest = base64.b64encode(
        hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    ).decode("ascii")
    if cert_digest != expected_cert_digest:
        raise XadesError("XAdES SigningCertificate digest does not match the signing certificate")
    manifest = root.find(f".//{_D}Manifest[@Id='{MANIFEST_ID}']")
    if manifest is None:
        raise XadesError(f"no ds:Manifest with Id {MANIFEST_ID}")
    refs = {
        (r.get("URI") or "").removeprefix("urn:oid:"): r.findtext(f"{_D}DigestValue") or ""
        for r in manifest.findall(f"{_D}Reference")
    }
    if submission_set_unique_id not in refs:
        raise XadesError(
            f"the Manifest does not reference the submission set urn:oid:{submission_set_unique_id}"
        )
    doc_refs = {k: v for k, v in refs.items() if k != submission_set_unique_id}
    if set(doc_refs) != set(documents):
        raise XadesError(
            f"the Manifest references {sorted(doc_refs)} but the submission has {sorted(documents)}"
        )
    for unique_id, content in documents.items():
        if doc_refs[unique_id] != document_digest(content):
            raise XadesError(
                f"the Manifest digest of document {unique_id} does not match its content"
            )
    return XadesCheck(cert, signing_time, tuple(sorted(doc_refs)))


def signature_document_entry(
    signed: DocumentEntry,
    signature: bytes,
    *,
    submitter: Author,
    signing_time: datetime,
    entry_uuid: str,
    unique_id: str,
) -> DocumentEntry:
    """The DocumentEntry of the signature document: same patient and settings as the signed
    document, DSG class/type/format, hidden from patient and professionals."""
    hidden = (
        next(c for c in signed.confidentiality_codes if c.scheme == ns.HL7_CONFIDENTIALITY),
        Code("MASQUE_PS", ns.MASKING_CODE_SYSTEM, "Masqué aux professionnels de santé"),
        Code("INVISIBLE_PATIENT", ns.MASKING_CODE_SYSTEM, "Non visible par le patient"),
    )
    when = utc_dtm(signing_time)
    return replace(
        signed,
        entry_uuid=entry_uuid,
        unique_id=unique_id,
        mime_type="text/xml",
        hash=hashlib.sha1(signature).hexdigest(),
        size=len(signature),
        creation_time=when,
        language_code="art",
        title="Source",
        class_code=SIGNATURE_CLASS,
        type_code=SIGNATURE_TYPE,
        format_code=SIGNATURE_FORMAT,
        confidentiality_codes=hidden,
        authors=(submitter,),
        legal_authenticator=submitter.person,
        service_start_time=when,
        service_stop_time=when,
        event_codes=(SIGNATURE_EVENT,),
        reference_ids=(),
        logical_id="",
        comments="",
    )
