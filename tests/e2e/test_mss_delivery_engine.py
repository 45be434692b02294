"""The engine as a subprocess mailing lab reports through the MSSanté simulator (in this
process, plain SMTP and IMAP on loopback), with its real broker and SQLite store: the
prescriber named by RPPS and found in the imported annuaire, and the patient with a
qualified INS, get their mail with a valid IHE_XDM.zip; a non-qualified INS mails no
patient; an announcement hold keeps the patient's mail until an operator releases it; an
unknown address and an opposed patient end as refused deliveries with their reason; a
withdrawal is announced by a mail whose XDM says action D."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from pfi.simulators.mssante import MssSimulator
from tests.support.dmp_engine import ORU, identify_patient, send, wait_for
from tests.support.engine import REPO, EngineProcess
from tests.support.mss_engine import (
    PATIENT,
    PRESCRIBER,
    import_annuaire,
    mail_to,
    pfi_cli,
    wait_for_mails,
    xdm_of,
)

pytestmark = pytest.mark.slow

APP, APP_PASSWORD = "pfi@hopital.mssante.fr", "pfi-imap"
CANCELLATION = (REPO / "tests/fixtures/hl7/oru/09_cancellation.hl7").read_bytes()
LAB_TO_MAIL = """
routes:
  - name: lab reports to the prescriber and the patient
    from: {source: SGL, document: CR-BIO}
    to: [mss_prescriber, mss_patient]
"""
LAB_HELD_FOR_ANNOUNCEMENT = """
routes:
  - name: lab reports, the patient's copy after the announcement
    from: {source: SGL, document: CR-BIO}
    hold: announcement
    to: [mss_prescriber, mss_patient]
"""


@pytest.fixture()
def sim() -> Iterator[MssSimulator]:
    with MssSimulator(
        smtp_port=0, imap_port=0, http_port=0, mailboxes={APP: APP_PASSWORD}
    ) as simulator:
        yield simulator


def mss_engine(tmp_path: Path, sim: MssSimulator, routes: str = LAB_TO_MAIL) -> EngineProcess:
    """An engine mailing through `sim`, the fixtures' annuaire imported, not started."""
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(routes, encoding="utf-8")
    engine = EngineProcess(
        tmp_path / "engine",
        config={
            "routing": {"routes_file": str(routes_file)},
            "documents": {"loinc_dir": str(REPO / "config/loinc")},
            "mssante": {
                "enabled": True,
                "application_mailbox": APP,
                "organisation_name": "CH de test",
                "smtp": {"host": sim.host, "port": sim.smtp_port, "tls_mode": "none"},
                "imap": {
                    "host": sim.host,
                    "port": sim.imap_port,
                    "tls_mode": "none",
                    "username": APP,
                    "password": APP_PASSWORD,
                    "poll_interval_s": 0.5,
                },
                "xdm": {"source_id": "1.2.250.1.999.1.1"},
            },
            "delivery": {"backoff_base_s": 0.5, "backoff_max_s": 2, "retry_poll_s": 0.2},
        },
    )
    import_annuaire(engine)
    return engine


def body_of(sim: MssSimulator, address: str, index: int = 0) -> str:
    raw = sim.messages_for(address)[index].raw
    msg = message_from_bytes(raw, policy=policy.default)
    text = str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    return text.replace("\r\n", "\n")


