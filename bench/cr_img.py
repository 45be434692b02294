"""RIS message → CR-IMG documents per second on one core, against lxml parse+serialise.

Three paths: level 3 (structured body, no PDF), level 1 carrying the RIS's own PDF
(OBX ED, embedded as is) and level 1 with the PDF rendered by PFI (reportlab). Then the
cost of the full validation (XSD + CI-SIS profiles + CR-IMG volet) per document, with the
validator built once (its start-up is printed apart). Baseline: lxml parsing and
serialising the very documents produced, in the same run. Loops bounded in count and time.
Run: .venv/bin/python bench/cr_img.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.transforms.cda.cr_img import build_cr_img  # noqa: E402
from pfi.transforms.cda.validation import CdaValidator  # noqa: E402
from pfi.transforms.hl7 import parse_message  # noqa: E402
from pfi.transforms.imaging import build_imaging_report  # noqa: E402
from tests.support.cda import make_imaging_context  # noqa: E402

RIS = ROOT / "tests/fixtures/hl7/ris"
PATHS = {
    "level 3": ["03_oru_dicom_study_uid", "04_oru_rad28_series_and_headings", "15_two_exams"],
    "level 1, RIS PDF": ["10_oru_with_pdf"],
    "level 1, PFI PDF": ["01_oru_text_only", "02_oru_sections_conclusion", "05_mdm_t02"],
}
MAX_SECONDS = 5.0
MAX_DOCS = 20_000
MAX_VALIDATIONS = 60


def ris_to_cda(raw: bytes) -> bytes:
    return build_cr_img(build_imaging_report(parse_message(raw)), make_imaging_context("bench"))


def rate(fn: Callable[[bytes], object], inputs: list[bytes], limit: int = MAX_DOCS):
    n, start = 0, time.perf_counter()
    while n < limit and time.perf_counter() - start < MAX_SECONDS:
        fn(inputs[n % len(inputs)])
        n += 1
    return n / (time.perf_counter() - start), n


def main() -> None:
    produced: list[bytes] = []
    for label, names in PATHS.items():
        raws = [(RIS / f"{n}.hl7").read_bytes() for n in names]
        docs = [ris_to_cda(r) for r in raws]
        produced += docs
        built, n1 = rate(ris_to_cda, raws)
        base, n2 = rate(lambda d: etree.tostring(etree.fromstring(d)), docs)
        size = sum(map(len, docs)) // len(docs)
        print(
            f"{label:17s} RIS→CR-IMG {built:8.1f} docs/s ({n1} docs, avg {size // 1024} KiB) | "
            f"lxml parse+serialise {base:8.1f} docs/s ({n2}) | ratio {built / base:.3f}"
        )
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        validator = CdaValidator(cache_dir=Path(cache))
        print(f"validator start-up (cold cache) {time.perf_counter() - started:.1f} s")
        for label, names in PATHS.items():
            docs = [ris_to_cda((RIS / f"{n}.hl7").read_bytes()) for n in names]
            assert all(validator.validate(d).valid for d in docs), label
            checked, n = rate(validator.validate, docs, MAX_VALIDATIONS)
            print(
                f"{label:17s} XSD + schematrons {checked:6.1f} docs/s "
                f"({1000 / checked:.0f} ms/doc, {n} docs)"
            )


if __name__ == "__main__":
    main()
