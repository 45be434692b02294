"""MSSanté mail, pure side: XDM packages, messages, delivery reports, inbound documents,
the annuaire extract. See docs/MSSANTE.md for the rules each module follows."""

from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.annuaire import AnnuaireEntry, MssMailbox, parse_annuaire
from pfi.transforms.mssante.inbound import (
    InboundDocument,
    InboundRejection,
    read_inbound_document,
    read_inbound_documents,
)
from pfi.transforms.mssante.message import (
    Audience,
    MssDocument,
    MssOptions,
    MssPatient,
    MssSender,
    build_mss_message,
    mss_subject,
)
from pfi.transforms.mssante.notifications import DsnRecipient, build_dsn, build_mdn
from pfi.transforms.mssante.reports import (
    DeliveryReport,
    RecipientReport,
    RecipientStatus,
    ReportKind,
    parse_delivery_report,
)
from pfi.transforms.mssante.xdm import XdmSender, build_xdm_zip
from pfi.transforms.mssante.xdm_read import XdmError, check_xdm_zip, read_xdm_zip

__all__ = [
    "AnnuaireEntry",
    "Audience",
    "DeliveryReport",
    "DocumentAction",
    "DsnRecipient",
    "InboundDocument",
    "InboundRejection",
    "MssDocument",
    "MssMailbox",
    "MssOptions",
    "MssPatient",
    "MssSender",
    "RecipientReport",
    "RecipientStatus",
    "ReportKind",
    "XdmError",
    "XdmSender",
    "build_dsn",
    "build_mdn",
    "build_mss_message",
    "build_xdm_zip",
    "check_xdm_zip",
    "mss_subject",
    "parse_annuaire",
    "parse_delivery_report",
    "read_inbound_document",
    "read_inbound_documents",
    "read_xdm_zip",
]
