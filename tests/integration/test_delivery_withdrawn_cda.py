"""A withdrawal has no CDA of its own: the delivery stage's job for a mail carries the
CDA it withdraws (the latest earlier version's, for the XDM action D), the DMP's job none
(the DMP deletes by entry id). On SQLite and PostgreSQL, with the real router's rows."""

from __future__ import annotations

from pathlib import Path

from pfi.delivery.jobs import Request, plan_deliveries
from pfi.store import Database
from pfi.store.models import DocumentVersion
from tests.support.deliveries import lab_router, record_outcome, routed_report

V1_CDA = b"<ClinicalDocument><id root='v1'/></ClinicalDocument>"
V2_CDA = b"<ClinicalDocument><id root='v2'/></ClinicalDocument>"


def _set_cda(db: Database, version_id: int, cda: bytes) -> None:
    with db.transaction() as s:
        row = s.get(DocumentVersion, version_id)
        assert row is not None
        row.cda = cda


def _deliver(db: Database, ids: dict[str, int]) -> None:
    for destination in ("dmp", "mss_pro"):
        record_outcome(db, ids[destination], "delivered")


def test_withdrawal_mail_job_carries_the_latest_withdrawn_cda_and_the_dmp_job_none(
    db: Database, tmp_path: Path
) -> None:
    router = lab_router(tmp_path)
    first = routed_report(db, router, "WD-1")
    _set_cda(db, first["version"], V1_CDA)
    _deliver(db, first)
    second = routed_report(db, router, "WD-1", version=2, action="REPLACEMENT")
    _set_cda(db, second["version"], V2_CDA)
    _deliver(db, second)
    withdrawal = routed_report(db, router, "WD-1", version=3, action="DELETION")

    with db.reader() as s:
        plans = plan_deliveries(s, [Request(withdrawal["mss_pro"]), Request(withdrawal["dmp"])])
    mail, dmp = plans[withdrawal["mss_pro"]], plans[withdrawal["dmp"]]
    assert mail.job is not None and dmp.job is not None, (mail, dmp)
    assert mail.job.operation == dmp.job.operation == "delete"
    assert mail.job.document.action == "DELETION" and mail.job.document.version == 3
    assert mail.job.document.cda == V2_CDA  # the version it withdraws, not the first
    assert dmp.job.document.cda is None


def test_a_new_version_job_keeps_its_own_cda(db: Database, tmp_path: Path) -> None:
    router = lab_router(tmp_path)
    first = routed_report(db, router, "WD-2")
    _set_cda(db, first["version"], V1_CDA)
    _deliver(db, first)
    second = routed_report(db, router, "WD-2", version=2, action="REPLACEMENT")
    _set_cda(db, second["version"], V2_CDA)

    with db.reader() as s:
        plan = plan_deliveries(s, [Request(second["mss_pro"])])[second["mss_pro"]]
    assert plan.job is not None and plan.job.document.cda == V2_CDA
