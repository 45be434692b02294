"""Which schematrons a CDA document is checked against, chosen from its templateIds.

Every document goes through the five CI-SIS profiles, in the order the official examples
declare them in their `<?oxygen SCHSchema="..."?>` processing instructions (IHE, minimal
structuring, CI-SIS content models, ANS models, terminologies). A structured document
then goes through its volet's own schematron, chosen from the volet templateId on
ClinicalDocument and its version (the templateId's extension).

Level-1 (non-structured: PDF/text in nonXMLBody, templateId 1.3.6.1.4.1.19376.1.2.20)
documents have no volet schematron: the profiles are their rules, as in the kit's
N1 examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PROFILE_SCHEMATRONS: tuple[str, ...] = (
    "schematrons/profils/IHE.sch",
    "schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch",
    "schematrons/profils/CI-SIS_ModelesDeContenusCDA.sch",
    "schematrons/profils/CI-SIS_Modeles_ANS.sch",
    "schematrons/profils/terminologies/schematron/terminologie.sch",
)

LEVEL_1_TEMPLATE_ID = "1.3.6.1.4.1.19376.1.2.20"
"""IHE XDS-SD / CI-SIS non-structured body (CDA R2 level 1)."""


class VoletStatus(StrEnum):
    APPLIED = "applied"
    LEVEL_1 = "level-1"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Volet:
    """A CI-SIS volet version and the kit schematron that checks it (None if the kit lacks it)."""

    name: str
    template_id: str
    version: str
    schematron: str | None
    note: str = ""


VOLETS: tuple[Volet, ...] = (
    Volet(
        "CR-BIO", "1.2.250.1.213.1.1.1.55", "2024.01", "schematrons/CI-SIS_BIO-CR-BIO_2024.01.sch"
    ),
    Volet(
        "CR-BIO",
        "1.2.250.1.213.1.1.1.55",
        "2023.01",
        None,
        "the kit's CI-SIS_BIO-CR-BIO_2023.01.sch includes rule files that are empty in the"
        " kit (include/specificationsVolets/BIO-CR-BIO_2023.01)",
    ),
    Volet(
        "CR-BIO", "1.2.250.1.213.1.1.1.55", "2021.01", "schematrons/CI-SIS_BIO-CR-BIO_2021.01.sch"
    ),
    Volet(
        "CR-IMG", "1.2.250.1.213.1.1.1.45", "2024.01", "schematrons/CI-SIS_IMG-CR-IMG_2024.01.sch"
    ),
)

CURRENT_VERSIONS: dict[str, str] = {
    "1.2.250.1.213.1.1.1.55": "2024.01",
    "1.2.250.1.213.1.1.1.45": "2024.01",
}
"""Version assumed when the volet templateId carries no extension (as the kit's TSH examples)."""


@dataclass(frozen=True, slots=True)
class VoletChoice:
    """The outcome of looking a document's templateIds up: what to run and why."""

    status: VoletStatus
    volet: Volet | None
    explanation: str

    @property
    def schematron(self) -> str | None:
        return self.volet.schematron if self.volet and self.status is VoletStatus.APPLIED else None


def choose_volet(template_ids: list[tuple[str, str | None]]) -> VoletChoice:
    """Pick the volet schematron for a document from its ClinicalDocument/templateId list."""
    by_root = {volet.template_id: volet.name for volet in VOLETS}
    for root, extension in template_ids:
        if root not in by_root:
            continue
        version = extension or CURRENT_VERSIONS[root]
        volet = next((v for v in VOLETS if v.template_id == root and v.version == version), None)
        if volet is None:
            known = ", ".join(v.version for v in VOLETS if v.template_id == root)
            return VoletChoice(
                VoletStatus.UNKNOWN,
                None,
                f"{by_root[root]} version {version} (templateId {root}) has no schematron in"
                f" the kit (known: {known}); only the CI-SIS profiles were applied",
            )
        if volet.schematron is None:
            return VoletChoice(
                VoletStatus.UNAVAILABLE,
                volet,
                f"{volet.name} {volet.version} rules not verifiable: {volet.note};"
                " only the CI-SIS profiles were applied",
            )
        assumed = "" if extension else f" (templateId {root} has no extension: version assumed)"
        return VoletChoice(VoletStatus.APPLIED, volet, f"{volet.name} {volet.version}{assumed}")
    if any(root == LEVEL_1_TEMPLATE_ID for root, _ in template_ids):
        return VoletChoice(VoletStatus.LEVEL_1, None, "level-1 (non-structured) document")
    roots = ", ".join(root for root, _ in template_ids) or "none"
    return VoletChoice(
        VoletStatus.UNKNOWN,
        None,
        f"no volet schematron of the kit matches the document templateIds ({roots});"
        " only the CI-SIS profiles were applied",
    )
