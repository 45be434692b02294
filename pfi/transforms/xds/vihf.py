"""The VIHF: the SAML 2.0 assertion every DMP request carries in its WS-Security header.

Built as the CI-SIS mapping (volet transmission CDA en HL7 v2, « Mapping VIHF pour le DMP »)
and its example with an automated system as subject: Issuer = DN of the establishment's
seal certificate, XML-DSig enveloped signature with that certificate (exc-c14n, RSA-SHA256),
Authentification_Mode INDIRECTE, the patient INS as resource-id, Ressource_URN urn:dmp,
the subject's roles and the structure identifiers. Verification (used by the simulator)
checks structure, required attributes and the signature.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.exceptions import InvalidInput, InvalidSignature

from pfi.transforms.xds import ns
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.credentials import SigningCredentials
from pfi.transforms.xds.errors import XdsError

_SA = f"{{{ns.SAML2}}}"
_H = f"{{{ns.HL7V3}}}"
_XSI_TYPE = f"{{{ns.XSI}}}type"

ISSUER_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
ATTR_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"
SECTEUR_ACTIVITE_SYSTEM = "1.2.250.1.71.4.2.4"
PURPOSE_NORMAL = Code("normal", "1.2.250.1.213.1.1.4.248", "Accès normal")
CONNEXION_SECRETE = Code("CONNEXION_SECRETE", ns.MASKING_CODE_SYSTEM, "Connexion secrète")
# Attributes the DMP requires in every VIHF (mapping table, rows without « Facultatif »).
REQUIRED_ATTRIBUTES = (
    "VIHF_Version",
    "Authentification_Mode",
    "Identifiant_Structure",
    "Secteur_Activite",
    ATTR_RESOURCE_ID,
    "Ressource_URN",
    ATTR_SUBJECT_ID,
    ATTR_ROLE,
    ATTR_PURPOSE,
    "LPS_Nom",
    "LPS_Version",
)

_SIGNER = XMLSigner(
    signature_algorithm=SignatureMethod.RSA_SHA256,
    digest_algorithm=DigestAlgorithm.SHA256,
    c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
)


class VihfError(XdsError):
    """The VIHF is missing, malformed, or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class VihfIdentity:
    """Who acts on the DMP: the establishment, and the person or system behind the request."""

    structure_id: str
    secteur_activite: str
    subject_name_id: str
    subject_name: str
    roles: tuple[Code, ...]
    lps_nom: str
    lps_version: str
    lps_homologation_dmp: str = ""
    lps_id: str = ""
    authn_context: str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
    vihf_version: str = "4.0"
    purpose_of_use: Code = PURPOSE_NORMAL


@dataclass(frozen=True, slots=True)
class VihfClaims:
    """What a received VIHF asserts, after the checks of `verify_vihf`."""

    issuer: str
    subject_name_id: str
    patient_ins: str
    structure_id: str
    secteur_activite: str
    roles: tuple[Code, ...]
    version: str
    connexion_secrete: bool
    signer_certificate: x509.Certificate | None = field(default=None, compare=False)


def _attribute(
    statement: etree._Element, name: str, values: Iterable[str | etree._Element]
) -> None:
    attr = etree.SubElement(statement, f"{_SA}Attribute", Name=name)
    for value in values:
        av = etree.SubElement(attr, f"{_SA}AttributeValue")
        if isinstance(value, str):
            av.text = value
        else:
            av.append(value)


def _ce(tag: str, code: Code, system_name: str = "") -> etree._Element:
    el = etree.Element(f"{_H}{tag}", nsmap={None: ns.HL7V3})
    el.set("code", code.code)
    el.set("codeSystem", code.scheme)
    if system_name:
        el.set("codeSystemName", system_name)
    if code.display:
        el.set("displayName", code.display)
    el.set(_XSI_TYPE, "CE")
    return el


def _instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the VIHF needs a timezone-aware time")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.astimezone(UTC).microsecond // 1000:03d}Z"
    )


