"""The readable form of a lab or imaging report (PDF) when the sender did not send its own.

A French lab report as a reader expects it: laboratory header, patient, prescriber,
one table per chapter/battery with result, unit, reference range and flag (abnormal
results in bold), comments, then who validated and when. Rendered with reportlab's
standard fonts (no font embedding: fast, and the Latin-1 range covers French names).
The clock is the context's: the same report renders to the same bytes.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from pfi.transforms.cda.context import CdaContext
from pfi.transforms.imaging.model import ImagingReport
from pfi.transforms.lab.model import Battery, LabReport, Observation, Patient, Practitioner

_BASE = ParagraphStyle("base", fontName="Helvetica", fontSize=9, leading=11)
_SMALL = ParagraphStyle("small", parent=_BASE, fontSize=8, leading=10, textColor=colors.grey)
_TITLE = ParagraphStyle("title", parent=_BASE, fontName="Helvetica-Bold", fontSize=14, leading=18)
_H2 = ParagraphStyle(
    "h2",
    parent=_BASE,
    fontName="Helvetica-Bold",
    fontSize=11,
    leading=14,
    spaceBefore=6,
    spaceAfter=3,
)
_RIGHT = ParagraphStyle("right", parent=_BASE, alignment=TA_RIGHT)
_BOLD = ParagraphStyle("bold", parent=_BASE, fontName="Helvetica-Bold")
_NORMAL_FLAGS = frozenset({"", "N", "S"})


def _p(text: str, style: ParagraphStyle = _BASE) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _date(value: str) -> str:
    """HL7 DTM → "JJ/MM/AAAA à HH:MM" (what a French reader expects)."""
    v = value.strip()
    if len(v) < 8 or not v[:8].isdigit():
        return v
    out = f"{v[6:8]}/{v[4:6]}/{v[0:4]}"
    if len(v) >= 12 and v[8:12].isdigit():
        out += f" à {v[8:10]}:{v[10:12]}"
    return out


def _who(p: Practitioner | None) -> str:
    if p is None:
        return "—"
    name = " ".join(x for x in (p.prefix or "Dr", p.given, p.family) if x)
    return f"{name} (RPPS {p.id})" if p.id_type == "RPPS" and p.id else name


def _a4_document(buf: io.BytesIO, title: str, author: str) -> SimpleDocTemplate:
    """An A4 report with 15 mm margins; `invariant` makes the same input give the same
    bytes (no creation date or random id), so a rebuilt document is the same document."""
    return SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=title,
        author=author,
        creator="PFI",
        invariant=1,
    )


def render_lab_report_pdf(report: LabReport, context: CdaContext) -> bytes:
    """A one-to-n page A4 PDF of the report's validated results."""
    from pfi.transforms.cda.cr_bio import chapter_of

    buf = io.BytesIO()
    org = context.organization
    doc = _a4_document(buf, "Compte rendu d'examens biologiques", org.name)
    story: list = [
        _establishment_and_patient(context, report.patient),
        Spacer(1, 4 * mm),
        _p("Compte rendu d'examens biologiques", _TITLE),
    ]
    story.append(
        _p(
            f"Demande {report.placer_group or report.filler_group or '—'} — "
            f"prescripteur : {_who(report.ordering_provider)}"
            + (
                f" — copie à : {', '.join(_who(c) for c in report.copy_to)}"
                if report.copy_to
                else ""
            ),
            _SMALL,
        )
    )
    specimens = report.specimens
    if specimens:
        story.append(
            _p(
                "Prélèvement : "
                + "; ".join(
                    f"{s.type.display or s.type.code if s.type else 'échantillon'}"
                    + (f" le {_date(s.collected_at)}" if s.collected_at else "")
                    for s in specimens
                ),
                _SMALL,
            )
        )
    current_chapter = None
    for battery in report.result_batteries:
        chapter = chapter_of(battery)[1]
        if chapter != current_chapter:
            story.append(_p(chapter.upper(), _H2))
            current_chapter = chapter
        story.append(_results_table(battery))
        for c in battery.comments:
            story.append(_p(c, _SMALL))
    if report.comments:
        story.append(_p("Commentaire", _H2))
        for c in report.comments:
            story.append(_p(c))
    story += [
        Spacer(1, 6 * mm),
        _p(
            f"Résultats validés par {_who(report.validator)} le {_date(report.validated_at)}", _BOLD
        ),
        _p(
            f"Document produit le {context.effective_time:%d/%m/%Y à %H:%M} — version "
            f"{context.ids.version}",
            _SMALL,
        ),
    ]
    if context.ids.version > 1:
        story.append(_p("Ce compte rendu annule et remplace la version précédente.", _BOLD))
    doc.build(story)
    return buf.getvalue()


#: Result table columns: analysis, result, unit, reference range, flags.
_COLUMNS = (70 * mm, 35 * mm, 25 * mm, 35 * mm, 15 * mm)
_CELL_PADDING = 6  # reportlab's default left and right cell padding
_ABNORMAL = colors.HexColor("#FDECEA")


def _cell(text: str, column: int, font: str = "Helvetica", size: float = 9) -> str:
    """A plain-string cell wrapped to its column width.

    Result tables hold most of a report's text: as Paragraphs every cell went through
    reportlab's markup parser and line breaker (~60% of the rendering time); plain
    strings drawn by the table itself, wrapped once here, look the same at a third of
    the cost (bench/cda.py)."""
    width = _COLUMNS[column] - 2 * _CELL_PADDING
    lines: list[str] = []
    for part in text.split("\n"):
        lines += simpleSplit(part, font, size, width) or [""]
    return "\n".join(lines)


