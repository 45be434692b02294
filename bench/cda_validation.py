"""What CDA validation costs: start-up (cold and warm cache) and documents/s on one core.

Baseline, measured in the same run on the same document: lxml parse + serialise (the
least any stage does with a CDA). Figures: XSD only, then XSD + CI-SIS schematrons.

Run: `.venv/bin/python bench/cda_validation.py [EXAMPLE.xml]` (default: an official
CR-BIO 2024.01 example). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from pfi.transforms.cda.validation import CdaValidator

EXAMPLE = (
    Path(__file__).resolve().parents[1]
    / "tests/fixtures/ci-sis/TestContenuCDA-3.0/ExemplesCDA/BIO-CR-BIO_2024.01_TSH_1.xml"
)
MAX_ROUNDS = 2000
MAX_SECONDS = 10.0
WARMUP = 3


def rate(work: Callable[[], object]) -> tuple[float, int]:
    """Documents per second of `work`, after a warm-up; bounded in rounds and seconds."""
    for _ in range(WARMUP):
        work()
    rounds = 0
    started = time.perf_counter()
    while rounds < MAX_ROUNDS and time.perf_counter() - started < MAX_SECONDS:
        work()
        rounds += 1
    return rounds / (time.perf_counter() - started), rounds


def main() -> None:
    example = Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLE
    document = example.read_bytes()
    print(f"document: {example.name} ({len(document) / 1024:.0f} KiB)")

    with tempfile.TemporaryDirectory(prefix="pfi-cda-cache-") as cache:
        started = time.perf_counter()
        CdaValidator(cache_dir=Path(cache))
        cold = time.perf_counter() - started
        started = time.perf_counter()
        validator = CdaValidator(cache_dir=Path(cache))
        warm = time.perf_counter() - started
    assert validator.startup.all_from_cache
    slowest = max(validator.startup.schematrons, key=lambda s: s.compile_seconds)
    print(f"start-up, cold cache (SchXslt + Saxon compile): {cold:6.1f} s")
    print(f"start-up, warm cache (Saxon compile only):      {warm:6.1f} s")
    print(f"  of which {slowest.schematron.rsplit('/', 1)[-1]}: {slowest.compile_seconds:.1f} s")

    report = validator.validate(document)
    print(f"verdict: {report.summary()}")

    baseline, n_base = rate(lambda: etree.tostring(etree.fromstring(document)))
    xsd, n_xsd = rate(lambda: validator.validate_xsd(document))
    full, n_full = rate(lambda: validator.validate(document))
    print(f"lxml parse+serialise (baseline): {baseline:9.1f} docs/s ({n_base} rounds)")
    print(
        f"XSD only:                        {xsd:9.1f} docs/s ({n_xsd} rounds)"
        f"  = {baseline / xsd:6.1f}x the baseline's time"
    )
    print(
        f"XSD + schematrons:               {full:9.1f} docs/s ({n_full} rounds)"
        f"  = {baseline / full:6.1f}x the baseline's time, {1000 / full:.0f} ms/doc"
    )


if __name__ == "__main__":
    main()
