"""`pfi users add|token|list|revoke`: who may use the ops HTTP API, with which role.

A token is printed once, alone on stdout (so `TOKEN=$(pfi users add ...)` works), with
what to know about it on stderr; only its SHA-256 is stored. Every change is written
to the audit trail as `cli:<OS user>` in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from pfi.cli.options import ConfigOption, cli_actor, open_store
from pfi.console import accounts
from pfi.console.audit import record_audit
from pfi.console.roles import Role
from pfi.store import Database
from pfi.store.models import User, utcnow

users_app = typer.Typer(
    help="Users of the ops HTTP API: roles viewer ⊂ operator ⊂ admin, bearer tokens.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


ExpiresDays = Annotated[
    int | None,
    typer.Option("--expires-days", min=1, max=3650, help="the token expires after N days"),
]


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="login name, e.g. jdupont or j.dupont@chu-x.fr")],
    role: Annotated[Role, typer.Option(help="viewer, operator or admin", case_sensitive=False)],
    expires_days: ExpiresDays = None,
    config: ConfigOption = None,
) -> None:
    """Create a user (or re-enable a revoked one) and print their first token once."""
    now = utcnow()
    with open_store(config) as db, _changes(db) as session:
        issued = accounts.add_user(session, name, role, expires_at=_expiry(now, expires_days))
        record_audit(
            session,
            cli_actor(),
            "user.add",
            "user",
            name,
            details={"role": role.value, "token_id": issued.token_id, **_expiry_detail(issued)},
        )
    _print_token(issued)


@users_app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="an existing, active user")],
    expires_days: ExpiresDays = None,
    config: ConfigOption = None,
) -> None:
    """Issue another token for a user (rotation: issue, deploy, revoke the old one)."""
    now = utcnow()
    with open_store(config) as db, _changes(db) as session:
        issued = accounts.issue_token(session, name, expires_at=_expiry(now, expires_days))
        record_audit(
            session,
            cli_actor(),
            "user.token",
            "user",
            name,
            details={"token_id": issued.token_id, **_expiry_detail(issued)},
        )
    _print_token(issued)


@users_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="the user")],
    token_id: Annotated[
        str | None,
        typer.Option("--token", help="revoke only this token id (see `pfi users list`)"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Disable a user and revoke all their tokens, or revoke only one with --token."""
    with open_store(config) as db, _changes(db) as session:
        if token_id is None:
            count = accounts.revoke_user(session, name)
            record_audit(
                session, cli_actor(), "user.revoke", "user", name, details={"tokens": count}
            )
            message = f"user {name} disabled; {count} token(s) revoked"
        else:
            accounts.revoke_token(session, name, token_id)
            record_audit(
                session, cli_actor(), "token.revoke", "user", name, details={"token_id": token_id}
            )
            message = f"token {token_id} of {name} revoked"
    typer.echo(message)


@users_app.command("list")
def list_(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per user")] = False,
) -> None:
    """List users, their role and their tokens (ids only: tokens are not stored)."""
    with open_store(config) as db, db.reader() as session:
        users = accounts.list_users(session)
        for user in users:
            if as_json:
                typer.echo(json.dumps(_user_json(user), ensure_ascii=False))
                continue
            state = "active" if user.active else "REVOKED"
            typer.echo(
                f"{user.name:<24} {user.role:<8} {state:<7} created {_when(user.created_at)}"
                f"  last used {_when(user.last_used_at)}"
            )
            for t in user.tokens:
                if t.revoked_at is not None:
                    t_state = f"revoked {_when(t.revoked_at)}"
                elif t.expires_at is not None and t.expires_at <= utcnow():
                    t_state = f"expired {_when(t.expires_at)}"
                else:
                    t_state = f"expires {_when(t.expires_at)}" if t.expires_at else "no expiry"
                typer.echo(
                    f"  token {t.token_id}  created {_when(t.created_at)}  {t_state}"
                    f"  last used {_when(t.last_used_at)}"
                )
        if not users and not as_json:
            typer.echo(
                "no users: `pfi users add NAME --role admin` creates the first one", err=True
            )


@contextmanager
def _changes(db: Database) -> Iterator[Session]:
    """A transaction; a refused request (AccountError) is one error line and exit 1."""
    try:
        with db.transaction() as session:
            yield session
    except accounts.AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _print_token(issued: accounts.IssuedToken) -> None:
    expiry = issued.expires_at.isoformat() if issued.expires_at else "never"
    typer.echo(
        f"token {issued.token_id} for {issued.user} (role {issued.role}), expires {expiry}.\n"
        "It is shown only now and stored only as a SHA-256 digest: keep it in a secret store.",
        err=True,
    )
    typer.echo(issued.token)


def _expiry(now: datetime, days: int | None) -> datetime | None:
    return now + timedelta(days=days) if days else None


def _expiry_detail(issued: accounts.IssuedToken) -> dict[str, str]:
    return {"expires_at": issued.expires_at.isoformat()} if issued.expires_at else {}


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at else "never"


def _user_json(user: User) -> dict[str, object]:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return {
        "name": user.name,
        "role": user.role,
        "active": user.active,
        "created_at": iso(user.created_at),
        "last_used_at": iso(user.last_used_at),
        "tokens": [
            {
                "token_id": t.token_id,
                "created_at": iso(t.created_at),
                "expires_at": iso(t.expires_at),
                "revoked_at": iso(t.revoked_at),
                "last_used_at": iso(t.last_used_at),
            }
            for t in user.tokens
        ],
    }
