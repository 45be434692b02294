"""What an OBX of a RIS message is, from its OBX-3: report text of which section, a DICOM
UID, the modality or the anatomical location.

RIS vendors label their OBX three ways, and all three are recognised:
- LOINC report-section codes (18782-3, 19005-8, 55111-9...), as in HL7 France RIS ORU;
- DICOM (DCM) codes: the report headings of CID 7001 (121060 History ... 121077
  Conclusion), 121139 Modality, 123014 Target Region, 110180 Study Instance UID,
  112002 Series Instance UID, 110181 SOP Class UID;
- IHE RAD-28 (Structured Report Export) names in OBX-3.2 with an empty OBX-3.1
  ("^Study Instance UID", "^SR Text"), and French/English heading words used as local
  codes or labels ("CONCLUSION", "TECHNIQUE", "RESULTATS").
An OBX-3 none of these recognise is report text the sender did not divide (REPORT).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from functools import lru_cache

from pfi.transforms.imaging.model import DCM_NAMES, SectionKind
from pfi.transforms.lab.model import Coded


class ObxRole(StrEnum):
    """What an OBX carries when it is not report text."""

    STUDY_UID = "study_uid"
    SERIES_UID = "series_uid"
    SOP_INSTANCE_UID = "sop_instance_uid"
    SOP_CLASS_UID = "sop_class_uid"
    SR_INSTANCE_UID = "sr_instance_uid"  # the RIS's own DICOM SR: not part of the CDA
    MODALITY = "modality"
    BODY_SITE = "body_site"


_LOINC_SECTIONS: dict[str, SectionKind] = {
    "18785-6": SectionKind.INDICATION,  # Radiology Reason for study
    "55752-0": SectionKind.INDICATION,  # Clinical information
    "55115-0": SectionKind.INDICATION,  # Request
    "59768-2": SectionKind.INDICATION,  # Procedure indications
    "11329-0": SectionKind.INDICATION,  # History general
    "55111-9": SectionKind.TECHNIQUE,  # Current imaging procedure descriptions
    "18782-3": SectionKind.FINDINGS,  # Radiology Study observation
    "59776-5": SectionKind.FINDINGS,  # Procedure findings
    "18834-2": SectionKind.COMPARISON,  # Radiology Comparison study
    "19005-8": SectionKind.CONCLUSION,  # Radiology Impression
    "55110-1": SectionKind.CONCLUSION,  # Conclusions
    "55107-7": SectionKind.ADDENDUM,  # Addendum
    "18748-4": SectionKind.REPORT,  # Diagnostic imaging study (the whole report)
    "48767-8": SectionKind.COMMENT,  # Annotation comment
}
_DCM_SECTIONS: dict[str, SectionKind] = {
    "121060": SectionKind.INDICATION,  # History
    "121062": SectionKind.INDICATION,  # Request
    "121109": SectionKind.INDICATION,  # Indications for Procedure
    "121064": SectionKind.TECHNIQUE,  # Current Procedure Descriptions
    "121065": SectionKind.TECHNIQUE,  # Procedure Description
    "121070": SectionKind.FINDINGS,  # Findings
    "121071": SectionKind.FINDINGS,  # Finding
    "121072": SectionKind.CONCLUSION,  # Impressions
    "121073": SectionKind.CONCLUSION,  # Impression
    "121076": SectionKind.CONCLUSION,  # Conclusions
    "121077": SectionKind.CONCLUSION,  # Conclusion
    "121078": SectionKind.ADDENDUM,  # Addenda
    "121079": SectionKind.ADDENDUM,  # Addendum
    "121106": SectionKind.COMMENT,  # Comment
}
_DCM_ROLES: dict[str, ObxRole] = {
    "110180": ObxRole.STUDY_UID,
    "112002": ObxRole.SERIES_UID,
    "110181": ObxRole.SOP_CLASS_UID,
    "121139": ObxRole.MODALITY,
    "123014": ObxRole.BODY_SITE,  # Target Region
}
_LOINC_ROLES: dict[str, ObxRole] = {"39111-0": ObxRole.BODY_SITE}  # Body site
_NAME_ROLES: dict[str, ObxRole] = {
    "STUDY INSTANCE UID": ObxRole.STUDY_UID,
    "SERIES INSTANCE UID": ObxRole.SERIES_UID,
    "SOP INSTANCE UID": ObxRole.SOP_INSTANCE_UID,
    "SOP CLASS UID": ObxRole.SOP_CLASS_UID,
    "SR INSTANCE UID": ObxRole.SR_INSTANCE_UID,
    "MODALITY": ObxRole.MODALITY,
    "MODALITE": ObxRole.MODALITY,
    "BODY SITE": ObxRole.BODY_SITE,
    "TARGET REGION": ObxRole.BODY_SITE,
    "LOCALISATION ANATOMIQUE": ObxRole.BODY_SITE,
}
#: Heading words (upper case, no accents) → section, for labels and for headings written
#: inside undivided report text ("CONCLUSION : ..."). Longest first when matching.
HEADINGS: dict[str, SectionKind] = {
    "RENSEIGNEMENTS CLINIQUES": SectionKind.INDICATION,
    "INDICATIONS": SectionKind.INDICATION,
    "INDICATION": SectionKind.INDICATION,
    "MOTIF DE L'EXAMEN": SectionKind.INDICATION,
    "MOTIF": SectionKind.INDICATION,
    "CLINICAL INFORMATION": SectionKind.INDICATION,
    "HISTORY": SectionKind.INDICATION,
    "TECHNIQUE": SectionKind.TECHNIQUE,
    "PROTOCOLE": SectionKind.TECHNIQUE,
    "RESULTATS": SectionKind.FINDINGS,
    "RESULTAT": SectionKind.FINDINGS,
    "FINDINGS": SectionKind.FINDINGS,
    "COMPARAISON": SectionKind.COMPARISON,
    "COMPARISON": SectionKind.COMPARISON,
    "CONCLUSIONS": SectionKind.CONCLUSION,
    "CONCLUSION": SectionKind.CONCLUSION,
    "IMPRESSION": SectionKind.CONCLUSION,
    "SYNTHESE": SectionKind.CONCLUSION,
    "ADDENDUM": SectionKind.ADDENDUM,
    "COMMENTAIRE": SectionKind.COMMENT,
    "SR TEXT": SectionKind.REPORT,
}
_HEADING_LINE = re.compile(
    r"^\s*(?P<word>"
    + "|".join(re.escape(h) for h in sorted(HEADINGS, key=len, reverse=True))
    + r")\s*(?::\s*(?P<rest>.*)|\s*$)",
)


@lru_cache(maxsize=4096)
def normalized(label: str) -> str:
    """Upper case without accents or surrounding punctuation: "Résultats :" → "RESULTATS"."""
    decomposed = unicodedata.normalize("NFKD", label)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.upper().replace("_", " ").split()).strip(" :.-")


def obx_role(code: Coded) -> ObxRole | None:
    """The non-text meaning of an OBX-3 (UID, modality, body site), None for report text."""
    system = code.system.upper()
    if system in DCM_NAMES and code.code in _DCM_ROLES:
        return _DCM_ROLES[code.code]
    if code.is_loinc and code.code in _LOINC_ROLES:
        return _LOINC_ROLES[code.code]
    return _NAME_ROLES.get(normalized(code.display)) or _NAME_ROLES.get(normalized(code.code))


def section_kind(code: Coded) -> SectionKind:
    """The report section an OBX-3 announces; REPORT when it says nothing recognisable."""
    if code.is_loinc and code.code in _LOINC_SECTIONS:
        return _LOINC_SECTIONS[code.code]
    if code.system.upper() in DCM_NAMES and code.code in _DCM_SECTIONS:
        return _DCM_SECTIONS[code.code]
    for label in (code.display, code.code):
        kind = HEADINGS.get(normalized(label))
        if kind is not None:
            return kind
    return SectionKind.REPORT


def split_headings(text: str) -> list[tuple[SectionKind | None, str, str]]:
    """Cut undivided report text at its headings, as French radiology reports are written.

    A heading is a line that starts with a known heading word followed by a colon
    ("Conclusion : pas d'anomalie") or standing alone ("TECHNIQUE"). Returns
    (kind, heading as written, text) parts in order; the text before the first heading
    has kind None. Text without headings comes back whole, as one part.
    """
    parts: list[tuple[SectionKind | None, str, str]] = []
    kind: SectionKind | None = None
    title = ""
    lines: list[str] = []
    for line in text.split("\n"):
        m = _HEADING_LINE.match(normalized_line(line))
        if m is not None:
            if lines and "\n".join(lines).strip():
                parts.append((kind, title, "\n".join(lines).strip("\n")))
            kind = HEADINGS[m.group("word")]
            title = line.split(":", 1)[0].strip()
            rest = line.split(":", 1)[1].strip() if m.group("rest") is not None else ""
            lines = [rest] if rest else []
            continue
        lines.append(line)
    if "\n".join(lines).strip():
        parts.append((kind, title, "\n".join(lines).strip("\n")))
    return parts


def normalized_line(line: str) -> str:
    """A text line with its heading part normalised, keeping the colon that marks it."""
    head, colon, rest = line.partition(":")
    return normalized(head) + (f":{rest}" if colon else "")
