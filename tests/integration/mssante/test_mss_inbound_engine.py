"""The engine polls the application mailbox by itself when `mssante.inbound` is set, and
/metrics shows the outcomes and the KO worklist's size."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pfi.simulators.mssante import MssSimulator
from pfi.store.models import InboundDocumentRow
from tests.support.databases import sqlite_url
from tests.support.dpi import FakeDpi
from tests.support.inprocess import RunningEngine, engine_settings
from tests.support.mss import APP, APP_PASSWORD
from tests.support.mss_inbound import add_patient, cda, document_mail, inbound_settings

pytestmark = pytest.mark.slow


def test_engine_integrates_mailbox_documents_and_exports_inbound_metrics(tmp_path: Path) -> None:
    with (
        MssSimulator(smtp_port=0, imap_port=0, http_port=0, mailboxes={APP: APP_PASSWORD}) as sim,
        FakeDpi() as dpi,
    ):
        settings = engine_settings(tmp_path, sqlite_url(tmp_path))
        inbound = inbound_settings(sim.imap_port, dpi.port)
        assert inbound.mssante is not None
        inbound.mssante.imap.poll_interval_s = 0.2
        settings.mssante = inbound.mssante
        with RunningEngine(settings) as running:
            assert running.engine is not None and running.engine.inbound_runner is not None
            db = running.engine.db
            with db.transaction() as s:
                add_patient(s, "IPP-1")
            sim.inject(APP, document_mail("<engine-1@cabinet.mssante.fr>"))
            sim.inject(APP, document_mail("<engine-2@cabinet.mssante.fr>", cda_bytes=cda("1" * 15)))

            def statuses() -> list[str]:
                with db.reader() as s:
                    return list(
                        s.scalars(select(InboundDocumentRow.status).order_by(InboundDocumentRow.id))
                    )

            deadline = time.monotonic() + 20
            while statuses() != ["integrated", "ko"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert statuses() == ["integrated", "ko"]
            assert len(dpi.received) == 1
            scrape = httpx.get(f"http://127.0.0.1:{settings.http.port}/metrics", timeout=10).text
    assert "pfi_inbound_ko_documents 1.0" in scrape
    assert "pfi_inbound_pending_documents 0.0" in scrape
    assert 'pfi_inbound_documents_total{outcome="integrated"}' in scrape
    assert 'pfi_inbound_documents_total{outcome="ko"}' in scrape
