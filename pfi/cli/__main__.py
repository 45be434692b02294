"""`python -m pfi.cli` (what the tests run, so they use this interpreter's package)."""

from pfi.cli import main

main()
