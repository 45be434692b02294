"""The establishment's signing certificate and key, parsed once from PEM bytes.

Reading the files is the adapter's job; this holds the parsed objects and the PEM forms
that signxml wants, so that no signature re-parses a key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

_SHORT = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
}


def x509_name(name: x509.Name) -> str:
    """`C=FR, O=..., CN=...` in certificate order: how the DMP's VIHF Issuer spells a DN."""
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            label = _SHORT.get(attr.oid, attr.oid.dotted_string)
            parts.append(f"{label}={attr.value}")
    return ", ".join(parts)


@dataclass(frozen=True)
class SigningCredentials:
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def from_pem(
        cls, cert_pem: bytes, key_pem: bytes, password: bytes | None = None
    ) -> SigningCredentials:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=password)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the signing key must be RSA or EC")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise ValueError("the signing key does not match the signing certificate")
        unencrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(cert, key, cert.public_bytes(serialization.Encoding.PEM), unencrypted)

    @cached_property
    def subject_dn(self) -> str:
        return x509_name(self.certificate.subject)

    @cached_property
    def issuer_dn(self) -> str:
        return x509_name(self.certificate.issuer)

    @cached_property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @cached_property
    def cert_b64(self) -> str:
        return base64.b64encode(self.cert_der).decode("ascii")

    def cert_digest_b64(self, algorithm: str = "sha256") -> str:
        return base64.b64encode(hashlib.new(algorithm, self.cert_der).digest()).decode("ascii")