def deliveries(engine: EngineProcess, *args: str) -> list[dict[str, Any]]:
    """`pfi deliveries list --json ARGS` against the engine's store."""
    out = pfi_cli(engine, "deliveries", "list", "--json", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def assert_one_valid_report(mail: dict[str, Any], to: str) -> dict[str, Any]:
    assert mail["recipient"] == to and mail["mail_from"] == APP
    assert mail["subject"].startswith("XDM/1.0/DDM+"), mail["subject"]
    names = [a["filename"] for a in mail["attachments"]]
    assert "IHE_XDM.zip" in names, names
    xdm = xdm_of(mail)
    assert xdm["problems"] == [], xdm["problems"]
    assert "IHE_XDM/SUBSET01/METADATA.XML" in xdm["files"], xdm["files"]
    (document,) = xdm["documents"]
    assert document["mime_type"] == "text/xml" and document["size"] > 0
    return document


def test_validated_lab_report_mails_the_prescriber_and_the_patient_with_a_valid_xdm(
    tmp_path: Path, sim: MssSimulator
) -> None:
    engine = mss_engine(tmp_path, sim)
    engine.start()
    try:
        identify_patient(engine)
        send(engine, [ORU])
        wait_for_mails(engine, sim.http_url, PRESCRIBER, 1, 60)
        wait_for_mails(engine, sim.http_url, PATIENT, 1, 30)

        (pro,) = mail_to(sim.http_url, PRESCRIBER)
        (pat,) = mail_to(sim.http_url, PATIENT)
        pro_doc = assert_one_valid_report(pro, PRESCRIBER)
        pat_doc = assert_one_valid_report(pat, PATIENT)
        assert pro_doc["action"] == "" and pat_doc["action"] == ""
        assert pro_doc["unique_id"] == pat_doc["unique_id"]  # one document, two audiences
        assert "279035121518989" in pat_doc["patient_id"]
        assert pro["headers"]["To"] == [PRESCRIBER] and pat["headers"]["To"] == [PATIENT]
        # the professional and the patient versions: each its own body
        assert body_of(sim, PRESCRIBER).startswith("Bonjour,\n\nVeuillez trouver ci-joint")
        assert body_of(sim, PATIENT).startswith("Bonjour,\n\nVotre document")
        # (CR-BIO also goes to the DMP by default; no DMP here, so that row waits)
        mail_rows = [d for d in deliveries(engine) if d["destination"] != "dmp"]
        assert sorted((d["destination"], d["status"]) for d in mail_rows) == [
            ("mss_patient", "delivered"),
            ("mss_pro", "delivered"),
        ], mail_rows
    finally:
        assert engine.stop() == 0


def test_without_a_qualified_ins_only_the_prescriber_is_mailed(
    tmp_path: Path, sim: MssSimulator
) -> None:
    engine = mss_engine(tmp_path, sim)
    engine.start()
    try:
        identify_patient(engine, status="PROV")
        send(engine, [ORU])
        wait_for_mails(engine, sim.http_url, PRESCRIBER, 1, 60)
        assert_one_valid_report(mail_to(sim.http_url, PRESCRIBER)[0], PRESCRIBER)
        time.sleep(3)  # a patient mail on its way would have left with the prescriber's
        assert mail_to(sim.http_url, PATIENT) == []
        assert [d["destination"] for d in deliveries(engine, "--status", "delivered")] == [
            "mss_pro"
        ]
    finally:
        assert engine.stop() == 0


def test_announcement_hold_keeps_the_patient_mail_until_an_operator_releases_it(
    tmp_path: Path, sim: MssSimulator
) -> None:
    engine = mss_engine(tmp_path, sim, LAB_HELD_FOR_ANNOUNCEMENT)
    engine.start()
    try:
        identify_patient(engine)
        send(engine, [ORU])
        wait_for_mails(engine, sim.http_url, PRESCRIBER, 1, 60)
        time.sleep(3)
        assert mail_to(sim.http_url, PATIENT) == []
        holds = [
            json.loads(line)
            for line in pfi_cli(engine, "holds", "list", "--open", "--json").splitlines()
            if line.strip()
        ]
        # one announcement hold per row it concerns: the patient's mail, and the DMP copy
        # that left invisible to the patient; releasing one ends the announcement
        announcement = [h for h in holds if h["kind"] == "announcement"]
        (hold,) = [h for h in announcement if h["destination"] == "mss_patient"]

        pfi_cli(engine, "holds", "release", str(hold["id"]), "--reason", "annonce faite")
        wait_for_mails(engine, sim.http_url, PATIENT, 1, 60)
        assert_one_valid_report(mail_to(sim.http_url, PATIENT)[0], PATIENT)
        assert len(mail_to(sim.http_url, PRESCRIBER)) == 1  # the release sends nothing twice
    finally:
        assert engine.stop() == 0


@pytest.mark.parametrize("unknown_mode", ["reject", "bounce"])
def test_unknown_address_and_opposed_patient_end_as_refused_deliveries_with_the_reason(
    tmp_path: Path, sim: MssSimulator, unknown_mode: str
) -> None:
    """reject: 550 at RCPT, refused by the sender; bounce: accepted, then a DSN in the
    application mailbox that the engine's readback reads over IMAP. The opposed patient's
    mailbox answers with an opposition auto-reply, read back the same way."""
    sim.configure(unknown=[PRESCRIBER], opposed=[PATIENT], unknown_mode=unknown_mode)  # type: ignore[arg-type]
    engine = mss_engine(tmp_path, sim)
    engine.start()
    try:
        identify_patient(engine)
        send(engine, [ORU])
        assert wait_for(lambda: len(deliveries(engine, "--status", "refused")) == 2, 90), (
            engine.logs()[-4000:]
        )
        refused = {d["destination"]: d for d in deliveries(engine, "--status", "refused")}
        assert refused["mss_pro"]["recipient"] == PRESCRIBER
        assert refused["mss_patient"]["recipient"] == PATIENT
        pro_reason = str(refused["mss_pro"]["refusal_reason"])
        if unknown_mode == "reject":
            assert "550" in pro_reason, pro_reason
        else:
            assert "5.1.1" in pro_reason, pro_reason
        assert "oppos" in str(refused["mss_patient"]["refusal_reason"]).lower(), refused
        text = pfi_cli(engine, "deliveries", "list", "--status", "refused")
        assert PRESCRIBER in text and PATIENT in text
    finally:
        assert engine.stop() == 0


def test_withdrawal_is_announced_by_a_mail_whose_xdm_says_action_d(
    tmp_path: Path, sim: MssSimulator
) -> None:
    engine = mss_engine(tmp_path, sim)
    engine.start()
    try:
        identify_patient(engine)
        send(engine, [ORU])
        wait_for_mails(engine, sim.http_url, PRESCRIBER, 1, 60)
        send(engine, [CANCELLATION])
        wait_for_mails(engine, sim.http_url, PRESCRIBER, 2, 60)
        first, withdrawal = mail_to(sim.http_url, PRESCRIBER)
        created = assert_one_valid_report(first, PRESCRIBER)
        deleted = assert_one_valid_report(withdrawal, PRESCRIBER)
        assert deleted["action"] == "D" and created["action"] == ""
        assert deleted["unique_id"] == created["unique_id"]  # the withdrawn document itself
        assert "supprim" in body_of(sim, PRESCRIBER, 1) or "retir" in body_of(sim, PRESCRIBER, 1)
        wait_for_mails(engine, sim.http_url, PATIENT, 2, 30)
        assert xdm_of(mail_to(sim.http_url, PATIENT)[1])["documents"][0]["action"] == "D"
    finally:
        assert engine.stop() == 0