def build_vihf(
    identity: VihfIdentity,
    patient_ins: str,
    *,
    issuer: str,
    now: datetime,
    assertion_id: str,
    connexion_secrete: bool = False,
) -> etree._Element:
    """The unsigned saml2:Assertion for one request on the DMP of `patient_ins` (CX, ^NH)."""
    if not identity.roles:
        raise VihfError("the VIHF needs at least one subject role")
    instant = _instant(now)
    assertion = etree.Element(
        f"{_SA}Assertion",
        nsmap={"saml2": ns.SAML2, "xsi": ns.XSI},
        ID=assertion_id,
        IssueInstant=instant,
        Version="2.0",
    )
    issuer_el = etree.SubElement(assertion, f"{_SA}Issuer", Format=ISSUER_FORMAT)
    issuer_el.text = issuer
    subject = etree.SubElement(assertion, f"{_SA}Subject")
    etree.SubElement(subject, f"{_SA}NameID").text = identity.subject_name_id
    authn = etree.SubElement(assertion, f"{_SA}AuthnStatement", AuthnInstant=instant)
    ctx = etree.SubElement(authn, f"{_SA}AuthnContext")
    etree.SubElement(ctx, f"{_SA}AuthnContextClassRef").text = identity.authn_context
    st = etree.SubElement(assertion, f"{_SA}AttributeStatement")
    _attribute(st, "VIHF_Version", [identity.vihf_version])
    _attribute(st, "Authentification_Mode", ["INDIRECTE"])
    _attribute(st, "Identifiant_Structure", [identity.structure_id])
    _attribute(st, "Secteur_Activite", [f"{identity.secteur_activite}^{SECTEUR_ACTIVITE_SYSTEM}"])
    _attribute(st, ATTR_RESOURCE_ID, [patient_ins])
    _attribute(st, "Ressource_URN", ["urn:dmp"])
    _attribute(st, ATTR_SUBJECT_ID, [identity.subject_name])
    _attribute(st, "LPS_Nom", [identity.lps_nom])
    _attribute(st, "LPS_Version", [identity.lps_version])
    if identity.lps_id:
        _attribute(st, "LPS_ID", [identity.lps_id])
    if identity.lps_homologation_dmp:
        _attribute(st, "LPS_ID_HOMOLOGATION_DMP", [identity.lps_homologation_dmp])
    _attribute(
        st, ATTR_PURPOSE, [_ce("PurposeOfUse", identity.purpose_of_use, "mode acces VIHF 1.0")]
    )
    _attribute(st, ATTR_ROLE, [_ce("Role", r) for r in identity.roles])
    if connexion_secrete:
        _attribute(st, ATTR_CONFIDENTIALITY, [_ce("ConfidentialityCode", CONNEXION_SECRETE)])
    return assertion


def sign_vihf(assertion: etree._Element, credentials: SigningCredentials) -> etree._Element:
    """The assertion with an enveloped XML-DSig signature placed after saml2:Issuer."""
    issuer = assertion.find(f"{_SA}Issuer")
    if issuer is None:
        raise VihfError("cannot sign a VIHF without saml2:Issuer")
    placeholder = etree.Element(f"{{{ns.DS}}}Signature", Id="placeholder", nsmap={"ds": ns.DS})
    issuer.addnext(placeholder)
    return _SIGNER.sign(
        assertion,
        key=credentials.private_key,
        cert=[credentials.certificate],
        reference_uri=assertion.get("ID"),
        id_attribute="ID",
    )


def security_header(assertion: etree._Element) -> etree._Element:
    """wsse:Security holding the signed VIHF, for the SOAP header."""
    sec = etree.Element(f"{{{ns.WSSE}}}Security", nsmap={"wsse": ns.WSSE})
    sec.set(f"{{{ns.SOAP12}}}mustUnderstand", "true")
    sec.append(assertion)
    return sec


