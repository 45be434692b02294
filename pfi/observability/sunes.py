"""SUN-ES indicators: the monthly figures a lab reports for the Ségur financing.

The indicator: among CR-BIO documents produced in the month for patients who have a DMP,
the share sent to the DMP (delivered) with a qualified INS and in CDA R2 level 3.

How each term is read from the store (documented because the financing depends on it):
- "produced in the month": document versions (initial or replacement, not withdrawals)
  of type CR-BIO whose `received_at` (the HL7 message's arrival) falls in the month,
  in the reporting time zone;
- "patients who have a DMP": the patient's PAM-FR ZFA-1 (DMP status) is not INEXISTANT
  or FERME; a patient whose DMP status was never sent counts as having one (the DMP
  is created for everyone since Mon espace santé);
- "sent to the DMP": a `dmp` delivery of that version with status delivered;
- "qualified INS": the patient's INS is qualified now (PID-32 VALI with an INS: PFI
  only submits to the DMP with a qualified INS, so a delivered version had one);
- "level 3": a structured body (`structuredBody`), not a `nonXMLBody`.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from pfi.store.models import Delivery, Document, DocumentVersion, Patient

NO_DMP_STATUSES = frozenset({"INEXISTANT", "FERME"})


@dataclass
class SunEsReport:
    month: str
    produced: int = 0  # denominator: CR-BIO versions of patients with a DMP
    sent_qualified_n3: int = 0  # numerator
    not_sent: int = 0
    sent_not_n3: int = 0
    no_dmp: int = 0  # CR-BIO versions of patients without a DMP (excluded)
    volumes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (document type, destination, delivery status) -> versions

    @property
    def ratio(self) -> float | None:
        return self.sent_qualified_n3 / self.produced if self.produced else None


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, got {month!r}") from None
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (
        datetime(first.year, first.month, 1, tzinfo=zone),
        datetime(nxt.year, nxt.month, 1, tzinfo=zone),
    )


def sun_es_report(session: Session, month: str, zone: ZoneInfo) -> SunEsReport:
    start, end = month_bounds(month, zone)
    report = SunEsReport(month)
    versions = session.execute(
        select(
            DocumentVersion.id,
            DocumentVersion.cda,
            Document.document_type,
            Patient.qualified,
            Patient.pam,
        )
        .join(Document, Document.id == DocumentVersion.document_id)
        .outerjoin(Patient, Patient.id == Document.patient_id)
        .where(
            DocumentVersion.received_at >= start,
            DocumentVersion.received_at < end,
            DocumentVersion.action != "DELETION",
        )
    ).all()
    dmp_delivered = set(
        session.scalars(
            select(Delivery.document_version_id).where(
                Delivery.destination == "dmp",
                Delivery.status == "delivered",
                Delivery.document_version_id.in_([v.id for v in versions] or [-1]),
            )
        )
    )
    for v in versions:
        if v.document_type != "CR-BIO":
            continue
        dmp_status = ((v.pam or {}).get("ZFA") or {}).get("ZFA-1", "").upper()
        if dmp_status in NO_DMP_STATUSES:
            report.no_dmp += 1
            continue
        report.produced += 1
        if v.id not in dmp_delivered:
            report.not_sent += 1
        elif is_level_3(v.cda) and v.qualified:
            report.sent_qualified_n3 += 1
        else:
            report.sent_not_n3 += 1
    for doc_type, destination, status, count in session.execute(
        select(Document.document_type, Delivery.destination, Delivery.status, func.count())
        .join(DocumentVersion, DocumentVersion.id == Delivery.document_version_id)
        .join(Document, Document.id == DocumentVersion.document_id)
        .where(and_(DocumentVersion.received_at >= start, DocumentVersion.received_at < end))
        .group_by(Document.document_type, Delivery.destination, Delivery.status)
    ):
        report.volumes[(doc_type, destination, status)] = int(count)
    return report


def is_level_3(cda: bytes | None) -> bool:
    """Structured body (level 3) rather than an embedded unstructured one (level 1)."""
    return (
        bool(cda)
        and b"structuredBody" in cda
        and b"nonXMLBody>" not in cda.split(b"structuredBody", 1)[0]
    )


def to_csv(report: SunEsReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["month", "indicator", "value"])
    rows = [
        ("cr_bio_produced_patients_with_dmp", report.produced),
        ("cr_bio_sent_dmp_qualified_ins_cda_n3", report.sent_qualified_n3),
        ("cr_bio_not_sent_dmp", report.not_sent),
        ("cr_bio_sent_dmp_not_n3_or_not_qualified", report.sent_not_n3),
        ("cr_bio_patients_without_dmp", report.no_dmp),
        (
            "share_sent_dmp_qualified_ins_cda_n3",
            "" if report.ratio is None else f"{report.ratio:.4f}",
        ),
    ]
    for name, value in rows:
        writer.writerow([report.month, name, value])
    writer.writerow([])
    writer.writerow(["month", "document_type", "destination", "status", "versions"])
    for (doc_type, destination, status), count in sorted(report.volumes.items()):
        writer.writerow([report.month, doc_type, destination, status, count])
    return out.getvalue()


def to_html(report: SunEsReport, establishment: str) -> str:
    """A self-contained page (no script, no external asset) with an SVG bar chart."""
    e = html.escape
    share = "–" if report.ratio is None else f"{report.ratio * 100:.1f} %"
    bars = [
        ("Envoyés au DMP, INS qualifiée, CDA N3", report.sent_qualified_n3, "#2e7d32"),
        ("Envoyés, hors N3 ou INS non qualifiée", report.sent_not_n3, "#f9a825"),
        ("Non envoyés au DMP", report.not_sent, "#c62828"),
    ]
    top = max([b[1] for b in bars] + [1])
    svg_rows = []
    for i, (label, value, colour) in enumerate(bars):
        width = int(360 * value / top)
        y = 10 + i * 40
        svg_rows.append(
            f'<text x="0" y="{y + 18}" font-size="13">{e(label)}</text>'
            f'<rect x="280" y="{y}" width="{width}" height="26" fill="{colour}"/>'
            f'<text x="{286 + width}" y="{y + 18}" font-size="13">{value}</text>'
        )
    volume_rows = "".join(
        f"<tr><td>{e(t)}</td><td>{e(d)}</td><td>{e(s)}</td><td>{n}</td></tr>"
        for (t, d, s), n in sorted(report.volumes.items())
    )
    return f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<title>Indicateurs SUN-ES {e(report.month)}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>
<body>
<h1>Indicateurs SUN-ES — {e(report.month)}</h1>
<p>{e(establishment)}</p>
<h2>CR de biologie envoyés au DMP avec INS qualifiée en CDA R2 N3</h2>
<p><strong>{share}</strong> ({report.sent_qualified_n3} / {report.produced} CR-BIO de patients
ayant un DMP; {report.no_dmp} CR-BIO de patients sans DMP exclus)</p>
<svg role="img" aria-label="répartition des CR-BIO" width="720" height="{20 + 40 * len(bars)}"
 xmlns="http://www.w3.org/2000/svg">{"".join(svg_rows)}</svg>
<h2>Volumes par type de document et destination</h2>
<table><tr><th>type</th><th>destination</th><th>statut</th><th>versions</th></tr>
{volume_rows}</table>
</body></html>
"""
