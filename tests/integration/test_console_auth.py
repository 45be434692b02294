"""TokenAuthenticator and the account functions on both databases, with a clock passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pfi.console import accounts
from pfi.console.audit import AuditFilter, find_audit_entries, record_audit
from pfi.console.auth import AuthenticationError, TokenAuthenticator
from pfi.console.roles import Principal, Role
from pfi.store import Database
from pfi.store.models import ApiToken, User, utcnow


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def last_used(db: Database, token_id: str) -> tuple[datetime | None, datetime | None]:
    with db.reader() as s:
        token = s.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).one()
        return token.last_used_at, s.get(User, token.user_id).last_used_at  # type: ignore[union-attr]


def test_last_use_is_written_at_most_once_per_interval(db: Database):
    start = utcnow()
    with db.transaction() as s:
        issued = accounts.add_user(s, "ana", Role.operator, now=start)
    clock = Clock(start)
    auth = TokenAuthenticator(db, clock=clock, touch_interval=timedelta(minutes=1))
    assert auth.authenticate(issued.token) == Principal("ana", Role.operator, issued.token_id)
    assert last_used(db, issued.token_id) == (start, start)
    clock.at = start + timedelta(seconds=59)
    auth.authenticate(issued.token)
    assert last_used(db, issued.token_id) == (start, start)
    clock.at = start + timedelta(seconds=61)
    auth.authenticate(issued.token)
    assert last_used(db, issued.token_id) == (clock.at, clock.at)
    # another engine process (its own memory) honours the stored time as well
    other = TokenAuthenticator(db, clock=Clock(clock.at + timedelta(seconds=30)))
    other.authenticate(issued.token)
    assert last_used(db, issued.token_id) == (clock.at, clock.at)


def test_expiry_is_checked_against_the_clock(db: Database):
    start = utcnow()
    with db.transaction() as s:
        issued = accounts.add_user(
            s, "bo", Role.viewer, now=start, expires_at=start + timedelta(hours=1)
        )
    clock = Clock(start + timedelta(minutes=59))
    auth = TokenAuthenticator(db, clock=clock)
    assert auth.authenticate(issued.token).name == "bo"
    clock.at = start + timedelta(hours=1)
    with pytest.raises(AuthenticationError, match="token expired"):
        auth.authenticate(issued.token)


def test_revoked_user_can_be_re_enabled_with_a_new_token_only(db: Database):
    with db.transaction() as s:
        first = accounts.add_user(s, "cy", Role.admin)
    with db.transaction() as s:
        assert accounts.revoke_user(s, "cy") == 1
    auth = TokenAuthenticator(db)
    with pytest.raises(AuthenticationError, match="token revoked"):
        auth.authenticate(first.token)
    with db.transaction() as s, pytest.raises(accounts.AccountError, match="is revoked"):
        accounts.issue_token(s, "cy")
    with db.transaction() as s:
        second = accounts.add_user(s, "cy", Role.viewer)
    assert auth.authenticate(second.token).role == Role.viewer
    with pytest.raises(AuthenticationError, match="token revoked"):
        auth.authenticate(first.token)


def test_account_requests_that_cannot_be_done_say_why(db: Database):
    with db.transaction() as s:
        accounts.add_user(s, "dee", Role.viewer)
    cases = [
        (lambda s: accounts.add_user(s, "dee", Role.admin), "already exists"),
        (lambda s: accounts.add_user(s, "bad name", Role.admin), "user name 'bad name'"),
        (lambda s: accounts.add_user(s, "x" * 101, Role.admin), "1 to 100 characters"),
        (
            lambda s: accounts.add_user(s, "eve", Role.admin, expires_at=utcnow()),
            "not in the future",
        ),
        (lambda s: accounts.issue_token(s, "nobody"), "no user 'nobody'"),
        (lambda s: accounts.revoke_user(s, "nobody"), "no user 'nobody'"),
        (lambda s: accounts.revoke_token(s, "dee", "0" * 16), "has no token"),
    ]
    for call, message in cases:
        with db.transaction() as s, pytest.raises(accounts.AccountError, match=message):
            call(s)
    with db.reader() as s:
        assert [u.name for u in accounts.list_users(s)] == ["dee"]


def test_the_users_table_refuses_an_unknown_role(db: Database):
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add(User(name="mallory", role="root", active=True))


def test_audit_entries_commit_with_the_change_and_reject_bad_values(db: Database):
    principal = Principal("fay", Role.operator, "0123456789abcdef")
    with pytest.raises(RuntimeError), db.transaction() as s:
        record_audit(s, principal, "hold.release", "document", 42, reason="announced")
        raise RuntimeError("the change failed: its entry must not remain")
    with db.transaction() as s:
        record_audit(s, principal, "hold.release", "document", 42, reason="announced")
        record_audit(s, "engine", "delivery.replay", "delivery", "7", details={"try": 2})
    with db.reader() as s:
        entries = find_audit_entries(s, AuditFilter())
    assert [(e.actor, e.action, e.target_id) for e in entries] == [
        ("engine", "delivery.replay", "7"),
        ("fay", "hold.release", "42"),
    ]
    assert entries[1].details == {"token_id": "0123456789abcdef"}
    assert entries[1].reason == "announced"
    with db.transaction() as s:
        for bad, message in [
            ({"actor": ""}, "actor is empty"),
            ({"target_id": "x" * 201}, "target_id is 201 characters, at most 200"),
            ({"action": "a" * 65}, "action is 65 characters"),
        ]:
            args = {"actor": "x", "action": "a.b", "target_type": "t", "target_id": "1"} | bad
            with pytest.raises(ValueError, match=message):
                record_audit(s, **args)
