"""The MSSanté DeliverySender against the strict simulator over STARTTLS with a client
certificate and SMTP authentication on 127.0.0.1: what arrives, and how the relay's
answers become delivered / refused / transient results."""

from __future__ import annotations

import io
import socket
import zipfile
from collections.abc import Iterator
from email import message_from_bytes, policy

import httpx
import pytest

from pfi.adapters.mssante.sender import MssDeliverySender, MssSenderConfigError, mss_sender_of
from pfi.config import Settings
from pfi.config.mssante import MssanteSettings
from pfi.delivery.sender import DeliverySender, SendStatus
from pfi.simulators.mssante import MssSimulator
from tests.support import dmp_pki
from tests.support.mss import APP, INS, PATIENT_ADDRESS
from tests.support.mss_jobs import PDF, job, mss_settings, patient_job

from .conftest import SMTP_PASSWORD, SMTP_USER, tls_simulator

DR = "dr.house@ch-b.mssante.fr"
UNKNOWN = "inconnu@ch-b.mssante.fr"


@pytest.fixture(scope="module")
def sim(pki: dmp_pki.TestPki) -> Iterator[MssSimulator]:
    with tls_simulator(pki) as simulator:
        yield simulator


def settings_for(sim: MssSimulator, pki: dmp_pki.TestPki, **extra: object) -> MssanteSettings:
    return mss_settings(
        host="127.0.0.1",
        port=sim.smtp_port,
        tls_mode="starttls",
        tls={"cafile": pki.ca_cert, "certfile": pki.client_cert, "keyfile": pki.client_key},
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        timeout_s=5,
        **extra,
    )


@pytest.fixture
def sender(mss: MssSimulator, pki: dmp_pki.TestPki) -> Iterator[MssDeliverySender]:
    s = MssDeliverySender(settings_for(mss, pki))
    yield s
    s.close()


def _stored(sim: MssSimulator, address: str):
    (stored,) = sim.messages_for(address)
    return message_from_bytes(stored.raw, policy=policy.default), stored


def _xdm_files(msg) -> dict[str, bytes]:
    (part,) = [p for p in msg.iter_attachments() if p.get_filename() == "IHE_XDM.zip"]
    archive = zipfile.ZipFile(io.BytesIO(part.get_payload(decode=True)))
    return {n: archive.read(n) for n in archive.namelist()}


