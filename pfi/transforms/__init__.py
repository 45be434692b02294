"""Pure transformations: bytes or models in, bytes or models out, no I/O.

HL7 v2 reading and writing, the lab/imaging report models, CDA building, PDF rendering,
XDM packaging. Anything here can be called from a test, a benchmark or a stage alike.
"""