def _attributes(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    out: dict[str, list[etree._Element]] = {}
    for attr in assertion.iter(f"{_SA}Attribute"):
        out.setdefault(attr.get("Name", ""), []).extend(attr.findall(f"{_SA}AttributeValue"))
    return out


def _text(values: list[etree._Element]) -> str:
    return (values[0].text or "").strip() if values else ""


def _codes(values: list[etree._Element]) -> tuple[Code, ...]:
    out = []
    for v in values:
        for el in v:
            if isinstance(el.tag, str):
                out.append(
                    Code(el.get("code", ""), el.get("codeSystem", ""), el.get("displayName", ""))
                )
    return tuple(out)


def find_vihf(header: etree._Element | None) -> etree._Element:
    """The saml2:Assertion inside wsse:Security of a SOAP header."""
    if header is None:
        raise VihfError("no SOAP header: the VIHF (wsse:Security/saml2:Assertion) is missing")
    sec = header.find(f"{{{ns.WSSE}}}Security")
    if sec is None:
        raise VihfError("no wsse:Security header: the VIHF is missing")
    assertion = sec.find(f"{_SA}Assertion")
    if assertion is None:
        raise VihfError("wsse:Security holds no saml2:Assertion (VIHF)")
    return assertion


def verify_vihf(
    assertion: etree._Element,
    *,
    trusted: Iterable[x509.Certificate] = (),
    require_signature: bool = True,
) -> VihfClaims:
    """Check a received VIHF: required elements and attributes, INDIRECTE mode, urn:dmp, and
    the signature with the certificate it carries (which must be one of `trusted` if given)."""
    if (
        assertion.get("Version") != "2.0"
        or not assertion.get("ID")
        or not assertion.get("IssueInstant")
    ):
        raise VihfError("saml2:Assertion needs Version=2.0, ID and IssueInstant")
    issuer = assertion.find(f"{_SA}Issuer")
    if issuer is None or not (issuer.text or "").strip():
        raise VihfError("saml2:Issuer is missing or empty")
    name_id = assertion.find(f"{_SA}Subject/{_SA}NameID")
    if name_id is None or not (name_id.text or "").strip():
        raise VihfError("saml2:Subject/NameID is missing or empty")
    if assertion.find(f"{_SA}AuthnStatement/{_SA}AuthnContext/{_SA}AuthnContextClassRef") is None:
        raise VihfError("saml2:AuthnStatement/AuthnContext/AuthnContextClassRef is missing")
    attrs = _attributes(assertion)
    missing = [a for a in REQUIRED_ATTRIBUTES if not attrs.get(a)]
    if missing:
        raise VihfError(f"VIHF attributes missing: {', '.join(missing)}")
    if _text(attrs["Authentification_Mode"]) != "INDIRECTE":
        raise VihfError("Authentification_Mode must be INDIRECTE for a PFI")
    if _text(attrs["Ressource_URN"]) != "urn:dmp":
        raise VihfError("Ressource_URN must be urn:dmp")
    roles = _codes(attrs[ATTR_ROLE])
    if not roles or not all(r.code and r.scheme for r in roles):
        raise VihfError("subject:role values must be coded (Role code/codeSystem)")
    signer: x509.Certificate | None = None
    signature = assertion.find(f"{{{ns.DS}}}Signature")
    if signature is None:
        if require_signature:
            raise VihfError("the VIHF is not signed (no ds:Signature)")
    else:
        signer = _verify_signature(assertion, signature, list(trusted))
    confidentiality = _codes(attrs.get(ATTR_CONFIDENTIALITY, []))
    return VihfClaims(
        issuer=(issuer.text or "").strip(),
        subject_name_id=(name_id.text or "").strip(),
        patient_ins=_text(attrs[ATTR_RESOURCE_ID]),
        structure_id=_text(attrs["Identifiant_Structure"]),
        secteur_activite=_text(attrs["Secteur_Activite"]),
        roles=roles,
        version=_text(attrs["VIHF_Version"]),
        connexion_secrete=any(c.code == CONNEXION_SECRETE.code for c in confidentiality),
        signer_certificate=signer,
    )


def _verify_signature(
    assertion: etree._Element, signature: etree._Element, trusted: list[x509.Certificate]
) -> x509.Certificate:
    cert_el = signature.find(f".//{{{ns.DS}}}X509Certificate")
    if cert_el is None or not (cert_el.text or "").strip():
        raise VihfError("the VIHF signature carries no X509Certificate")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(cert_el.text.split())))
    except ValueError as exc:
        raise VihfError(f"the VIHF signing certificate cannot be read: {exc}") from exc
    if trusted and not any(cert == t for t in trusted):
        raise VihfError(
            f"the VIHF is signed by an untrusted certificate ({cert.subject.rfc4514_string()})"
        )
    try:
        XMLVerifier().verify(
            etree.fromstring(etree.tostring(assertion)),
            x509_cert=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            id_attribute="ID",
        )
    except (InvalidSignature, InvalidInput, etree.DocumentInvalid) as exc:
        raise VihfError(f"the VIHF signature does not verify: {exc}") from exc
    return cert
