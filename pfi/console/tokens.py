"""The API bearer token format, and how it is stored: `pfi_<token_id>_<secret>`.

- `token_id`: 16 hex characters (64 random bits), public. It is the row's lookup key,
  so that checking a token is one unique-index read, and it names the token in
  `pfi users list` and in logs without revealing anything usable.
- `secret`: 32 bytes (256 bits) from the OS CSPRNG, base64url (43 characters).
- The `pfi_` prefix lets secret scanners (and people) recognise a leaked PFI token.

Only `sha256(token)` is stored. Why not a slow KDF (Argon2, bcrypt, PBKDF2)? A slow
KDF protects low-entropy secrets chosen by humans, where an attacker holding the table
can try likely passwords. Here the secret is 256 random bits: whoever steals the
table must still search 2^255 SHA-256 pre-images on average, and a KDF's extra factor
(~10^5) changes nothing about that impossibility. It would, however, cost tens of
milliseconds of CPU on every API request, on a host shared with the MLLP intake, and
let anyone holding a syntactically valid token id burn that CPU at will. A fast
digest over a high-entropy random token is what GitHub, Stripe and PyPI do for the
same reason. The digest is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "pfi"
_TOKEN = re.compile(r"pfi_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class NewToken:
    """A freshly generated token: `token` is shown once, then only `digest` is kept."""

    token: str
    token_id: str
    digest: str


def generate_token() -> NewToken:
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    return NewToken(token=token, token_id=token_id, digest=token_digest(token))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_id_of(token: str) -> str | None:
    """The lookup id of a well-formed token, or None: malformed tokens never reach the DB."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def digest_matches(token: str, stored_digest: str) -> bool:
    return hmac.compare_digest(token_digest(token), stored_digest)
