"""ORU → CDA level 3 documents per second on one core, against lxml parse+serialise.

Two paths: the lab sends its PDF (OBX ED, embedded as is) and PFI renders the PDF
(reportlab). Baseline: lxml parsing and serialising the very documents produced, in the
same run. Each loop is bounded in count and time.
Run: .venv/bin/python bench/cda.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.transforms.cda.cr_bio import build_cr_bio  # noqa: E402
from pfi.transforms.hl7 import parse_message  # noqa: E402
from pfi.transforms.lab import LoincMapping, build_lab_report, transcode  # noqa: E402
from tests.conftest import make_context  # noqa: E402

ORU = ROOT / "tests/fixtures/hl7/oru"
LAB_PDF = ["07_embedded_lab_pdf"]
RENDERED = ["01_numeric_biochemistry", "02_hematology_blood_count", "06_microbiology_two_specimens",
            "22_multi_chapter", "05_structured_numeric"]  # fmt: skip
MAX_SECONDS = 5.0
MAX_DOCS = 20_000


def oru_to_cda(raw: bytes, mapping: LoincMapping, ctx) -> bytes:
    report = transcode(build_lab_report(parse_message(raw)), mapping, "keep_local").report
    return build_cr_bio(report, ctx)


def rate(fn, inputs: list) -> tuple[float, int]:
    n, start = 0, time.perf_counter()
    while n < MAX_DOCS and time.perf_counter() - start < MAX_SECONDS:
        fn(inputs[n % len(inputs)])
        n += 1
    return n / (time.perf_counter() - start), n


def main() -> None:
    mapping = LoincMapping.from_csv((ROOT / "config/loinc/SGL.csv").read_text("utf-8"))
    ctx = make_context("bench")
    for label, names in (("lab PDF embedded", LAB_PDF), ("PDF rendered by PFI", RENDERED)):
        raws = [(ORU / f"{n}.hl7").read_bytes() for n in names]
        docs = [oru_to_cda(r, mapping, ctx) for r in raws]
        built, n1 = rate(lambda r: oru_to_cda(r, mapping, ctx), raws)
        base, n2 = rate(lambda d: etree.tostring(etree.fromstring(d)), docs)
        size = sum(map(len, docs)) // len(docs)
        print(
            f"{label:22s} ORU→CDA {built:8.1f} docs/s ({n1} docs, avg {size // 1024} KiB) | "
            f"lxml parse+serialise {base:8.1f} docs/s ({n2}) | ratio {built / base:.3f}"
        )


if __name__ == "__main__":
    main()
