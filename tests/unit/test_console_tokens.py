"""Token format and digests, role order, and that every /api route is protected."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from pfi.console.app import create_app
from pfi.console.auth import RefusalLog
from pfi.console.roles import Role
from pfi.console.tokens import digest_matches, generate_token, token_digest, token_id_of
from pfi.observability.health import Readiness
from pfi.store import Database


def test_generated_tokens_carry_256_random_bits_behind_a_public_id():
    tokens = [generate_token() for _ in range(200)]
    assert len({t.token for t in tokens}) == len({t.token_id for t in tokens}) == 200
    for t in tokens:
        prefix, token_id, secret = t.token.split("_", 2)
        assert prefix == "pfi" and token_id == t.token_id and len(token_id) == 16
        assert len(secret) == 43  # base64url of 32 bytes
        assert token_id_of(t.token) == t.token_id
        assert t.digest == hashlib.sha256(t.token.encode()).hexdigest()
        assert t.token not in t.digest and secret not in t.digest


def test_malformed_tokens_have_no_id():
    good = generate_token().token
    for bad in (
        "",
        "pfi",
        "pfi__",
        good + "A",
        good[:-1],
        good.replace("pfi_", "pfx_"),
        good.upper(),
        f"pfi_{'g' * 16}_{good[-43:]}",
        good + "\n",
    ):
        assert token_id_of(bad) is None, bad


def test_digest_comparison_needs_the_exact_token():
    t = generate_token()
    assert digest_matches(t.token, t.digest)
    assert not digest_matches(t.token[:-1] + ("A" if t.token[-1] != "A" else "B"), t.digest)
    assert token_digest(t.token) == t.digest


def test_roles_are_ordered_admin_over_operator_over_viewer():
    assert Role.admin.covers(Role.operator) and Role.admin.covers(Role.viewer)
    assert Role.operator.covers(Role.viewer) and not Role.operator.covers(Role.admin)
    assert not Role.viewer.covers(Role.operator) and Role.viewer.covers(Role.viewer)


def test_every_documented_api_operation_requires_the_bearer_token(tmp_path: Path):
    """A router added later without `require(...)` fails here (and over HTTP in
    tests/integration/test_console_api.py), not in production."""
    app = create_app(Readiness(), db=Database(f"sqlite:///{tmp_path / 'x.db'}"))
    spec = app.openapi()
    assert set(spec["paths"]) >= {
        "/api/messages",
        "/api/messages/{message_id}",
        "/api/patients/{key}",
        "/api/audit",
    }
    for path, operations in spec["paths"].items():
        assert path.startswith("/api/"), path
        for method, operation in operations.items():
            assert operation.get("security") == [{"PFI token": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_without_a_store_only_the_open_endpoints_exist():
    app = create_app(Readiness())
    assert app.openapi()["paths"] == {}


def test_refused_tokens_are_logged_once_a_minute_per_client(caplog: pytest.LogCaptureFixture):
    refusals = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="pfi.console.auth"):
        for _ in range(50):
            refusals.log("10.0.0.1", "GET /api/messages", "invalid token", "0" * 16)
        refusals.log("10.0.0.2", "GET /api/audit", "token expired", None)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "API authentication refused from 10.0.0.1 for GET /api/messages: invalid token "
        "(token id 0000000000000000)",
        "API authentication refused from 10.0.0.2 for GET /api/audit: token expired (token id -)",
    ]
