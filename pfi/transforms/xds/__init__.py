"""IHE XDS.b for the DMP: metadata from CDA, ebRIM, SOAP/MTOM, VIHF, XAdES, responses.

Everything here is pure: the adapter in `pfi.adapters.dmp` sends what these functions build
and hands back the bytes it received; the DMP simulator parses with the same code.
"""
