"""Who is calling the ops API, and may they: bearer tokens, roles, `require(role)`.

Every endpoint that reads patient data or changes state declares
`principal: Annotated[Principal, Depends(require(Role.viewer))]` (or operator, admin).
A request without a usable token gets 401 with a `WWW-Authenticate: Bearer` challenge
(RFC 6750): missing, malformed, unknown, wrong secret, revoked, user disabled or
expired. An authenticated user whose role is too low gets 403.

Checking a token is one indexed read (by the token's public id) and one constant-time
digest comparison. The read is done on every request so that a revocation takes effect
at once. `last_used_at` is written at most once a minute per token: an API client
polling every second must not turn into a write per request on the store the MLLP
intake commits to.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import or_, select, update

from pfi.console.roles import Principal, Role
from pfi.console.tokens import digest_matches, token_id_of
from pfi.store import Database
from pfi.store.models import ApiToken, User, utcnow

__all__ = [
    "AuthenticationError",
    "Principal",
    "Role",
    "TokenAuthenticator",
    "require",
]

log = logging.getLogger(__name__)

REALM = "pfi"
#: How often a token's (and its user's) last-used time is written, at most.
TOUCH_INTERVAL = timedelta(minutes=1)


class AuthenticationError(Exception):
    """A token that does not authenticate; `reason` is safe to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenAuthenticator:
    """Turns a bearer token into a Principal, against the users in the store."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        touch_interval: timedelta = TOUCH_INTERVAL,
    ) -> None:
        self.db = db
        self.clock = clock
        self.touch_interval = touch_interval
        # Last time this process wrote last_used_at, per token id: spares even the
        # conditional UPDATE when many requests of one token arrive at once.
        self._touched: dict[str, datetime] = {}
        self._touched_lock = threading.Lock()

    def authenticate(self, token: str) -> Principal:
        token_id = token_id_of(token)
        if token_id is None:
            raise AuthenticationError("malformed token")
        with self.db.reader() as session:
            row = session.execute(
                select(
                    ApiToken.id,
                    ApiToken.token_hash,
                    ApiToken.expires_at,
                    ApiToken.revoked_at,
                    ApiToken.last_used_at,
                    User.id.label("user_id"),
                    User.name,
                    User.role,
                    User.active,
                )
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_id == token_id)
            ).one_or_none()
        # The secret is checked first: only its holder learns that a token is revoked
        # or expired rather than unknown.
        if row is None or not digest_matches(token, row.token_hash):
            raise AuthenticationError("invalid token")
        if row.revoked_at is not None or not row.active:
            raise AuthenticationError("token revoked")
        now = self.clock()
        if row.expires_at is not None and row.expires_at <= now:
            raise AuthenticationError("token expired")
        if row.last_used_at is None or now - row.last_used_at >= self.touch_interval:
            self._touch(token_id, row.id, row.user_id, now)
        return Principal(name=row.name, role=Role(row.role), token_id=token_id)

    def _touch(self, token_id: str, token_pk: int, user_pk: int, now: datetime) -> None:
        threshold = now - self.touch_interval
        with self._touched_lock:
            last = self._touched.get(token_id)
            if last is not None and last > threshold:
                return
            self._touched[token_id] = now
        try:
            with self.db.transaction() as session:
                result = session.execute(
                    update(ApiToken)
                    .where(
                        ApiToken.id == token_pk,
                        or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= threshold),
                    )
                    .values(last_used_at=now)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    session.execute(update(User).where(User.id == user_pk).values(last_used_at=now))
        except Exception:  # bookkeeping only: never refuse a valid caller because of it
            log.warning("could not record last use of token %s", token_id, exc_info=True)


class RefusalLog:
    """Logs refused tokens without letting a client flood the log: per client address,
    the first refusal of each minute is logged, with how many were left out before it."""

    def __init__(self, every: timedelta = timedelta(minutes=1), max_clients: int = 10_000) -> None:
        self.every = every
        self.max_clients = max_clients
        self._seen: dict[str, tuple[datetime, int]] = {}
        self._lock = threading.Lock()

    def log(self, client: str, what: str, reason: str, token_id: str | None) -> None:
        now = utcnow()
        with self._lock:
            last, skipped = self._seen.get(client, (None, 0))
            if last is not None and now - last < self.every:
                self._seen[client] = (last, skipped + 1)
                return
            if len(self._seen) >= self.max_clients:
                self._seen.clear()
            self._seen[client] = (now, 0)
        log.warning(
            "API authentication refused from %s for %s: %s (token id %s)%s",
            client,
            what,
            reason,
            token_id or "-",
            f"; {skipped} more refusal(s) from this address not logged" if skipped else "",
        )


_refusals = RefusalLog()
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PFI token",
    description="`pfi users add NAME --role viewer|operator|admin` prints a token once.",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@functools.cache
def require(role: Role | str) -> Callable[..., Principal]:
    """A FastAPI dependency admitting users whose role covers `role`, returning them."""
    needed = Role(role)

    def authenticated_principal(request: Request, credentials: BearerCredentials) -> Principal:
        authenticator: TokenAuthenticator = request.app.state.authenticator
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="authentication required: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            )
        try:
            principal = authenticator.authenticate(credentials.credentials)
        except AuthenticationError as exc:
            _refusals.log(
                request.client.host if request.client else "?",
                f"{request.method} {request.url.path}",
                exc.reason,
                token_id_of(credentials.credentials),
            )
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=exc.reason,
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="{REALM}", error="invalid_token", '
                        f'error_description="{exc.reason}"'
                    )
                },
            ) from None
        if not principal.role.covers(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {needed} required; user {principal.name} has role {principal.role}",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"'},
            )
        request.state.principal = principal
        return principal

    return authenticated_principal
