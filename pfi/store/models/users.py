"""People who use the ops HTTP API, and the bearer tokens they authenticate with.

A token is never stored in clear: only its SHA-256 digest and a public lookup id are.
Tokens are 256-bit random secrets, not passwords: a fast digest is the standard and
sufficient protection (see `pfi.console.tokens` for the argument). Rows are never
deleted so that the audit trail's actor names always resolve to who they were; a
departed user is deactivated and their tokens revoked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pfi.store.models.base import Base, BigId, UtcDateTime, utcnow

#: The roles, lowest first; kept here as plain strings so the store imports nothing above.
ROLE_NAMES = ("viewer", "operator", "admin")


class User(Base):
    """One named user. `last_used_at` is when any of their tokens last authenticated
    (written at most once a minute per token, not on every request)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", order_by="ApiToken.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLE_NAMES)})", name="role"),
    )


class ApiToken(Base):
    """One bearer token of a user.

    `token_id` is the public part of the token (`pfi_<token_id>_<secret>`): it finds
    the row with a unique index, so that verifying a token is one indexed read and one
    constant-time digest comparison. `token_hash` is the hex SHA-256 of the whole token.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")
