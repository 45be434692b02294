"""SOAP 1.2 envelopes with WS-Addressing, and SOAP faults, for the DMP web services."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from pfi.transforms.xds import ns
from pfi.transforms.xds.errors import SoapError
from pfi.transforms.xds.mtom import MtomMessage, content_type_params, decode_multipart_related

_S = f"{{{ns.SOAP12}}}"
_A = f"{{{ns.WSA}}}"
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def parse_xml(data: bytes, what: str) -> etree._Element:
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapError(f"{what} is not well-formed XML: {exc}") from exc


def build_envelope(
    *,
    action: str,
    to: str,
    message_id: str,
    body: etree._Element,
    security: etree._Element | None = None,
    relates_to: str | None = None,
) -> etree._Element:
    """soap:Envelope with wsa:Action (mustUnderstand), MessageID, ReplyTo/To, and a body."""
    env = etree.Element(f"{_S}Envelope", nsmap={"soap": ns.SOAP12, "wsa": ns.WSA})
    header = etree.SubElement(env, f"{_S}Header")
    action_el = etree.SubElement(header, f"{_A}Action")
    action_el.set(f"{_S}mustUnderstand", "true")
    action_el.text = action
    etree.SubElement(header, f"{_A}MessageID").text = message_id
    if relates_to:
        etree.SubElement(header, f"{_A}RelatesTo").text = relates_to
    else:
        reply = etree.SubElement(header, f"{_A}ReplyTo")
        etree.SubElement(reply, f"{_A}Address").text = ANONYMOUS
        etree.SubElement(header, f"{_A}To").text = to
    if security is not None:
        header.append(security)
    etree.SubElement(env, f"{_S}Body").append(body)
    return env


@dataclass(frozen=True, slots=True)
class SoapEnvelope:
    header: etree._Element | None
    body_child: etree._Element
    action: str
    message_id: str
    relates_to: str


def parse_envelope(xml: bytes | etree._Element) -> SoapEnvelope:
    env = parse_xml(xml, "the SOAP message") if isinstance(xml, bytes) else xml
    if env.tag != f"{_S}Envelope":
        raise SoapError(f"not a SOAP 1.2 envelope: root element is {env.tag!r}")
    header = env.find(f"{_S}Header")
    body = env.find(f"{_S}Body")
    if body is None:
        raise SoapError("SOAP envelope without soap:Body")
    children = [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1:
        raise SoapError(f"soap:Body must hold exactly one element, found {len(children)}")

    def header_text(tag: str) -> str:
        if header is None:
            return ""
        el = header.find(f"{_A}{tag}")
        return (el.text or "").strip() if el is not None else ""

    return SoapEnvelope(
        header=header,
        body_child=children[0],
        action=header_text("Action"),
        message_id=header_text("MessageID"),
        relates_to=header_text("RelatesTo"),
    )


@dataclass(frozen=True, slots=True)
class SoapFault:
    """A SOAP 1.2 fault: code Sender (the request is wrong) or Receiver (the server failed)."""

    code: str
    subcodes: tuple[str, ...]
    reason: str

    @property
    def is_sender(self) -> bool:
        return self.code.endswith("Sender")


def render_fault(
    code: str, reason: str, subcodes: Sequence[str] = (), *, relates_to: str = ""
) -> bytes:
    """A complete SOAP 1.2 envelope holding one fault (code: 'Sender' or 'Receiver')."""
    fault = etree.Element(f"{_S}Fault", nsmap={"soap": ns.SOAP12})
    code_el = etree.SubElement(fault, f"{_S}Code")
    etree.SubElement(code_el, f"{_S}Value").text = f"soap:{code}"
    parent = code_el
    for sub in subcodes:
        sub_el = etree.SubElement(parent, f"{_S}Subcode")
        etree.SubElement(sub_el, f"{_S}Value").text = sub
        parent = sub_el
    reason_el = etree.SubElement(fault, f"{_S}Reason")
    text = etree.SubElement(reason_el, f"{_S}Text")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = reason
    env = build_envelope(
        action="http://www.w3.org/2005/08/addressing/soap/fault",
        to=ANONYMOUS,
        message_id=f"urn:uuid:{uuid.uuid4()}",
        body=fault,
        relates_to=relates_to,
    )
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def parse_fault(el: etree._Element) -> SoapFault:
    value = el.find(f"{_S}Code/{_S}Value")
    code = (value.text or "").strip() if value is not None else ""
    subcodes = []
    for sub in el.iter(f"{_S}Subcode"):
        sub_value = sub.find(f"{_S}Value")
        if sub_value is not None:
            subcodes.append((sub_value.text or "").strip())
    reason = el.find(f"{_S}Reason/{_S}Text")
    return SoapFault(
        code.split(":")[-1],
        tuple(subcodes),
        (reason.text or "").strip() if reason is not None else "",
    )


def soap_root(body: bytes, content_type: str) -> tuple[etree._Element, MtomMessage | None]:
    """The SOAP envelope element of an HTTP body, MTOM or plain `application/soap+xml`."""
    media, _ = content_type_params(content_type or "application/soap+xml")
    if media == "multipart/related":
        message = decode_multipart_related(body, content_type)
        return parse_xml(message.root.data, "the SOAP root MIME part"), message
    if media not in ("application/soap+xml", "text/xml", "application/xml"):
        raise SoapError(f"unexpected Content-Type {media!r} for a SOAP 1.2 message")
    return parse_xml(body, "the SOAP message"), None
