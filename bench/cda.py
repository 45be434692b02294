"""ORU → CDA documents per second on one core, without and with schematron validation,
against lxml parse+serialise of the same documents in the same run.

CR-BIO (lab ORU → CR-BIO level 3), two paths: the lab sends its PDF (OBX ED, embedded as
is) and PFI renders the PDF (reportlab). CR-IMG (RIS ORU / MDM → CR-IMG), what the
documents stage's workers do (`build_cr_img_with_pdf`: the PDF is rendered whenever the
RIS sent none, the level-3 body does not carry it): level 3, level 1 carrying the RIS's
PDF, level 1 with the PDF rendered by PFI; each with its ratio to the CR-BIO build
("PDF rendered by PFI") too. Then the same documents through the validator the documents
stage runs: XSD only (`documents.schematron: off`) and XSD + CI-SIS schematrons
(`required`, after its one-off start-up, reported apart). Every loop is bounded in count
and time.

Run: .venv/bin/python bench/cda.py [--no-schematron]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.transforms.cda.cr_bio import build_cr_bio  # noqa: E402
from pfi.transforms.cda.cr_img import build_cr_img_with_pdf  # noqa: E402
from pfi.transforms.cda.validation import CdaValidator  # noqa: E402
from pfi.transforms.hl7 import parse_message  # noqa: E402
from pfi.transforms.imaging import build_imaging_report  # noqa: E402
from pfi.transforms.lab import LoincMapping, build_lab_report, transcode  # noqa: E402
from tests.support.cda import make_context, make_imaging_context  # noqa: E402

ORU = ROOT / "tests/fixtures/hl7/oru"
RIS = ROOT / "tests/fixtures/hl7/ris"
LAB_PDF = ["07_embedded_lab_pdf"]
RENDERED = ["01_numeric_biochemistry", "02_hematology_blood_count", "06_microbiology_two_specimens",
            "22_multi_chapter", "05_structured_numeric"]  # fmt: skip
#: CR-IMG paths: label → RIS fixtures
IMAGING = {
    "CR-IMG level 3": ["03_oru_dicom_study_uid", "04_oru_rad28_series_and_headings",
                       "15_two_exams"],
    "CR-IMG L1, RIS PDF": ["10_oru_with_pdf"],
    "CR-IMG L1, PFI PDF": ["01_oru_text_only", "02_oru_sections_conclusion", "05_mdm_t02"],
}  # fmt: skip
MAX_SECONDS = 5.0
MAX_DOCS = 20_000
MAX_VALIDATIONS = 200


def oru_to_cda(raw: bytes, mapping: LoincMapping, ctx: Any) -> bytes:
    report = transcode(build_lab_report(parse_message(raw)), mapping, "keep_local").report
    return build_cr_bio(report, ctx)


def ris_to_cda(raw: bytes, ctx: Any) -> bytes:
    return build_cr_img_with_pdf(build_imaging_report(parse_message(raw)), ctx)[0]


def rate(fn: Callable[[Any], object], inputs: list, max_docs: int = MAX_DOCS) -> tuple[float, int]:
    """Documents per second of `fn` over `inputs` (cycled), bounded in count and time."""
    n, start = 0, time.perf_counter()
    while n < max_docs and time.perf_counter() - start < MAX_SECONDS:
        fn(inputs[n % len(inputs)])
        n += 1
    return n / (time.perf_counter() - start), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-schematron", action="store_true", help="skip the slow part")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    mapping = LoincMapping.from_csv((ROOT / "config/loinc/SGL.csv").read_text("utf-8"))
    ctx = make_context("bench")
    produced: dict[str, list[bytes]] = {}
    builds: dict[str, float] = {}
    for label, names in (("lab PDF embedded", LAB_PDF), ("PDF rendered by PFI", RENDERED)):
        raws = [(ORU / f"{n}.hl7").read_bytes() for n in names]
        docs = [oru_to_cda(r, mapping, ctx) for r in raws]
        produced[label] = docs
        built, n1 = rate(lambda r: oru_to_cda(r, mapping, ctx), raws)
        base, n2 = rate(lambda d: etree.tostring(etree.fromstring(d)), docs)
        builds[label] = built
        size = sum(map(len, docs)) // len(docs)
        print(
            f"{label:22s} ORU→CDA {built:8.1f} docs/s ({n1} docs, avg {size // 1024} KiB) | "
            f"lxml parse+serialise {base:8.1f} docs/s ({n2}) | ratio {built / base:.3f}"
        )
    bio = builds["PDF rendered by PFI"]
    img_ctx = make_imaging_context("bench")
    for label, names in IMAGING.items():
        raws = [(RIS / f"{n}.hl7").read_bytes() for n in names]
        docs = [ris_to_cda(r, img_ctx) for r in raws]
        produced[label] = docs
        built, n1 = rate(lambda r: ris_to_cda(r, img_ctx), raws)
        base, n2 = rate(lambda d: etree.tostring(etree.fromstring(d)), docs)
        builds[label] = built
        size = sum(map(len, docs)) // len(docs)
        print(
            f"{label:22s} RIS→CDA {built:8.1f} docs/s ({n1} docs, avg {size // 1024} KiB) | "
            f"lxml parse+serialise {base:8.1f} docs/s ({n2}) | ratio {built / base:.3f} | "
            f"vs CR-BIO (PFI PDF) {built / bio:.2f}x"
        )
    if args.no_schematron:
        return
    with tempfile.TemporaryDirectory(prefix="pfi-bench-cda-") as cache:
        started = time.perf_counter()
        validator = CdaValidator(cache_dir=Path(cache))
        startup = time.perf_counter() - started
    print(f"validator start-up (SchXslt + Saxon compile, once per process): {startup:.1f} s")
    for label, docs in produced.items():
        for doc in docs:  # the documents are valid: the schematron figure is a real pass
            report = validator.validate(doc)
            assert report.valid, report.summary()
        xsd, _ = rate(validator.validate_xsd, docs)
        full, n3 = rate(validator.validate, docs, MAX_VALIDATIONS)
        built = builds[label]
        pipeline = 1 / (1 / built + 1 / full)
        print(
            f"{label:22s} XSD only {xsd:8.1f} docs/s | XSD + schematron {full:6.1f} docs/s "
            f"({n3} docs, {1000 / full:.0f} ms/doc) | ORU→valid CDA {pipeline:6.1f} docs/s | "
            f"schematron costs {built / full:.1f}x the build"
        )


if __name__ == "__main__":
    main()
