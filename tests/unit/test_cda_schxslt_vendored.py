"""The vendored SchXslt files are the unmodified 1.10.1 release (checksums in SOURCES.md)."""

from __future__ import annotations

import hashlib
import re

from pfi.transforms.cda.kit import SCHXSLT_DIR

ROW = re.compile(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", re.M)


def test_vendored_schxslt_files_match_their_recorded_checksums() -> None:
    recorded = dict(ROW.findall((SCHXSLT_DIR / "SOURCES.md").read_text(encoding="utf-8")))
    assert len(recorded) == 13
    for name, digest in recorded.items():
        assert hashlib.sha256((SCHXSLT_DIR / name).read_bytes()).hexdigest() == digest, name
    shipped = {p.relative_to(SCHXSLT_DIR).as_posix() for p in SCHXSLT_DIR.rglob("*.xsl")}
    assert shipped <= set(recorded)
