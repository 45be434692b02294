"""Documents received by MSSanté reach the DPI, attached to the right patient.

Real parts: the MSSanté simulator's IMAP store on loopback (mails deposited as a
correspondent's relay would), a real MLLP listener playing the DPI (answers AA or AE),
the store on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from pfi.adapters.mssante.imap import FetchedMail
from pfi.inbound.config import InboundConfig
from pfi.inbound.service import InboundIntegrator, PollSummary
from pfi.simulators.mssante import MssSimulator
from pfi.store import Database
from pfi.store.models import InboundDocumentRow, InboundMail
from pfi.transforms.hl7.message import parse_message
from pfi.transforms.mssante.notifications import DsnRecipient, build_dsn
from tests.support.dpi import FakeDpi
from tests.support.mss import APP, APP_PASSWORD, INS
from tests.support.mss_inbound import (
    add_patient,
    bare_cda_mail,
    cda,
    document_mail,
    inbound_settings,
)


@dataclass
class Env:
    db: Database
    sim: MssSimulator
    dpi: FakeDpi
    integrator: InboundIntegrator

    def deposit(self, raw: bytes) -> None:
        self.sim.inject(APP, raw)

    def poll(self) -> PollSummary:
        return self.integrator.poll_once()

    def documents(self) -> list[InboundDocumentRow]:
        with self.db.reader() as s:
            return list(s.scalars(select(InboundDocumentRow).order_by(InboundDocumentRow.id)))


@pytest.fixture
def env(db: Database) -> Iterator[Env]:
    with (
        MssSimulator(smtp_port=0, imap_port=0, http_port=0, mailboxes={APP: APP_PASSWORD}) as sim,
        FakeDpi() as dpi,
    ):
        cfg = InboundConfig.of(inbound_settings(sim.imap_port, dpi.port))
        assert cfg is not None
        yield Env(db, sim, dpi, InboundIntegrator(db, cfg))


def _obx5_cda(mdm: bytes) -> bytes:
    msg = parse_message(mdm, "UNICODE UTF-8")
    obx = msg.all("OBX")[0]
    return base64.b64decode(obx.get(5, 5))


def test_document_for_a_qualified_ins_reaches_the_dpi_with_its_cda(env: Env) -> None:
    with env.db.transaction() as s:
        patient_id = add_patient(s, "IPP-1")
    env.deposit(document_mail("<doc-1@cabinet.mssante.fr>"))

    summary = env.poll()

    assert (summary.fetched, summary.kept, summary.integrated, summary.ko) == (1, 1, 1, 0)
    assert len(env.dpi.received) == 1
    mdm = parse_message(env.dpi.received[0], "UNICODE UTF-8")
    assert mdm.get("MSH-9") == "MDM" and mdm.get("MSH-9.2") == "T02"
    pid3 = mdm.first("PID").raw(3)
    assert pid3.startswith(f"{INS}^^^") and "IPP-1^^^CHU-X&1.2.250.1.999.1.1&ISO^PI" in pid3
    assert "1234567890121" not in pid3  # the sender's own IPP does not reach our DPI
    assert _obx5_cda(env.dpi.received[0]) == cda()
    [row] = env.documents()
    assert (row.status, row.patient_id, row.matched_by, row.dpi_ack_code) == (
        "integrated",
        patient_id,
        "ins",
        "AA",
    )
    assert row.mdm_control_id == mdm.header.control_id and row.integrated_at is not None
    with env.db.reader() as s:
        mail = s.scalars(select(InboundMail)).one()
    assert mail.message_id == "<doc-1@cabinet.mssante.fr>"
    assert mail.sender == "dr.martin@cabinet.mssante.fr" and b"IHE_XDM.zip" in mail.raw
    assert "\\Seen" in env.sim.state.mailboxes[APP.lower()].entries[0].flags  # once kept


def test_unknown_ins_goes_to_the_ko_worklist_with_its_reason(env: Env) -> None:
    with env.db.transaction() as s:
        add_patient(s, "IPP-1", birth_name="AUTRE")  # same INS root, other patient
    env.deposit(document_mail("<doc-2@cabinet.mssante.fr>", cda_bytes=cda("180012345678901")))

    summary = env.poll()

    assert (summary.integrated, summary.ko) == (0, 1)
    assert env.dpi.received == []
    [row] = env.documents()
    assert row.status == "ko"
    assert row.reason == (
        "INS 180012345678901 unknown; no patient matches PAT-TROIS DOMINIQUE born 1979-03-28 sex F"
    )


def test_ins_known_but_not_qualified_matches_only_by_unambiguous_traits(env: Env) -> None:
    with env.db.transaction() as s:
        add_patient(s, "IPP-1", qualified=False)
        add_patient(s, "IPP-2", ins=None, qualified=False)
    env.deposit(document_mail("<doc-3@cabinet.mssante.fr>"))

    env.poll()

    [row] = env.documents()
    assert row.status == "ko" and env.dpi.received == []
    assert row.reason is not None
    assert row.reason.startswith(f"INS {INS} not qualified (patient ")
    assert "; 2 patients match PAT-TROIS DOMINIQUE born 1979-03-28 sex F (" in row.reason


def test_no_ins_and_one_patient_with_the_traits_is_integrated(env: Env) -> None:
    with env.db.transaction() as s:
        patient_id = add_patient(s, "IPP-1", ins=None, qualified=False, birth_name="Pat-Trois")
        add_patient(s, "IPP-2", ins=None, qualified=False, first_name="CAMILLE")
    env.deposit(bare_cda_mail("<doc-4@cabinet.mssante.fr>", cda(None)))

    env.poll()

    [row] = env.documents()
    assert (row.status, row.patient_id, row.matched_by) == ("integrated", patient_id, "traits")
    pid3 = parse_message(env.dpi.received[0], "UNICODE UTF-8").first("PID").raw(3)
    assert pid3 == "IPP-1^^^CHU-X&1.2.250.1.999.1.1&ISO^PI"  # no INS for an unqualified record


def test_dpi_refusal_is_a_ko_with_the_dpi_text(env: Env) -> None:
    with env.db.transaction() as s:
        add_patient(s, "IPP-1")
    env.dpi.answer, env.dpi.error_text = "AE", "Patient IPP-1 verrouillé"
    env.deposit(document_mail("<doc-5@cabinet.mssante.fr>"))

    env.poll()

    [row] = env.documents()
    assert (row.status, row.dpi_ack_code) == ("ko", "AE")
    assert row.reason == "DPI answered AE: Patient IPP-1 verrouillé"


def test_dpi_down_leaves_the_document_pending_and_the_next_poll_sends_it(env: Env) -> None:
    with env.db.transaction() as s:
        add_patient(s, "IPP-1")
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        down = closed.getsockname()[1]
    live = env.integrator.cfg
    env.integrator.cfg = InboundConfig(
        **{**_fields(live), "dpi": live.dpi.model_copy(update={"port": down})}
    )
    env.deposit(document_mail("<doc-6@cabinet.mssante.fr>"))

    first = env.poll()

    [row] = env.documents()
    assert (first.kept, first.pending, first.ko) == (1, 1, 0)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error is not None and "cannot connect" in row.last_error

    env.integrator.cfg = live
    second = env.poll()

    assert (second.fetched, second.integrated) == (0, 1)
    [row] = env.documents()
    assert (row.status, row.attempts) == ("integrated", 2)
    assert len(env.dpi.received) == 1


def test_the_same_mail_fetched_twice_is_integrated_once(env: Env) -> None:
    with env.db.transaction() as s:
        add_patient(s, "IPP-1")
    raw = document_mail("<doc-7@cabinet.mssante.fr>")
    env.deposit(raw)
    env.poll()
    env.deposit(raw)  # the relay delivers it again (or \\Seen was lost in a crash)

    again = env.poll()

    assert (again.fetched, again.kept, again.already_kept, again.integrated) == (1, 0, 1, 0)
    assert len(env.dpi.received) == 1
    with env.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(InboundMail)) == 1
    assert [r.status for r in env.documents()] == ["integrated"]


def test_a_mail_without_a_document_is_kept_and_goes_to_the_ko_worklist(env: Env) -> None:
    env.deposit(
        b"From: dr.martin@cabinet.mssante.fr\r\nTo: " + APP.encode() + b"\r\n"
        b"Message-ID: <nodoc@cabinet.mssante.fr>\r\nSubject: Bonjour\r\n\r\nSans piece jointe\r\n"
    )

    summary = env.poll()

    assert (summary.kept, summary.ko) == (1, 1)
    [row] = env.documents()
    assert (row.status, row.error_code) == ("ko", "906")
    assert row.reason == "no IHE_XDM.zip nor CDA document attached"


def _fields(cfg: InboundConfig) -> dict[str, object]:
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}


def _dsn() -> bytes:
    return build_dsn(
        document_mail("<sent-by-pfi@hopital.mssante.fr>"),
        [DsnRecipient("x@y.mssante.fr", "failed", "5.1.1", "550 5.1.1 user unknown")],
        reporting_mta="mx.y.mssante.fr",
        sender="MAILER-DAEMON@y.mssante.fr",
        to=APP,
        date=datetime(2026, 11, 25, tzinfo=UTC),
        message_id="<dsn-1@y.mssante.fr>",
    ).as_bytes()


def test_delivery_reports_are_left_unseen_for_the_outbound_side(env: Env) -> None:
    env.deposit(_dsn())

    summary = env.poll()

    assert (summary.fetched, summary.reports, summary.kept) == (1, 1, 0)
    assert env.documents() == []
    assert "\\Seen" not in env.sim.state.mailboxes[APP.lower()].entries[0].flags


def test_delivery_reports_go_to_the_other_mail_handler_when_given(env: Env) -> None:
    handed: list[FetchedMail] = []
    env.integrator.other_mail = lambda mail: handed.append(mail) is None
    env.deposit(_dsn())

    env.poll()

    assert [m.uid for m in handed] == [1] and env.documents() == []
    assert "\\Seen" in env.sim.state.mailboxes[APP.lower()].entries[0].flags


@pytest.mark.parametrize("close_after_each", [False, True], ids=["kept-open", "closed-each"])
def test_documents_of_one_poll_share_a_connection_to_the_dpi(
    env: Env, close_after_each: bool
) -> None:
    with env.db.transaction() as s:
        add_patient(s, "IPP-1")
    env.dpi.close_after_each = close_after_each
    for n in range(3):
        env.deposit(document_mail(f"<batch-{n}@cabinet.mssante.fr>"))

    summary = env.poll()

    assert (summary.kept, summary.integrated) == (3, 3)
    assert len(env.dpi.received) == 3
    assert env.dpi.connections == (3 if close_after_each else 1)


def test_same_traits_under_another_ins_is_not_a_match(env: Env) -> None:
    with env.db.transaction() as s:
        other = add_patient(s, "IPP-1", ins="290011234567890")
    env.deposit(document_mail("<doc-8@cabinet.mssante.fr>"))

    env.poll()

    [row] = env.documents()
    assert row.status == "ko" and env.dpi.received == []
    assert row.reason == (
        f"INS {INS} unknown; patients matching PAT-TROIS DOMINIQUE born 1979-03-28 sex F "
        f"have another INS: {other} (INS 290011234567890)"
    )
