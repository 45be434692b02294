"""Shared builders for DMP tests: settings pointing at a simulator, official CDA examples."""

from __future__ import annotations

from pathlib import Path

from pfi.config.dmp import DmpIdentitySettings, DmpSettings

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures/ci-sis/TestContenuCDA-3.0/ExemplesCDA"
CR_BIO = EXAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
CR_BIO_MICRO_V1 = EXAMPLES / "BIO-CR-BIO_2024.01_Microbiologie_V1.xml"
CR_BIO_MICRO_V2 = EXAMPLES / "BIO-CR-BIO_2024.01_Microbiologie_V2.xml"
CR_IMG = EXAMPLES / "IMG_CR_IMG_2024.01.xml"
CR_IMG_N1 = EXAMPLES / "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"
CR_BIO_N1 = EXAMPLES / "BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml"
DOC_N1 = EXAMPLES / "DOC_NON_STRUCTURE_CDA-R2-N1.xml"
TEST_INS = "279035121518989"


def dmp_settings(
    url: str, signing_cert: Path, signing_key: Path, **overrides: object
) -> DmpSettings:
    values: dict[str, object] = {
        "url": url,
        "signing_certfile": signing_cert,
        "signing_keyfile": signing_key,
        "identity": DmpIdentitySettings(
            structure_id="10B0123456",
            structure_name="CH de test",
            structure_finess="750000001",
            subject_name_id="PFI-AUTOMATE/ops",
            source_id="1.2.250.1.999.1.1",
        ),
    }
    values.update(overrides)
    return DmpSettings(**values)  # type: ignore[arg-type]
