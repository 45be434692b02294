"""The ops HTTP API over real HTTP, against a whole engine, on SQLite and PostgreSQL.

Messages and patients are put in the store the real way (HL7 over MLLP, identity
stage over the broker); users come from `pfi.console.accounts` or from the `pfi users`
command run as a subprocess against the same database.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, func, select

from pfi.adapters.mllp import MllpClient
from pfi.console import accounts
from pfi.console.roles import Role
from pfi.store import Database
from pfi.store.models import ApiToken, AuditEntry, Message, Patient, User, utcnow
from tests.support.databases import fresh_postgres_database, postgres_unavailable_reason, sqlite_url
from tests.support.hl7 import adt_a01, encode
from tests.support.inprocess import RunningEngine, engine_settings

pytestmark = pytest.mark.slow

IPP = "IPP-API-1"
INS = "279035121518989"


@dataclass
class Api:
    engine: RunningEngine
    db: Database
    base_url: str
    message_ids: list[int]  # oldest first
    latin1_message_id: int

    def get(self, path: str, token: str | None = None, **params: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.base_url + path, headers=headers, params=params, timeout=10)

    def user(self, role: Role, **kwargs: object) -> tuple[str, str]:
        """A new user with one token: (name, token)."""
        name = f"u-{role}-{uuid.uuid4().hex[:8]}"
        with self.db.transaction() as session:
            issued = accounts.add_user(session, name, role, **kwargs)  # type: ignore[arg-type]
        return name, issued.token


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One engine per backend for the whole module, with three messages and a patient."""
    tmp = tmp_path_factory.mktemp(request.param)
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(tmp)
        else:
            reason = postgres_unavailable_reason()
            if reason:
                pytest.skip(reason)
            url = stack.enter_context(fresh_postgres_database())
        running = stack.enter_context(RunningEngine(engine_settings(tmp, url)))
        assert running.engine is not None
        db = running.engine.db
        with MllpClient("127.0.0.1", running.port("DPI")) as client:
            client.send(encode(adt_a01("API-1", IPP, ins=INS, status="VALI")))
            client.send(
                encode(
                    adt_a01(
                        "API-2", IPP, ins=INS, status="VALI", trigger="A08", family="DUPONT-DURAND"
                    )
                )
            )
            latin1 = adt_a01("API-3", "IPP-API-2", family="HÉBERT", charset="8859/1")
            client.send(encode(latin1, "8859/1"))

        def identity_done() -> bool:
            with db.reader() as s:
                return s.scalar(select(func.count()).select_from(Patient)) == 2

        assert _wait_for(identity_done, 30), "identity stage did not record both patients"
        with db.reader() as s:
            ids = list(s.scalars(select(Message.id).order_by(Message.id)))
        port = running.settings.http.port
        yield Api(running, db, f"http://127.0.0.1:{port}", ids, ids[2])


def protected_endpoints(api: Api) -> list[tuple[str, dict[str, object], Role]]:
    mid = api.message_ids[0]
    return [
        ("/api/messages", {}, Role.viewer),
        (f"/api/messages/{mid}", {}, Role.viewer),
        (f"/api/messages/{mid}", {"raw": "true"}, Role.viewer),
        (f"/api/patients/{IPP}", {}, Role.viewer),
        ("/api/audit", {}, Role.admin),
    ]


# --- open endpoints -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/openapi.json"])
def test_open_endpoints_answer_without_a_token(api: Api, path: str):
    response = api.get(path)
    assert response.status_code == 200, response.text


def test_http_answers_do_not_wait_for_the_clients_delayed_ack(api: Api):
    """Without TCP_NODELAY on the engine's HTTP socket every answer took >= 40 ms."""
    with httpx.Client(base_url=api.base_url, timeout=10) as client:
        client.get("/healthz")
        durations = []
        for _ in range(21):
            start = time.perf_counter()
            client.get("/healthz")
            durations.append(time.perf_counter() - start)
    assert sorted(durations)[10] < 0.025, f"median {sorted(durations)[10] * 1000:.1f} ms"


