"""Dependencies the API routers share, other than authentication (see `auth`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pfi.console.auth import Principal, require
from pfi.console.roles import Role
from pfi.store import Database


def database(request: Request) -> Database:
    """The engine's store, set on the app by `create_app`."""
    return request.app.state.db


DatabaseDep = Annotated[Database, Depends(database)]
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]
Admin = Annotated[Principal, Depends(require(Role.admin))]

#: Documented on every protected route, so that /api/docs shows what a refusal looks like.
AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "no token, or a malformed, unknown, revoked or expired one"},
    403: {"description": "the user's role is too low for this endpoint"},
}
