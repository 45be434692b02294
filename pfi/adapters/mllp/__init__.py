"""MLLP (Minimal Lower Layer Protocol): HL7 v2 over TCP, framed 0x0B ... 0x1C 0x0D."""

from pfi.adapters.mllp.client import MllpClient, MllpError
from pfi.adapters.mllp.framing import END, START, Frame, MllpFrameReader, frame

__all__ = ["END", "START", "Frame", "MllpClient", "MllpError", "MllpFrameReader", "frame"]