def test_openapi_documents_the_response_shapes_and_the_bearer_scheme(api: Api):
    spec = api.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("MessagePage", "MessageDetail", "PatientLookup", "PatientView", "AuditPage"):
        assert name in schemas
    assert spec["components"]["securitySchemes"]["PFI token"]["scheme"] == "bearer"
    for path in ("/api/messages", "/api/messages/{message_id}", "/api/patients/{key}"):
        assert "401" in spec["paths"][path]["get"]["responses"]
        assert spec["paths"][path]["get"]["security"] == [{"PFI token": []}]


# --- refusals -------------------------------------------------------------------------


def test_each_protected_endpoint_requires_a_token(api: Api):
    for path, params, _ in protected_endpoints(api):
        response = api.get(path, **params)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="pfi"'


def test_every_documented_api_operation_refuses_a_request_without_token(api: Api):
    """Covers routers added later too: whatever /api/openapi.json lists must say 401."""
    spec = api.get("/api/openapi.json").json()
    calls = 0
    for path, operations in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            response = httpx.request(method.upper(), api.base_url + concrete, timeout=10)
            assert response.status_code == 401, (method, path, response.status_code)
            calls += 1
    assert calls >= 4


def test_wrong_tokens_are_refused_with_401(api: Api):
    _, good = api.user(Role.admin)
    token_id = good.split("_")[1]
    wrong = [
        "not-a-pfi-token",
        good + "x",  # malformed: secret too long
        f"pfi_{token_id}_{'A' * 43}",  # known id, wrong secret
        f"pfi_{'0' * 16}_{good[-43:]}",  # right secret, unknown id
    ]
    for path, params, _ in protected_endpoints(api):
        for token in wrong:
            response = api.get(path, token, **params)
            assert response.status_code == 401, (path, token)
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer realm="pfi", error="invalid_token"')
    basic = httpx.get(
        api.base_url + "/api/messages", headers={"Authorization": f"Basic {good}"}, timeout=10
    )
    assert basic.status_code == 401


def test_revoked_token_and_disabled_user_are_refused_with_401(api: Api):
    name, token = api.user(Role.admin)
    with api.db.transaction() as s:
        second = accounts.issue_token(s, name)
    assert api.get("/api/messages", token).status_code == 200
    with api.db.transaction() as s:
        accounts.revoke_token(s, name, token.split("_")[1])
    for path, params, _ in protected_endpoints(api):
        response = api.get(path, token, **params)
        assert response.status_code == 401
        assert response.json()["detail"] == "token revoked"
    assert api.get("/api/messages", second.token).status_code == 200  # the other still works
    with api.db.transaction() as s:
        accounts.revoke_user(s, name)
    for path, params, _ in protected_endpoints(api):
        assert api.get(path, second.token, **params).status_code == 401


def test_expired_token_is_refused_with_401(api: Api):
    past = utcnow() - timedelta(days=2)
    _, token = api.user(Role.admin, now=past, expires_at=past + timedelta(days=1))
    for path, params, _ in protected_endpoints(api):
        response = api.get(path, token, **params)
        assert response.status_code == 401
        assert response.json()["detail"] == "token expired"
        assert 'error_description="token expired"' in response.headers["WWW-Authenticate"]
    _, fresh = api.user(Role.admin, expires_at=utcnow() + timedelta(days=1))
    assert api.get("/api/audit", fresh).status_code == 200


def test_too_low_a_role_is_refused_with_403(api: Api):
    tokens = {role: api.user(role)[1] for role in Role}
    for path, params, needed in protected_endpoints(api):
        for role, token in tokens.items():
            response = api.get(path, token, **params)
            expected = 200 if role.covers(needed) else 403
            assert response.status_code == expected, (path, role, response.text)
            if expected == 403:
                assert f"role {needed} required" in response.json()["detail"]
                assert "insufficient_scope" in response.headers["WWW-Authenticate"]


