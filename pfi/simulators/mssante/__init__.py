"""Strict MSSanté stand-in: SMTP relay that checks XDM messages, bounces and auto-replies,
an IMAP store for the application mailbox, and HTTP inspection/control."""

from pfi.simulators.mssante.server import MssSimulator, SimulatorTls

__all__ = ["MssSimulator", "SimulatorTls"]
