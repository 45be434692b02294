"""SUN-ES indicators computed from the store, and the `pfi report sun-es` command."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from pfi.observability.sunes import sun_es_report
from pfi.store import Database
from pfi.store.models import Delivery, Document, DocumentVersion, Patient

N3 = b"<ClinicalDocument><component><structuredBody/></component></ClinicalDocument>"
N1 = b"<ClinicalDocument><component><nonXMLBody><text/></nonXMLBody></component></ClinicalDocument>"
PARIS = ZoneInfo("Europe/Paris")


def seed(db: Database) -> None:
    at = datetime(2026, 10, 15, 10, tzinfo=UTC)
    with db.transaction() as s:
        qualified = Patient(ins="1", qualified=True, pam={"ZFA": {"ZFA-1": "ACTIF"}})
        unqualified = Patient(qualified=False)
        no_dmp = Patient(ins="2", qualified=True, pam={"ZFA": {"ZFA-1": "INEXISTANT"}})
        s.add_all([qualified, unqualified, no_dmp])
        s.flush()

        def version(
            n: int,
            patient: Patient,
            doc_type: str,
            cda: bytes,
            when: datetime,
            dmp_status: str | None,
            action: str = "INITIAL",
        ) -> None:
            doc = Document(
                set_id=f"set-{n}", document_type=doc_type, source="SGL", patient_id=patient.id
            )
            s.add(doc)
            s.flush()
            v = DocumentVersion(
                document_id=doc.id,
                version=1,
                action=action,
                status="valid",
                way="built",
                cda=cda,
                received_at=when,
            )
            s.add(v)
            s.flush()
            if dmp_status:
                s.add(Delivery(document_version_id=v.id, destination="dmp", status=dmp_status))
            s.add(
                Delivery(
                    document_version_id=v.id,
                    destination="mss_pro",
                    recipient="dr@x.mssante.fr",
                    status="delivered",
                )
            )

        version(1, qualified, "CR-BIO", N3, at, "delivered")  # counts in the numerator
        version(2, qualified, "CR-BIO", N3, at, "delivered")
        version(3, qualified, "CR-BIO", N1, at, "delivered")  # sent, but level 1
        version(4, unqualified, "CR-BIO", N3, at, "held")  # not sent (INS not qualified)
        version(5, no_dmp, "CR-BIO", N3, at, None)  # excluded: no DMP
        version(6, qualified, "CR-IMG", N3, at, "delivered")  # not a CR-BIO
        version(
            7, qualified, "CR-BIO", N3, datetime(2026, 9, 30, 21, 59, tzinfo=UTC), "delivered"
        )  # 23:59 in Paris on 30 September: previous month
        version(8, qualified, "CR-BIO", None, at, "delivered", action="DELETION")


def test_indicator_counts_cr_bio_sent_to_the_dmp_with_qualified_ins_in_n3(db: Database):
    seed(db)
    with db.reader() as session:
        report = sun_es_report(session, "2026-10", PARIS)
    assert (report.produced, report.sent_qualified_n3) == (4, 2)
    assert (report.not_sent, report.sent_not_n3, report.no_dmp) == (1, 1, 1)
    assert report.ratio == 0.5
    assert report.volumes[("CR-BIO", "dmp", "delivered")] == 4  # 1, 2, 3 and the deletion
    assert report.volumes[("CR-BIO", "dmp", "held")] == 1
    assert report.volumes[("CR-IMG", "mss_pro", "delivered")] == 1


def test_report_command_writes_csv_and_an_html_page_with_a_chart(db: Database, tmp_path: Path):
    seed(db)
    config = tmp_path / "pfi.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": db.url}}))
    base = [
        sys.executable,
        "-m",
        "pfi.cli",
        "report",
        "sun-es",
        "--month",
        "2026-10",
        "--config",
        str(config),
    ]
    csv_out = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert csv_out.returncode == 0, csv_out.stderr
    assert "2026-10,share_sent_dmp_qualified_ins_cda_n3,0.5000" in csv_out.stdout
    html_out = subprocess.run(
        [*base, "--format", "html"], capture_output=True, text=True, timeout=60
    )
    assert html_out.returncode == 0, html_out.stderr
    assert "<svg" in html_out.stdout and "50.0 %" in html_out.stdout
    bad = subprocess.run(
        [*base[:-2], "--config", str(config), "--month", "2026-13"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