# --- reads ----------------------------------------------------------------------------


def test_messages_are_searched_filtered_and_paged(api: Api):
    _, token = api.user(Role.viewer)
    page = api.get("/api/messages", token, limit=2).json()
    assert [m["id"] for m in page["items"]] == api.message_ids[::-1][:2]
    assert page["next_before_id"] == api.message_ids[1]
    rest = api.get("/api/messages", token, limit=2, before_id=page["next_before_id"]).json()
    assert [m["id"] for m in rest["items"]] == [api.message_ids[0]]
    assert rest["next_before_id"] is None
    by_ipp = api.get("/api/messages", token, ipp=IPP, status="accepted").json()["items"]
    assert sorted(m["control_id"] for m in by_ipp) == ["API-1", "API-2"]
    by_ins = api.get("/api/messages", token, ins=INS).json()["items"]
    assert [m["control_id"] for m in by_ins] == ["API-2", "API-1"]
    assert api.get("/api/messages", token, control_id="API-3").json()["items"][0]["ipp"] == (
        "IPP-API-2"
    )
    assert api.get("/api/messages", token, source="SGL").json()["items"] == []
    assert api.get("/api/messages", token, status="bogus").status_code == 422


def test_message_metadata_and_raw_bytes_as_received(api: Api):
    _, token = api.user(Role.viewer)
    mid = api.latin1_message_id
    meta = api.get(f"/api/messages/{mid}", token).json()
    assert meta["control_id"] == "API-3" and meta["charset"] == "8859/1"
    assert meta["status"] == "accepted" and meta["ack_code"] == "AA"
    raw = api.get(f"/api/messages/{mid}", token, raw="true")
    assert raw.headers["content-type"] == "text/plain; charset=iso-8859-1"
    expected = encode(adt_a01("API-3", "IPP-API-2", family="HÉBERT", charset="8859/1"), "8859/1")
    assert raw.content == expected
    assert "HÉBERT" in raw.text
    assert api.get("/api/messages/999999", token).status_code == 404


def test_patient_shows_identity_identifiers_and_history(api: Api):
    _, token = api.user(Role.viewer)
    for key in (IPP, INS):
        body = api.get(f"/api/patients/{key}", token).json()
        assert body["key"] == key
        [patient] = body["patients"]
        assert patient["ins"] == INS and patient["birth_name"] == "DUPONT-DURAND"
        assert patient["birth_date"] == "1979-03-28"
        assert {i["value"] for i in patient["identifiers"]} >= {IPP}
        assert [e["trigger"] for e in patient["history"]] == ["A01", "A08"]
    assert api.get("/api/patients/NOBODY", token).status_code == 404


def test_reads_are_in_the_audit_log_with_the_user_name(api: Api):
    name, token = api.user(Role.viewer)
    mid = api.message_ids[0]
    api.get("/api/messages", token, ipp=IPP)
    api.get(f"/api/messages/{mid}", token)
    api.get(f"/api/messages/{mid}", token, raw="true")
    api.get(f"/api/patients/{IPP}", token)
    api.get("/api/patients/NOBODY", token)
    _, admin = api.user(Role.admin)
    entries = api.get("/api/audit", admin, actor=name).json()["items"]
    seen = [(e["action"], e["target_type"], e["target_id"]) for e in reversed(entries)]
    assert seen == [
        ("message.search", "messages", f"ipp={IPP}"),
        ("message.read", "message", str(mid)),
        ("message.read_raw", "message", str(mid)),
        ("patient.read", "patient", IPP),
        ("patient.read", "patient", "NOBODY"),
    ]
    search, read = entries[-1], entries[-2]
    assert search["details"]["ipps"] == [IPP]
    assert sorted(search["details"]["message_ids"]) == api.message_ids[:2]
    assert read["details"]["ipp"] == IPP
    assert entries[0]["details"]["patient_ids"] == []
    assert {e["details"]["token_id"] for e in entries} == {token.split("_")[1]}
    # the admin's own read of the trail is in it too
    own = api.get("/api/audit", admin, action="audit.read", target_id=name).json()["items"]
    assert own and own[0]["details"]["filters"] == {"actor": name}


