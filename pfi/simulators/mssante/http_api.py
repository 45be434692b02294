"""Inspection and control of the MSSanté simulator over HTTP (FastAPI).

GET  /_sim/messages?to=ADDRESS   what each recipient received: headers, attachments, XDM
GET  /_sim/rejected              submissions refused at DATA, with every problem found
GET  /_sim/mailbox?user=ADDRESS  the IMAP view of an application mailbox (uid, flags...)
GET  /_sim/stats                 connection counters
POST /_sim/config                {"unknown": [...], "opposed": [...], "auto_mdn": null|"displayed",
                                  "unknown_mode": "bounce"|"reject"}
POST /_sim/mdn                   {"message_id", "recipient", "disposition",
                                  "error_code", "error_label"}
POST /_sim/inject?mailbox=ADDR   raw RFC 5322 bytes into that mailbox (an inbound document)
POST /_sim/reset                 forget every message and counter
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import Message
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict

from pfi.simulators.mssante.smtp import MssSmtpHandler
from pfi.simulators.mssante.state import SimulatorState, StoredMessage
from pfi.transforms.mssante.xdm_read import XdmError, check_xdm_zip, read_xdm_zip


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unknown: list[str] | None = None
    opposed: list[str] | None = None
    unknown_mode: Literal["bounce", "reject"] | None = None
    auto_mdn: Literal["displayed", "processed", "deleted", "dispatched"] | None = None


class MdnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str
    recipient: str
    disposition: Literal["displayed", "processed", "deleted", "dispatched"] = "displayed"
    error_code: str | None = None
    error_label: str | None = None


def describe(message: StoredMessage) -> dict[str, Any]:
    msg = message_from_bytes(message.raw, policy=policy.default)
    headers: dict[str, list[str]] = {}
    for name, value in msg.items():
        headers.setdefault(name, []).append(str(value))
    return {
        "id": message.id,
        "received_at": message.received_at.isoformat(),
        "mail_from": message.mail_from,
        "recipient": message.recipient,
        "subject": str(msg.get("Subject", "")),
        "message_id": str(msg.get("Message-ID", "")),
        "headers": headers,
        "attachments": _attachments(msg),
        "tls": message.tls,
        "client_certificate": message.client_cert_subject,
        "authenticated_as": message.authenticated_as,
        "smtp_connection": message.connection,
        "size": len(message.raw),
    }


def _attachments(msg: Message) -> list[dict[str, Any]]:
    out = []
    if not msg.is_multipart():
        return out
    for part in msg.iter_attachments():
        data = part.get_payload(decode=True) or b""
        item: dict[str, Any] = {
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "size": len(data),
        }
        if part.get_content_type() == "application/zip":
            item["xdm"] = _xdm(data)
        out.append(item)
    return out


def _xdm(data: bytes) -> dict[str, Any]:
    problems = check_xdm_zip(data)
    try:
        package = read_xdm_zip(data, check_cda=False)
    except XdmError:
        return {"files": [], "documents": [], "problems": problems}
    return {
        "files": list(package.files),
        "documents": [
            {
                "path": d.path,
                "mime_type": d.mime_type,
                "unique_id": d.unique_id,
                "patient_id": d.patient_id,
                "action": d.action,
                "confidentiality_codes": list(d.confidentiality_codes),
                "size": len(d.content),
            }
            for d in package.documents
        ],
        "problems": problems,
    }


def build_app(state: SimulatorState, smtp: MssSmtpHandler) -> FastAPI:
    app = FastAPI(title="PFI MSSanté simulator", docs_url=None, redoc_url=None)

    @app.get("/_sim/messages")
    async def messages(to: str | None = Query(default=None)) -> list[dict[str, Any]]:
        return [describe(m) for m in state.messages_for(to)]

    @app.get("/_sim/rejected")
    async def rejected() -> list[dict[str, Any]]:
        with state.lock:
            items = list(state.rejected)
        return [
            {
                "received_at": r.received_at.isoformat(),
                "mail_from": r.mail_from,
                "recipients": r.recipients,
                "problems": r.problems,
            }
            for r in items
        ]

    @app.get("/_sim/mailbox")
    async def mailbox(user: str) -> list[dict[str, Any]]:
        with state.lock:
            box = state.mailboxes.get(user.lower())
            if box is None:
                raise HTTPException(404, f"no IMAP mailbox {user}")
            entries = [(e.uid, sorted(e.flags), e.raw) for e in box.entries]
        out = []
        for uid, flags, raw in entries:
            msg = message_from_bytes(raw, policy=policy.default)
            out.append(
                {
                    "uid": uid,
                    "flags": flags,
                    "from": str(msg.get("From", "")),
                    "subject": str(msg.get("Subject", "")),
                    "content_type": msg.get_content_type(),
                }
            )
        return out

    @app.get("/_sim/stats")
    async def stats() -> dict[str, Any]:
        with state.lock:
            return {
                "smtp_connections": state.smtp_connections,
                "imap_connections": state.imap_connections,
                "delivered": sum(len(v) for v in state.delivered.values()),
                "rejected": len(state.rejected),
                "unknown": sorted(state.unknown),
                "opposed": sorted(state.opposed),
                "unknown_mode": state.unknown_mode,
                "auto_mdn": state.auto_mdn,
            }

    @app.post("/_sim/config")
    async def config(body: SimConfig) -> dict[str, Any]:
        fields = body.model_fields_set
        state.configure(
            unknown=body.unknown,
            opposed=body.opposed,
            unknown_mode=body.unknown_mode,
            auto_mdn=body.auto_mdn if "auto_mdn" in fields else False,
        )
        return await stats()

    @app.post("/_sim/mdn")
    async def mdn(body: MdnRequest) -> dict[str, Any]:
        copies = [
            m for m in state.find(body.message_id) if m.recipient.lower() == body.recipient.lower()
        ]
        if not copies:
            raise HTTPException(404, f"{body.recipient} received no message {body.message_id}")
        error = (body.error_code, body.error_label or "") if body.error_code else None
        try:
            sent = smtp.send_mdn(
                copies[0].raw, body.recipient, disposition=body.disposition, error=error
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"to": str(sent["To"]), "message_id": str(sent["Message-ID"])}

    @app.post("/_sim/inject")
    async def inject(request: Request, mailbox: str) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            raise HTTPException(422, "empty body: POST the raw RFC 5322 message")
        with state.lock:
            known = mailbox.lower() in state.mailboxes
        if not known:
            raise HTTPException(404, f"no IMAP mailbox {mailbox}")
        stored = state.deliver_local(mailbox, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        return {"id": stored.id, "mailbox": mailbox}

    @app.post("/_sim/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return app
