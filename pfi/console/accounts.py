"""Managing users and their tokens (what `pfi users ...` does), on a caller's session.

The caller owns the transaction: these functions add and change rows, the caller
commits. A user is never deleted: revoking deactivates the user and revokes every
token, so that the names in the audit trail keep pointing at someone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from pfi.console.roles import Role
from pfi.console.tokens import generate_token
from pfi.store.models import ApiToken, User, utcnow

#: Login-like names: what an LDAP uid or an e-mail address looks like.
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class AccountError(ValueError):
    """A user-management request that cannot be done, with the reason in words."""


@dataclass(frozen=True)
class IssuedToken:
    """The only moment the clear token exists: print it, never store it."""

    user: str
    role: Role
    token: str
    token_id: str
    expires_at: datetime | None


def check_user_name(name: str) -> str:
    if not _USER_NAME.match(name):
        raise AccountError(
            f"user name {name!r}: 1 to 100 characters, letters, digits and . _ @ - "
            "(starting with a letter or digit)"
        )
    return name


def find_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).one_or_none()


def add_user(
    session: Session,
    name: str,
    role: Role,
    *,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """Create a user with a first token; a revoked user with that name is re-enabled.

    An active user with that name is an error rather than a silent role change: use
    `issue_token` for another token of the same user.
    """
    now = now or utcnow()
    check_user_name(name)
    _check_expiry(expires_at, now)
    user = find_user(session, name)
    if user is not None and user.active:
        raise AccountError(
            f"user {name!r} already exists (role {user.role}); "
            f"`pfi users token {name}` issues another token, "
            f"`pfi users revoke {name}` disables the user"
        )
    if user is None:
        user = User(name=name, role=role.value, active=True, created_at=now)
        session.add(user)
    else:
        user.role = role.value
        user.active = True
    session.flush()
    return _issue(session, user, expires_at, now)


def issue_token(
    session: Session, name: str, *, expires_at: datetime | None = None, now: datetime | None = None
) -> IssuedToken:
    """Another token for an active user (rotation: issue, deploy, revoke the old one)."""
    now = now or utcnow()
    _check_expiry(expires_at, now)
    user = find_user(session, name)
    if user is None:
        raise AccountError(f"no user {name!r}")
    if not user.active:
        raise AccountError(f"user {name!r} is revoked; `pfi users add` re-enables it")
    return _issue(session, user, expires_at, now)


def revoke_user(session: Session, name: str, *, now: datetime | None = None) -> int:
    """Deactivate a user and revoke all their tokens; returns how many were still live."""
    now = now or utcnow()
    user = find_user(session, name)
    if user is None:
        raise AccountError(f"no user {name!r}")
    user.active = False
    live = [t for t in user.tokens if t.revoked_at is None]
    for token in live:
        token.revoked_at = now
    return len(live)


def revoke_token(
    session: Session, name: str, token_id: str, *, now: datetime | None = None
) -> None:
    """Revoke one token of a user, leaving the user and their other tokens alone."""
    user = find_user(session, name)
    if user is None:
        raise AccountError(f"no user {name!r}")
    token = next((t for t in user.tokens if t.token_id == token_id), None)
    if token is None:
        raise AccountError(f"user {name!r} has no token {token_id!r}")
    if token.revoked_at is None:
        token.revoked_at = now or utcnow()


def list_users(session: Session) -> list[User]:
    return list(
        session.scalars(select(User).options(selectinload(User.tokens)).order_by(User.name))
    )


def _issue(session: Session, user: User, expires_at: datetime | None, now: datetime) -> IssuedToken:
    new = generate_token()
    session.add(
        ApiToken(
            user_id=user.id,
            token_id=new.token_id,
            token_hash=new.digest,
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    return IssuedToken(
        user=user.name,
        role=Role(user.role),
        token=new.token,
        token_id=new.token_id,
        expires_at=expires_at,
    )


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise AccountError(f"expiry {expires_at.isoformat()} is not in the future")