def test_audit_is_filtered_by_time_and_paged(api: Api):
    name, token = api.user(Role.viewer)
    for _ in range(3):
        api.get(f"/api/patients/{IPP}", token)
    _, admin = api.user(Role.admin)
    first = api.get("/api/audit", admin, actor=name, limit=2).json()
    assert len(first["items"]) == 2 and first["next_before_id"] == first["items"][-1]["id"]
    second = api.get(
        "/api/audit", admin, actor=name, limit=2, before_id=first["next_before_id"]
    ).json()
    assert len(second["items"]) == 1 and second["next_before_id"] is None
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert api.get("/api/audit", admin, actor=name, since=future).json()["items"] == []
    assert len(api.get("/api/audit", admin, actor=name, until=future).json()["items"]) == 3
    naive = api.get("/api/audit", admin, since="2024-03-01T10:00:00")
    assert naive.status_code == 422 and "timezone" in naive.text


# --- storage of tokens and last use ---------------------------------------------------


def test_token_is_stored_only_as_its_sha256(api: Api):
    _, token = api.user(Role.viewer)
    token_id, secret = token.split("_")[1], token.split("_", 2)[2]
    with api.db.reader() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        stored = [str(v) for v in vars(row).values()]
        stored += [str(v) for v in vars(s.get(User, row.user_id)).values()]
        stored += [str(e.details) for e in s.scalars(select(AuditEntry))]
    assert not any(secret in value for value in stored)
    assert api.get("/api/messages", token).status_code == 200


def test_last_use_is_written_once_a_minute_not_per_request(api: Api):
    name, token = api.user(Role.viewer)
    token_id = token.split("_")[1]
    updates: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            updates.append(statement)

    event.listen(api.db.engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            assert api.get("/api/patients/" + IPP, token).status_code == 200
    finally:
        event.remove(api.db.engine, "before_cursor_execute", count)
    assert len(updates) == 1
    with api.db.reader() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).one()
        user = s.scalars(select(User).where(User.name == name)).one()
    assert row.last_used_at is not None and user.last_used_at == row.last_used_at


# --- the CLI --------------------------------------------------------------------------


def pfi_cli(api: Api, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PFI_")}
    env["PFI_DATABASE_URL"] = api.db.url
    return subprocess.run(
        [sys.executable, "-m", "pfi.cli", "users", *args],
        cwd=cwd,  # away from the repository's config/pfi.yaml
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_creates_a_usable_token_lists_and_revokes_it(api: Api, tmp_path: Path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    added = pfi_cli(api, tmp_path, "add", name, "--role", "admin", "--expires-days", "30")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("pfi_") and "shown only now" in added.stderr
    assert api.get("/api/audit", token).status_code == 200

    again = pfi_cli(api, tmp_path, "add", name, "--role", "viewer")
    assert again.returncode == 1 and "already exists" in again.stderr

    listed = pfi_cli(api, tmp_path, "list")
    assert listed.returncode == 0
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith(name)]
    assert "admin" in line and "active" in line
    assert token.split("_")[1] in listed.stdout and token not in listed.stdout

    revoked = pfi_cli(api, tmp_path, "revoke", name)
    assert revoked.returncode == 0 and "1 token(s) revoked" in revoked.stdout
    assert api.get("/api/audit", token).status_code == 401

    with api.db.reader() as s:
        actions = list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.target_id == name)
                .order_by(AuditEntry.id)
            )
        )
    assert actions == ["user.add", "user.revoke"]