def test_report_reaches_the_prescriber_with_subject_xdm_pdf_and_headers(mss, sender):
    contract: DeliverySender = sender  # the delivery stage's view of it (type-checked)
    assert contract.destinations == frozenset({"mss_pro", "mss_patient"})
    result = sender.send(
        job(DR, read=True, reply_to="secretariat@ch-a.mssante.fr", body="Bien à vous")
    )
    assert result.status is SendStatus.DELIVERED, result
    msg, stored = _stored(mss, DR)
    assert result.external_id == str(msg["Message-ID"]) and result.external_id.endswith(
        "@hopital.mssante.fr>"
    )
    assert stored.tls and stored.authenticated_as == SMTP_USER
    assert stored.mail_from == APP
    assert str(msg["Subject"]) == "XDM/1.0/DDM+CR de biologie PAT-TROIS DOMINIQUE 28/03/1979"
    assert msg["From"].addresses[0].addr_spec == APP
    assert str(msg["Disposition-Notification-To"]) == APP
    assert str(msg["Reply-To"]) == "secretariat@ch-a.mssante.fr"
    assert msg["X-MSS-MES"] is None
    assert msg.get_body(("plain",)).get_content().startswith("Bien à vous")
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert names == ["IHE_XDM.zip", "20240115_CR_de_biologie_PAT-TROIS_DOMINIQUE.pdf"]
    pdf = next(p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf")
    assert pdf.get_payload(decode=True) == PDF
    files = _xdm_files(msg)
    assert set(files) == {
        "INDEX.HTM",
        "README.TXT",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "IHE_XDM/SUBSET01/DOC0001.XML",
    }
    assert b"<ClinicalDocument" in files["IHE_XDM/SUBSET01/DOC0001.XML"]
    assert b'name="action"' not in files["IHE_XDM/SUBSET01/METADATA.XML"]
    assert httpx.get(f"{mss.http_url}/_sim/rejected").json() == []


def test_patient_mail_carries_no_reply_and_a_replacement_carries_xdm_action_c(mss, sender):
    result = sender.send(patient_job(role="patient", no_reply=True, operation="replace"))
    assert result.status is SendStatus.DELIVERED, result
    msg, _ = _stored(mss, PATIENT_ADDRESS)
    assert str(msg["X-MSS-MES"]) == "FIN"
    assert msg["Disposition-Notification-To"] is None
    assert msg.get_body(("plain",)).get_content().startswith("Ce document « CR de biologie »")
    metadata = _xdm_files(msg)["IHE_XDM/SUBSET01/METADATA.XML"]
    assert b'<rim:Slot name="action"><rim:ValueList><rim:Value>C</rim:Value>' in metadata
    assert INS.encode() in metadata


def test_a_withdrawal_carries_xdm_action_d_and_the_deletion_notice(mss, sender):
    result = sender.send(job(DR, operation="delete", pdf=None))
    assert result.status is SendStatus.DELIVERED, result
    msg, _ = _stored(mss, DR)
    assert (
        msg.get_body(("plain",))
        .get_content()
        .startswith("Le document « CR de biologie » précédemment transmis a été retiré")
    )
    assert [p.get_filename() for p in msg.iter_attachments()] == ["IHE_XDM.zip"]
    metadata = _xdm_files(msg)["IHE_XDM/SUBSET01/METADATA.XML"]
    assert b'<rim:Slot name="action"><rim:ValueList><rim:Value>D</rim:Value>' in metadata


def test_the_same_delivery_retried_keeps_its_message_id(mss, sender):
    first = sender.send(job(DR, delivery_id=7))
    again = sender.send(job(DR, delivery_id=7))
    other = sender.send(job(DR, delivery_id=8))
    assert first.external_id == again.external_id != other.external_id
    assert mss.state.smtp_connections == 1  # one connection for the three mails


def test_unknown_address_refused_at_rcpt_is_refused_with_the_relays_reason(mss, sender):
    mss.configure(unknown=[UNKNOWN], unknown_mode="reject")
    result = sender.send(job(UNKNOWN))
    assert result.status is SendStatus.REFUSED
    assert result.reason == (
        f"550 5.1.1 <{UNKNOWN}>: Recipient address rejected: User unknown in the MSSante directory"
    )
    assert result.detail["smtp_status"] == "5.1.1"
    assert mss.messages_for(UNKNOWN) == []


def test_a_patient_address_of_another_patient_is_not_sent(mss, sender):
    result = sender.send(job("2790351215000@patient.mssante.fr", destination="mss_patient"))
    assert result.status is SendStatus.REFUSED
    assert result.reason.startswith("not sent: patient address 2790351215000@patient")
    assert mss.state.smtp_connections == 0


def test_a_withdrawal_without_the_cda_is_refused_before_any_connection(mss, sender):
    result = sender.send(job(DR, operation="delete", with_cda=False))
    assert result.status is SendStatus.REFUSED and "carries no CDA" in result.reason
    assert mss.state.smtp_connections == 0


def test_relay_down_is_transient(pki):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = MssDeliverySender(
        mss_settings(host="127.0.0.1", port=port, tls_mode="starttls", timeout_s=2)
    )
    try:
        result = sender.send(job(DR))
    finally:
        sender.close()
    assert result.status is SendStatus.TRANSIENT
    assert "ConnectionRefusedError" in result.reason


def test_a_sender_without_an_xds_source_id_is_a_configuration_error():
    with pytest.raises(MssSenderConfigError, match=r"mssante\.xdm\.source_id"):
        MssDeliverySender(MssanteSettings())
    assert MssDeliverySender(MssanteSettings(), source_id="1.2.3").source_id == "1.2.3"


def test_the_engine_gets_a_sender_only_for_an_enabled_mssante_section():
    settings = Settings()
    assert mss_sender_of(settings) is None
    settings.mssante = MssanteSettings(enabled=False, xdm={"source_id": "1.2.3"})
    assert mss_sender_of(settings) is None
    settings.mssante = MssanteSettings(enabled=True, xdm={"source_id": "1.2.3"})
    sender = mss_sender_of(settings)
    assert sender is not None and sender.destinations == {"mss_pro", "mss_patient"}
    sender.close()