def _results_table(battery: Battery) -> Table:
    from pfi.transforms.cda.cr_bio import format_range, format_value

    header = [battery.code.display or battery.code.code, "Résultat", "Unité", "Référence", ""]
    rows = [[_cell(text, i, "Helvetica-Bold") for i, text in enumerate(header)]]
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 9, 11),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 9, 11),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
    ]
    for o in battery.observations:
        row = len(rows)
        abnormal = not set(o.abnormal_flags) <= _NORMAL_FLAGS
        value_font = "Helvetica-Bold" if abnormal else "Helvetica"
        rows.append(
            [
                _cell(_label(o), 0),
                _cell(format_value(o), 1, value_font),
                _cell(o.unit_as_sent or o.unit, 2),
                _cell(format_range(o), 3),
                _cell(", ".join(o.abnormal_flags), 4, value_font),
            ]
        )
        if abnormal:
            style += [
                ("BACKGROUND", (0, row), (-1, row), _ABNORMAL),
                ("FONT", (1, row), (1, row), "Helvetica-Bold", 9, 11),
                ("FONT", (4, row), (4, row), "Helvetica-Bold", 9, 11),
            ]
        for comment in o.comments:
            row = len(rows)
            width = sum(_COLUMNS) - 2 * _CELL_PADDING
            text = "\n".join(simpleSplit(comment, "Helvetica", 8, width) or [""])
            rows.append([text, "", "", "", ""])
            style += [
                ("SPAN", (0, row), (-1, row)),
                ("FONT", (0, row), (-1, row), "Helvetica", 8, 10),
                ("TEXTCOLOR", (0, row), (-1, row), colors.grey),
            ]
    table = Table(rows, colWidths=list(_COLUMNS), repeatRows=1)
    table.setStyle(TableStyle(style))
    return table


def _label(o: Observation) -> str:
    return o.local_code.display or (o.loinc.display if o.loinc else "") or o.local_code.code


_SECTION_TITLES = {
    "indication": "Indication et renseignements cliniques",
    "technique": "Technique",
    "findings": "Résultats",
    "report": "Compte rendu",
    "comparison": "Comparaison avec les examens antérieurs",
    "conclusion": "Conclusion",
    "addendum": "Addendum",
    "comment": "Commentaire",
}


def render_imaging_report_pdf(report: ImagingReport, context: CdaContext) -> bytes:
    """An A4 PDF of an imaging report, as a French radiology report reads.

    Establishment and patient, the exams (name, date, modality, accession number),
    prescriber, then the radiologist's text in the order written (indication, technique,
    findings, comparison, conclusion in bold), and who validated it and when.
    """
    from pfi.transforms.cda.reference_data import modality_display

    buf = io.BytesIO()
    org = context.organization
    doc = _a4_document(buf, "Compte rendu d'imagerie médicale", org.name)
    story: list = [_establishment_and_patient(context, report.patient), Spacer(1, 4 * mm)]
    story.append(_p("Compte rendu d'imagerie médicale", _TITLE))
    for exam in report.validated_exams:
        modality = exam.modality.code if exam.modality else exam.modality_as_sent
        details = [
            f"le {_date(exam.started_at)}" if exam.started_at else "",
            f"modalité {modality_display(modality) or modality}" if modality else "",
            f"n° d'examen {exam.accession_number}" if exam.accession_number else "",
        ]
        story.append(_p(exam.display, _H2))
        line = " — ".join(d for d in details if d)
        if line:
            story.append(_p(line, _SMALL))
    story.append(
        _p(
            f"Demande {report.exams[0].placer_order or '—'} — prescripteur : "
            f"{_who(report.prescriber)}"
            + (
                f" — copie à : {', '.join(_who(c) for c in report.copy_to)}"
                if report.copy_to
                else ""
            ),
            _SMALL,
        )
    )
    several = len(report.validated_exams) > 1
    previous = None
    for section in report.document_sections:
        heading = section.title or _SECTION_TITLES[section.kind.value]
        if several:
            heading = f"{heading} ({report.exams[section.exam].display})"
        if heading != previous:
            story.append(_p(heading, _H2))
            previous = heading
        style = _BOLD if section.kind.value == "conclusion" else _BASE
        story.append(_p(section.text, style))
    story += [
        Spacer(1, 6 * mm),
        _p(
            f"Compte rendu validé par {_who(report.radiologist)} le {_date(report.validated_at)}",
            _BOLD,
        ),
        _p(
            f"Document produit le {context.effective_time:%d/%m/%Y à %H:%M} — version "
            f"{context.ids.version}",
            _SMALL,
        ),
    ]
    if context.ids.version > 1:
        story.append(_p("Ce compte rendu annule et remplace la version précédente.", _BOLD))
    doc.build(story)
    return buf.getvalue()


def _establishment_and_patient(context: CdaContext, p: Patient) -> Table:
    org = context.organization
    addr = org.address
    org_lines = [
        org.name,
        addr.street,
        f"{addr.postal_code} {addr.city}".strip(),
        org.telecom.removeprefix("tel:"),
        f"FINESS {org.finess}",
    ]
    ins = p.ins
    patient_lines = [
        f"{p.birth_family} {p.given}".strip()
        + (f" (nom d'usage {p.used_family})" if p.used_family else ""),
        f"Né(e) le {_date(p.birth_date)} — sexe {p.sex}",
        f"INS {ins.value}" if ins and p.identity_status == "VALI" else "",
        "IPP " + ", ".join(i.value for i in p.local_ids) if p.local_ids else "",
    ]
    header = Table(
        [
            [
                _p("\n".join(x for x in org_lines if x), _BOLD),
                _p("\n".join(x for x in patient_lines if x), _RIGHT),
            ]
        ],
        colWidths=[90 * mm, 90 * mm],
    )
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return header
