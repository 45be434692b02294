"""`pfi run` enables Prometheus multiprocess mode before any metric exists; a command
module that creates metrics at import time would make the engine refuse to start."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_creates_no_metric() -> None:
    code = (
        "import sys, pfi.cli.app; "
        "print(sorted(m for m in sys.modules if m.startswith('pfi.observability.metrics')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
