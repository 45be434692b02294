"""Writes tests/fixtures/hl7/ris/*.hl7: RIS report messages (run once, files committed).

Each file is what a RIS would send (ORU^R01 in HL7 France / IHE RAD style, or MDM);
the expectations live in tests/integration/test_cr_img.py.
Run: .venv/bin/python tests/support/make_ris_fixtures.py
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "hl7" / "ris"

MSH = "MSH|^~\\&|RIS|IMAGERIE_CHU|PFI|CHU_X|{ts}||{type}|{id}|P|{version}|||AL|NE|FRA|{cs}"
PID = (
    "PID|||279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS~{ipp}^^^CHU_X"
    "&1.2.250.1.213.4.5.2.4&ISO^PI||{family}^{given}^{given}^^^^L~{family}^{given}^^^^^D||19790328"
    "|F|||28 Avenue de Breteuil^^PARIS^^75007^FRA^H~^^^^^^BDL^^63220|||||||||||||||||||||VALI"
)
PV1 = "PV1|1|O|RADIO||||||||||||||||V{visit}"
PRESC = "10003456789^MARTIN^Paul^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS"
RADIOLOGIST = "10101234567&BIDEAULT&Jacques&&&Dr&&&&1.2.250.1.71.4.2.1"
RADIOLOGIST_XCN = (
    "10101234567^BIDEAULT^Jacques^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS"
)
STUDY = "1.2.250.1.999.1.20240115.1"
CT_THORAX = "24627-2^CT Thorax^LN^ZBQK002^Scanographie du thorax^CCAM"


def header(mid: str, kind: str = "ORU^R01^ORU_R01", cs: str = "UNICODE UTF-8", **kw: str):
    return [
        MSH.format(ts="202401151130", type=kind, id=mid, cs=cs, version=kw.get("version", "2.5")),
        PID.format(
            ipp=kw.get("ipp", "IPP201"),
            family=kw.get("family", "PAT-TROIS"),
            given=kw.get("given", "DOMINIQUE"),
        ),
        PV1.format(visit=mid),
    ]


def orc(order: str, ctl: str = "RE") -> str:
    return f"ORC|{ctl}|CMD{order}|EX{order}^RIS||CM||||202401140900|||{PRESC}"


def obr(
    n: int,
    code: str,
    order: str,
    status: str = "F",
    modality: str = "CT",
    site: str = "",
    radiologist: str = RADIOLOGIST,
    accession: str = "",
) -> str:
    fields = [""] * 33
    fields[1] = str(n)
    fields[2] = f"CMD{order}"
    fields[3] = f"EX{order}^RIS"
    fields[4] = code
    fields[7] = "202401151030"
    fields[8] = "202401151045"
    fields[15] = f"^^^{site}" if site else ""
    fields[16] = PRESC
    fields[18] = accession or f"ACC{order}"
    fields[22] = "202401151120"
    fields[24] = modality
    fields[25] = status
    fields[32] = radiologist
    return "OBR|" + "|".join(fields[1:])


def txa(
    document: str,
    status: str,
    parent: str = "",
    order: str = "",
    signer: str = RADIOLOGIST_XCN,
    signed_at: str = "202401151120",
    availability: str = "",
) -> str:
    """TXA: 12 document number, 13 parent, 14/15 orders, 17 completion, 19 availability,
    22 authenticator (PPN: XCN components, 15 = time of signature)."""
    fields = [""] * 23
    fields[1], fields[2], fields[3] = "1", "CR", "TX"
    fields[4] = fields[6] = "202401151100"
    fields[12], fields[13] = document, parent
    fields[14], fields[15] = (f"CMD{order}", f"EX{order}") if order else ("", "")
    fields[17], fields[19] = status, availability
    fields[22] = f"{signer}^^{signed_at}" if signer else ""
    return "TXA|" + "|".join(fields[1:])


def obx(n: int, vt: str, code: str, value: str, status: str = "F", sub: str = "") -> str:
    return f"OBX|{n}|{vt}|{code}|{sub}|{value}||||||{status}"


def text_obx(n: int, code: str, lines: list[str], status: str = "F") -> str:
    return obx(n, "TX", code, "~".join(lines), status)


def tiny_pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=1)
    c.drawString(72, 720, "Compte rendu d'imagerie (PDF du RIS)")
    c.drawString(72, 700, "Scanner thoracique : pas d'anomalie.")
    c.save()
    return buf.getvalue()


def pdf_obx(n: int, data: bytes, subtype: str = "PDF", media: str = "AP") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return obx(n, "ED", "PDF^Compte rendu PDF^L", f"^{media}^{subtype}^Base64^{b64}")


#: A full report as IHE RAD / HL7 France RIS send it: LOINC-coded sections.
SECTIONS = [
    ("18785-6^Indication^LN", ["Bilan d'une toux persistante.", "Tabagisme ancien."]),
    ("55111-9^Technique^LN", ["Acquisition hélicoïdale thoracique sans injection."]),
    (
        "59776-5^Résultats^LN",
        ["Pas de nodule pulmonaire.", "Pas d'épanchement pleural.", "", "Médiastin normal."],
    ),
    ("19005-8^Conclusion^LN", ["Scanner thoracique normal."]),
]


def sectioned(start: int = 1, sections=SECTIONS, status: str = "F") -> list[str]:
    return [text_obx(start + i, code, lines, status) for i, (code, lines) in enumerate(sections)]


def fixtures() -> dict[str, list[str]]:
    f: dict[str, list[str]] = {}
    thorax = "302551006&thorax entier&SCT"
    f["01_oru_text_only"] = [
        *header("R01"),
        orc("1001"),
        obr(1, CT_THORAX, "1001"),
        text_obx(
            1,
            "GDT^Compte rendu^L",
            ["Scanner thoracique.", "Poumons sans particularité.", "Pas d'adénopathie."],
        ),
    ]
    f["02_oru_sections_conclusion"] = [
        *header("R02"),
        orc("1002"),
        obr(1, CT_THORAX, "1002"),
        *sectioned(),
    ]
    f["03_oru_dicom_study_uid"] = [
        *header("R03"),
        orc("1003"),
        obr(1, CT_THORAX, "1003", site=thorax),
        f"ZDS|{STUDY}^RIS^Application^DICOM",
        *sectioned(),
    ]
    f["04_oru_rad28_series_and_headings"] = [
        *header("R04"),
        orc("1004"),
        obr(1, "24627-2^CT Thorax^LN", "1004", modality=""),
        obx(1, "CWE", "121139^Modality^DCM", "CT^Tomodensitométrie^DCM"),
        obx(2, "CWE", "39111-0^Localisation anatomique^LN", "302551006^thorax entier^SCT"),
        obx(3, "HD", "^SR Instance UID", "1.2.250.1.999.3.1"),
        obx(4, "HD", "^Study Instance UID", STUDY, sub="1"),
        obx(5, "HD", "^Series Instance UID", f"{STUDY}.1", sub="1"),
        obx(6, "HD", "^SOP Instance UID", f"{STUDY}.1.1", sub="1"),
        obx(7, "HD", "^SOP Class UID", "1.2.840.10008.5.1.4.1.1.2", sub="1"),
        obx(8, "HD", "^Series Instance UID", f"{STUDY}.2", sub="2"),
        text_obx(
            9,
            "^SR Text",
            [
                "INDICATION : douleur thoracique.",
                "TECHNIQUE : acquisition sans injection.",
                "Résultats :",
                "Parenchyme pulmonaire normal.",
                "Conclusion : examen normal.",
            ],
        ),
    ]
    f["05_mdm_t02"] = [
        *header("R05", "MDM^T02^MDM_T02", version="2.6"),
        "EVN||202401151130",
        orc("1005", "NW"),
        obr(1, "IRMGEN^IRM du genou droit^L^NFQJ001^IRM du genou^CCAM", "1005", "", "MR"),
        txa("DOC1005", "AU", order="1005"),
        *sectioned(
            1,
            [
                ("121060^Histoire^DCM", ["Entorse ancienne."]),
                ("121070^Findings^DCM", ["Ménisques sans lésion.", "LCA continu."]),
                ("121077^Conclusion^DCM", ["IRM du genou normale."]),
            ],
        ),
    ]
    f["06_oru_correction"] = [
        *header("R06"),
        orc("1003"),
        obr(1, CT_THORAX, "1003", status="C", site=thorax),
        f"ZDS|{STUDY}^RIS^Application^DICOM",
        *sectioned(
            1,
            [
                *SECTIONS[:3],
                ("19005-8^Conclusion^LN", ["Micronodule lobaire supérieur droit de 4 mm."]),
            ],
            status="C",
        ),
    ]
    f["07_oru_cancellation"] = [
        *header("R07"),
        orc("1003", "CA"),
        obr(1, CT_THORAX, "1003", status="X", site=thorax),
    ]
    latin_lines = [
        "Épanchement pleural gauche de faible abondance.",
        "Silhouette cardiaque de taille normale, à préciser.",
    ]
    f["08_latin1_accents"] = [
        *header("R08", cs="8859/1", family="LÉVÊQUE", given="HÉLÈNE"),
        orc("1008"),
        obr(1, "24627-2^CT Thorax^LN", "1008", site=thorax),
        f"ZDS|{STUDY}8^RIS^Application^DICOM",
        text_obx(1, "59776-5^Résultats^LN", latin_lines),
        text_obx(2, "19005-8^Conclusion^LN", ["Épanchement pleural gauche minime."]),
    ]
    f["09_utf8_accents"] = [
        *header("R09", family="NOËL-MÜLLER", given="ZOË"),
        orc("1009"),
        obr(1, "24627-2^CT Thorax^LN", "1009"),
        text_obx(1, "GDT^Compte rendu^L", ["Kyste hépatique ≤ 1 cm, aspect bénin."]),
    ]
    f["10_oru_with_pdf"] = [
        *header("R10"),
        orc("1010"),
        obr(1, CT_THORAX, "1010"),
        text_obx(1, "GDT^Compte rendu^L", ["Scanner thoracique : pas d'anomalie."]),
        pdf_obx(2, tiny_pdf()),
    ]
    f["11_oru_level3_with_pdf"] = [
        *header("R11"),
        orc("1011"),
        obr(1, CT_THORAX, "1011", site=thorax),
        f"ZDS|{STUDY}11^RIS^Application^DICOM",
        *sectioned(),
        pdf_obx(5, tiny_pdf()),
    ]
    f["12_mdm_t10_replacement"] = [
        *header("R12", "MDM^T10^MDM_T02", version="2.6"),
        "EVN||202401161000",
        orc("1005", "XO"),
        obr(1, "IRMGEN^IRM du genou droit^L^NFQJ001^IRM du genou^CCAM", "1005", "", "MR"),
        txa("DOC1005-2", "LA", "DOC1005", "1005", signed_at="202401161000"),
        text_obx(1, "121077^Conclusion^DCM", ["Fissure méniscale interne horizontale."]),
    ]
    f["13_mdm_t11_cancellation"] = [
        *header("R13", "MDM^T11^MDM_T01", version="2.6"),
        "EVN||202401161100",
        obr(1, "IRMGEN^IRM du genou droit^L", "1005", "", "MR"),
        txa("DOC1005-2", "LA", order="1005", signer="", availability="CA"),
    ]
    f["14_preliminary"] = [
        *header("R14"),
        orc("1014"),
        obr(1, CT_THORAX, "1014", status="P"),
        text_obx(1, "GDT^Compte rendu^L", ["Compte rendu en cours de dictée."], status="P"),
    ]
    f["15_two_exams"] = [
        *header("R15"),
        orc("1015"),
        obr(1, CT_THORAX, "1015", site=thorax),
        f"ZDS|{STUDY}15.1^RIS^Application^DICOM",
        text_obx(1, "59776-5^Résultats^LN", ["Thorax normal."]),
        text_obx(2, "19005-8^Conclusion^LN", ["Pas d'anomalie thoracique."]),
        orc("1016"),
        obr(
            2,
            "24556-3^CT Abdomen^LN^ZCQK002^Scanographie de l'abdomen^CCAM",
            "1016",
            site="302553009&abdomen entier&SCT",
        ),
        f"ZDS|{STUDY}15.2^RIS^Application^DICOM",
        text_obx(3, "59776-5^Résultats^LN", ["Foie homogène."]),
        text_obx(4, "19005-8^Conclusion^LN", ["Pas d'anomalie abdominale."]),
    ]
    f["16_local_code_and_hl7_modality"] = [
        *header("R16"),
        orc("1017"),
        obr(
            1,
            "IRMCER^IRM cérébrale^L^ACQN001^IRM de l'encéphale^CCAM",
            "1017",
            modality="NMR",
            site="302548004&tête entière&SCT",
        ),
        f"ZDS|{STUDY}16^RIS^Application^DICOM",
        text_obx(1, "GDT^Compte rendu^L", ["Pas de lésion.", "", "CONCLUSION", "IRM normale."]),
    ]
    f["17_addendum_comparison_comments"] = [
        *header("R17"),
        orc("1018"),
        obr(1, CT_THORAX, "1018", site=thorax),
        "NTE|1||Examen réalisé en urgence.",
        f"ZDS|{STUDY}17^RIS^Application^DICOM",
        *sectioned(),
        text_obx(5, "18834-2^Comparaison^LN", ["Scanner du 12/06/2023 : stable."]),
        text_obx(6, "55107-7^Addendum^LN", ["Relecture : pas de modification."]),
    ]
    f["18_modality_not_dicom"] = [
        *header("R18"),
        orc("1019"),
        obr(1, CT_THORAX, "1019", modality="RAD", site=thorax),
        f"ZDS|{STUDY}18^RIS^Application^DICOM",
        *sectioned(),
    ]
    f["19_site_not_in_value_set"] = [
        *header("R19"),
        orc("1020"),
        obr(1, CT_THORAX, "1020", site="51185008&thorax&SCT"),
        f"ZDS|{STUDY}19^RIS^Application^DICOM",
        *sectioned(),
    ]
    # Rejections.
    f["r01_missing_radiologist"] = [
        *header("X01"),
        orc("2001"),
        obr(1, CT_THORAX, "2001", radiologist=""),
        *sectioned(),
    ]
    f["r02_bad_study_uid"] = [
        *header("X02"),
        orc("2002"),
        obr(1, CT_THORAX, "2002"),
        "ZDS|1.2.03.4^RIS^Application^DICOM",
        *sectioned(),
    ]
    f["r03_obx_without_obr"] = [*header("X03"), orc("2003"), *sectioned()]
    f["r04_no_report_text"] = [*header("X04"), orc("2004"), obr(1, CT_THORAX, "2004")]
    f["r05_mdm_without_completion_status"] = [
        *header("X05", "MDM^T02^MDM_T02", version="2.6"),
        obr(1, CT_THORAX, "2005", ""),
        txa("DOC2005", ""),
        *sectioned(),
    ]
    f["r06_unsupported_mdm_event"] = [
        *header("X06", "MDM^T06^MDM_T02", version="2.6"),
        obr(1, CT_THORAX, "2006", ""),
        txa("DOC2006", "AU"),
        *sectioned(),
    ]
    f["r07_embedded_jpeg"] = [
        *header("X07"),
        orc("2007"),
        obr(1, CT_THORAX, "2007"),
        *sectioned(),
        pdf_obx(5, b"\xff\xd8\xff\xe0JFIF", "JPEG", "IM"),
    ]
    f["r08_missing_exam_code"] = [*header("X08"), orc("2008"), obr(1, "", "2008"), *sectioned()]
    f["r09_unknown_result_status"] = [
        *header("X09"),
        orc("2009"),
        obr(1, CT_THORAX, "2009", status="Z"),
        *sectioned(),
    ]
    return f


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, segments in fixtures().items():
        charset = "latin-1" if "|8859/1" in segments[0] else "utf-8"
        (OUT / f"{name}.hl7").write_bytes(("\r".join(segments) + "\r").encode(charset))


if __name__ == "__main__":
    main()
