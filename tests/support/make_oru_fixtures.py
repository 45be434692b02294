"""Writes tests/fixtures/hl7/oru/*.hl7: raw lab ORU^R01 variants (run once, files committed).

Each file is what an SGL would send; the expectations live in tests/unit/test_cr_bio.py.
Run: .venv/bin/python tests/support/make_oru_fixtures.py
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "hl7" / "oru"

MSH = "MSH|^~\\&|SGL|LABO_CHARMES|PFI|CHU_X|{ts}||ORU^R01^ORU_R01|{id}|P|2.5|||AL|NE|FRA|{cs}"
PID = (
    "PID|||{ins}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS~{ipp}^^^CHU_X&1.2.250.1.213.4.5.2.4"
    "&ISO^PI||{family}^{given}^{given_names}^^^^L~{used}^{given}^^^^^D||{dob}|{sex}|||"
    "28 Avenue de Breteuil^^PARIS^^75007^FRA^H~^^^^^^BDL^^63220|||||||||||||||||||||{status}"
)
PV1 = "PV1|1|O|LABO||||||||||||||||V{visit}"
ORC = "ORC|{ctl}|CMD{order}|{filler}^SGL||CM||||202401040700|||{presc}"
PRESC = "10003456789^MARTIN^Paul^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS"
VALIDATOR = "10101234567&CAMPARINI&Marcel&&&Dr&&&&1.2.250.1.71.4.2.1"
COPY = "10007654321^DURAND^Claire^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS"


def obr(n, code, order, filler, status, section="CH", validator=VALIDATOR, copy="", source=""):
    return (
        f"OBR|{n}|CMD{order}|{filler}^SGL|{code}|||202401040735|||||||202401040810|{source}|{PRESC}"
        f"||||||202401041120||{section}|{status}|||{copy}||||{validator}"
    )


def obx(n, vt, code, value, unit="", rng="", flag="", status="F", sub="", obs16=""):
    return (
        f"OBX|{n}|{vt}|{code}|{sub}|{value}|{unit}|{rng}|{flag}|||{status}|||202401041100||{obs16}"
    )


def spm(n, sid, code, collected="202401040735", received="202401040810"):
    return f"SPM|{n}|{sid}&SGL||{code}|||||||||||||{collected}|{received}"


def header(
    mid,
    family="PAT-TROIS",
    given="DOMINIQUE",
    cs="UNICODE UTF-8",
    status="VALI",
    used="PAT-TROIS",
    given_names="DOMINIQUE MARIE",
):
    return [
        MSH.format(ts="202401041125", id=mid, cs=cs),
        PID.format(
            ins="279035121518989",
            ipp="IPP101",
            family=family,
            given=given,
            given_names=given_names,
            used=used,
            dob="19790328",
            sex="F",
            status=status,
        ),
        PV1.format(visit=mid),
    ]


def orc(order, ctl="RE"):
    return ORC.format(ctl=ctl, order=order, filler=f"F{order}", presc=PRESC)


def biochem(status="F", obx_status="F", order="1001", glucose="4.89"):
    return [
        orc(order),
        obr(1, "BIOCH^Biochimie sanguine^L", order, f"F{order}", status),
        obx(1, "NM", "GLY^Glycémie à jeun^L", glucose, "mmol/l", "3.89-6.00", "N", obx_status),
        obx(2, "NM", "CREA^Créatinine^L", "112", "umol/l", "45-90", "H", obx_status),
        obx(3, "NM", "NA^Sodium^L", "139", "mmol/l", "136-145", "", obx_status),
        obx(4, "NM", "K^Potassium^L", "3.2", "mmol/l", "3.5-5.1", "L", obx_status),
        spm(1, "S1001", "SER^Sérum^HL70487"),
    ]


def tiny_pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=1)
    c.drawString(72, 720, "Compte rendu du laboratoire (PDF du SGL)")
    c.save()
    return buf.getvalue()


def fixtures() -> dict[str, list[str]]:
    f: dict[str, list[str]] = {}
    f["01_numeric_biochemistry"] = header("M01") + biochem()
    f["02_hematology_blood_count"] = [
        *header("M02"),
        orc("1002"),
        obr(1, "NFS^Numération formule sanguine^L", "1002", "F1002", "F", "HM"),
        obx(1, "NM", "HB^Hémoglobine^L", "11.2", "g/dl", "12.0-16.0", "L"),
        obx(2, "NM", "GR^Hématies^L", "4.1", "T/l", "3.8-5.2"),
        obx(3, "NM", "HT^Hématocrite^L", "36", "%", "36-46"),
        obx(4, "NM", "GB^Leucocytes^L", "12.5", "G/l", "4.0-10.0", "H"),
        obx(5, "NM", "PLQ^Plaquettes^L", "250", "G/l", "150-400"),
        spm(1, "S1002", "BLD^Sang total^HL70487"),
    ]
    f["03_text_results"] = [
        *header("M03"),
        orc("1003"),
        obr(1, "FROTTIS^Frottis sanguin^L", "1003", "F1003", "F", "HM"),
        obx(1, "FT", "FROT^Examen du frottis^L", "Anisocytose modérée.\\.br\\Pas de blastes."),
        obx(2, "ST", "ASPECT^Aspect du sérum^L", "Limpide"),
        obx(3, "TX", "CONCL^Conclusion^L", "Bilan compatible avec une carence martiale"),
    ]
    f["04_coded_results"] = [
        *header("M04"),
        orc("1004"),
        obr(1, "SERO^Sérologie hépatite B^L", "1004", "F1004", "F", "SR"),
        obx(1, "CWE", "AGHBS^Antigène HBs^L", "260385009^Négatif^SCT"),
        obx(2, "CE", "UCOUL^Couleur urines^L", "JAUNE^Jaune paille^L"),
    ]
    f["05_structured_numeric"] = [
        *header("M05"),
        orc("1005"),
        obr(1, "DIV^Dosages divers^L", "1005", "F1005", "F", "CH"),
        obx(2, "SN", "CRP^Protéine C réactive^L", "<^5", "mg/l", "<5"),
        obx(3, "SN", "HCGB^Beta HCG^L", ">^10000", "UI/l", "<5", "H"),
        obx(4, "SN", "TPHA^TPHA (titre)^L", "^1^:^128", "", "", "A"),
        obx(5, "SN", "TSH^TSH^L", "=^2.5", "mUI/l", "0.27-4.20"),
    ]
    f["06_microbiology_two_specimens"] = [
        *header("M06"),
        orc("1006"),
        obr(1, "ECBU^Examen cytobactériologique des urines^L", "1006", "F1006", "F", "MB"),
        obx(1, "CE", "UCOUL^Couleur^L", "PAILLE^Paille^L"),
        obx(2, "NM", "ULEU^Leucocytes^L", "500", "/ml", "<10000"),
        obx(3, "NM", "UHEM^Hématies^L", "200", "/ml", "<10000"),
        obx(4, "CWE", "UCULT^Germe identifié^L", "112283007^Escherichia coli^SCT", sub="1"),
        obx(5, "NM", "UNUM^Numération^L", "100000", "/ml", "", "H", sub="1"),
        obx(6, "SN", "AMC^Amoxicilline+ac. clavulanique^L", ">=^0.512", "ug/ml", "", "R", sub="1"),
        obx(7, "SN", "AMP^Ampicilline^L", "<^0.128", "ug/ml", "", "I", sub="1"),
        obx(8, "SN", "GEN^Gentamicine^L", "<^0.032", "ug/ml", "", "S", sub="1"),
        spm(1, "S1006U", "UR^Urine^HL70487"),
        orc("1007"),
        obr(2, "HEMOC^Hémoculture^L", "1007", "F1007", "F", "MB"),
        obx(9, "TX", "HCULT^Culture^L", "Absence de croissance à 5 jours"),
        spm(2, "S1007B", "BLD^Sang total^HL70487", "202401040740", "202401040815"),
    ]
    pdf64 = base64.b64encode(tiny_pdf()).decode()
    f["07_embedded_lab_pdf"] = (
        header("M07")
        + biochem(order="1008")
        + [obx(5, "ED", "PDF^Compte rendu PDF^L", f"SGL^AP^PDF^Base64^{pdf64}")]
    )
    f["08_correction"] = header("M08") + biochem("C", "C", order="1001", glucose="5.02")
    f["09_cancellation"] = [
        *header("M09"),
        orc("1001", "CA"),
        obr(1, "BIOCH^Biochimie sanguine^L", "1001", "F1001", "X"),
    ]
    unmapped = [
        *header("M10"),
        orc("1010"),
        obr(1, "VITD^Vitamine D^L", "1010", "F1010", "F", "CH"),
        obx(1, "NM", "VITD25^25-OH vitamine D^L", "62", "nmol/l", "75-250", "L"),
        obx(2, "NM", "CA^Calcium^L", "2.35", "mmol/l", "2.20-2.60"),
    ]
    f["10_unmapped_code_hold"] = unmapped
    f["11_unmapped_code_keep_local"] = [s.replace("|M10|", "|M11|") for s in unmapped]
    f["12_latin1_names"] = header(
        "M12", "LÉVÊQUE", "FRANÇOISE", "8859/1", used="", given_names="FRANÇOISE AGNÈS"
    ) + biochem(order="1012")
    f["13_utf8_names"] = header(
        "M13", "NOËL-MÜLLER", "ZOË", "UNICODE UTF-8", used="", given_names="ZOË"
    ) + biochem(order="1013")
    f["14_minimal"] = [
        MSH.format(ts="202401041125", id="M14", cs="UNICODE UTF-8"),
        "PID|||IPP114^^^CHU_X&1.2.250.1.213.4.5.2.4&ISO^PI||MARTIN^JEAN||19500101",
        "OBR|1||F1014|GLY^Glycémie^L|||20240104||||||||||||||||||F|||||||" + VALIDATOR,
        "OBX|1|NM|GLY^Glycémie^L||5.1|mmol/l|||||F",
    ]
    f["15_loinc_sent_directly"] = [
        *header("M15"),
        orc("1015"),
        obr(1, "24323-8^Bilan métabolique^LN", "1015", "F1015", "F", "CH"),
        obx(1, "NM", "2345-7^Glucose [Masse/Volume] Sérum/Plasma^LN", "0.95", "g/L", "0.70-1.10"),
        obx(2, "NM", "2160-0^Créatinine [Masse/Volume] Sérum/Plasma^LN", "9.1", "mg/L", "5-11"),
    ]
    f["16_comments"] = (
        header("M16")
        + biochem(order="1016")[:2]
        + [
            "NTE|1||Prélèvement réalisé à jeun",
            obx(1, "NM", "GLY^Glycémie à jeun^L", "7.2", "mmol/l", "3.89-6.00", "H"),
            "NTE|1||Contrôle recommandé dans 3 mois",
        ]
    )
    f["16_comments"].insert(3, "NTE|1||Commentaire général du biologiste")
    f["17_copy_recipients"] = [
        *header("M17"),
        orc("1017"),
        obr(1, "BIOCH^Biochimie^L", "1017", "F1017", "F", "CH", copy=COPY + "~" + PRESC),
        obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l", "3.89-6.00"),
    ]
    obs16 = "10101234567^CAMPARINI^Marcel^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS"
    f["18_validator_in_obx16"] = [
        *header("M18"),
        orc("1018"),
        obr(1, "BIOCH^Biochimie^L", "1018", "F1018", "F", "CH", validator=""),
        obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l", "3.89-6.00", obs16=obs16),
    ]
    f["19_preliminary_only"] = [
        *header("M19"),
        orc("1019"),
        obr(1, "BIOCH^Biochimie^L", "1019", "F1019", "P", "CH", validator=""),
        obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l", "3.89-6.00", status="P"),
    ]
    f["20_final_and_preliminary"] = (
        header("M20")
        + biochem(order="1020")
        + [
            obr(2, "HEMOC^Hémoculture^L", "1021", "F1021", "P", "MB"),
            obx(5, "TX", "HCULT^Culture^L", "En cours", status="P"),
        ]
    )
    f["21_deleted_and_not_done"] = [
        *header("M21"),
        orc("1022"),
        obr(1, "BIOCH^Biochimie^L", "1022", "F1022", "F", "CH"),
        obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l", "3.89-6.00"),
        obx(2, "NM", "K^Potassium^L", "", "mmol/l", "3.5-5.1", status="X"),
        obx(3, "NM", "NA^Sodium^L", "140", "mmol/l", "136-145", status="D"),
    ]
    f["22_multi_chapter"] = [
        *header("M22"),
        orc("1023"),
        obr(1, "BIOCH^Biochimie^L", "1023", "F1023", "F", "CH"),
        obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l", "3.89-6.00"),
        obr(2, "NFS^Numération^L", "1024", "F1024", "F", "HM"),
        obx(2, "NM", "HB^Hémoglobine^L", "13.5", "g/dl", "12.0-16.0"),
        obr(3, "COAG^Hémostase^L", "1025", "F1025", "F", "CG"),
        obx(3, "NM", "TP^Taux de prothrombine^L", "85", "%", "70-100"),
        obx(4, "NM", "INR^INR^L", "1.1", "", ""),
        obr(4, "SERO^Sérologie^L", "1026", "F1026", "F", "SR"),
        obx(5, "CWE", "AGHBS^Antigène HBs^L", "260385009^Négatif^SCT"),
    ]
    f["23_decimal_comma"] = header("M23") + biochem(order="1027", glucose="4,89")
    f["24_unqualified_identity"] = header("M24", status="PROV") + biochem(order="1028")
    # Documented rejections
    f["r01_missing_validator"] = [
        *header("R01"),
        orc("2001"),
        obr(1, "BIOCH^Biochimie^L", "2001", "F2001", "F", "CH", validator=""),
        obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l"),
    ]
    f["r02_bad_numeric"] = [
        *header("R02"),
        orc("2002"),
        obr(1, "BIOCH^Biochimie^L", "2002", "F2002", "F"),
        obx(1, "NM", "GLY^Glycémie^L", "cinq", "mmol/l"),
    ]
    f["r03_obx_without_obr"] = [*header("R03"), obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l")]
    f["r04_empty_final_value"] = [
        *header("R04"),
        orc("2004"),
        obr(1, "BIOCH^Biochimie^L", "2004", "F2004", "F"),
        obx(1, "NM", "GLY^Glycémie^L", "", "mmol/l"),
    ]
    not_pdf = base64.b64encode(b"this is not a PDF").decode()
    f["r05_pdf_not_pdf"] = (
        header("R05")
        + biochem(order="2005")
        + [obx(5, "ED", "PDF^Compte rendu PDF^L", f"SGL^AP^PDF^Base64^{not_pdf}")]
    )
    f["r06_unsupported_value_type"] = [
        *header("R06"),
        orc("2006"),
        obr(1, "BIOCH^Biochimie^L", "2006", "F2006", "F"),
        obx(1, "RP", "IMG^Image^L", "http://x/y^IMG"),
    ]
    f["r07_missing_status"] = [
        *header("R07"),
        orc("2007"),
        obr(1, "BIOCH^Biochimie^L", "2007", "F2007", ""),
        obx(1, "NM", "GLY^Glycémie^L", "5.0", "mmol/l"),
    ]
    f["r08_missing_birth_date"] = [
        MSH.format(ts="202401041125", id="R08", cs="UNICODE UTF-8"),
        "PID|||IPP118^^^CHU_X&1.2.250.1.213.4.5.2.4&ISO^PI||MARTIN^JEAN",
        *biochem(order="2008"),
    ]
    return f


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, segments in fixtures().items():
        charset = "latin-1" if "|8859/1" in segments[0] else "utf-8"
        (OUT / f"{name}.hl7").write_bytes(("\r".join(segments) + "\r").encode(charset))


if __name__ == "__main__":
    main()
