"""Reading and checking an IHE XDM package (ITI-32, "ZIP over e-mail").

Both ends need this: the inbound side opens the IHE_XDM.zip a correspondent sent, and the
MSSanté simulator refuses a package a real receiver could not open. Every problem found is
reported (not only the first), each naming the entry of the zip it is about.

Layout (ITI TF-3 4.2.3.x / ITI-32): ``INDEX.HTM`` and ``README.TXT`` at the root,
``IHE_XDM/SUBSETnn/METADATA.XML`` (an ebRIM 3.0 lcm:SubmitObjectsRequest) and the
documents of that subset next to it, each DocumentEntry naming its file in the ``URI``
slot and, when given, its ``size`` and SHA-1 ``hash``.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field

from lxml import etree

from pfi.transforms.mssante.cda_header import SAFE_PARSER, CdaError, parse_cda, read_cda_header

LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RNS = {"rim": RIM, "lcm": LCM}
#: XDS identification and classification schemes used here (ITI TF-3 table 4.2.5-1).
DOC_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
DOC_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SUBSET_DIR = re.compile(r"^IHE_XDM/(SUBSET\d{2,})/", re.IGNORECASE)
MAX_UNZIPPED = 200 * 1024 * 1024  # refuse zip bombs: a report is a few MB at most


class XdmError(ValueError):
    """The package cannot be used; `problems` lists every reason found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class XdmDocument:
    path: str  # path inside the zip
    content: bytes
    mime_type: str = ""
    unique_id: str = ""
    patient_id: str = ""
    action: str = ""  # extra metadata "action": C (replace), D (delete), '' (new)
    confidentiality_codes: tuple[str, ...] = ()
    entry_uuid: str = ""


@dataclass(frozen=True, slots=True)
class XdmPackage:
    subset: str
    metadata_xml: bytes
    documents: tuple[XdmDocument, ...]
    files: tuple[str, ...] = field(default=())


def read_xdm_zip(data: bytes, *, check_cda: bool = True) -> XdmPackage:
    """Open and check the package; raise `XdmError` with every problem found."""
    problems: list[str] = []
    package = _read(data, problems, check_cda)
    if problems or package is None:
        raise XdmError(problems or ["not an XDM package"])
    return package


def check_xdm_zip(data: bytes) -> list[str]:
    """Every problem a strict receiver finds in the package ([] when it is sound)."""
    problems: list[str] = []
    _read(data, problems, check_cda=True)
    return problems


def _read(data: bytes, problems: list[str], check_cda: bool) -> XdmPackage | None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        problems.append(f"attachment is not a zip archive ({exc})")
        return None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        names = [i.filename for i in infos]
        unsafe = {n for n in names if n.startswith("/") or ".." in n.split("/") or "\\" in n}
        problems.extend(f"{n}: unsafe path in the archive" for n in sorted(unsafe))
        if sum(i.file_size for i in infos) > MAX_UNZIPPED:
            problems.append(f"archive unpacks to more than {MAX_UNZIPPED} bytes")
            return None
        for required in ("INDEX.HTM", "README.TXT"):
            if required not in names:
                problems.append(f"{required} missing at the root of the archive")
        subsets = sorted({m.group(1) for n in names if (m := SUBSET_DIR.match(n))})
        if not subsets:
            problems.append("no IHE_XDM/SUBSETnn/ folder in the archive")
            return None
        subset = subsets[0]
        meta_name = f"IHE_XDM/{subset}/METADATA.XML"
        if meta_name not in names:
            problems.append(f"{meta_name} missing")
            return None
        try:
            files = {n: zf.read(n) for n in names if n not in unsafe}
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            problems.append(f"archive cannot be read: {exc}")
            return None
    metadata = files[meta_name]
    documents = _documents(metadata, meta_name, subset, files, problems, check_cda)
    return XdmPackage(subset, metadata, tuple(documents), tuple(names))


def _documents(
    metadata: bytes,
    meta_name: str,
    subset: str,
    files: dict[str, bytes],
    problems: list[str],
    check_cda: bool,
) -> list[XdmDocument]:
    try:
        root = etree.fromstring(metadata, SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        problems.append(f"{meta_name}: not well-formed XML ({exc})")
        return []
    if root.tag != f"{{{LCM}}}SubmitObjectsRequest":
        problems.append(f"{meta_name}: root is {root.tag!r}, expected lcm:SubmitObjectsRequest")
        return []
    packages = root.findall(".//rim:RegistryPackage", RNS)
    if not any(
        c.get("classificationNode") == SUBMISSION_SET_NODE
        for c in root.findall(".//rim:Classification", RNS)
    ):
        problems.append(f"{meta_name}: no submission set (RegistryPackage classified as one)")
    elif not packages:
        problems.append(f"{meta_name}: no RegistryPackage")
    submission_action = _slot(packages[0], "action") if packages else ""
    entries = root.findall(".//rim:ExtrinsicObject", RNS)
    if not entries:
        problems.append(f"{meta_name}: no DocumentEntry (rim:ExtrinsicObject)")
    documents = []
    for eo in entries:
        entry_id = eo.get("id", "?")
        where = f"{meta_name} DocumentEntry {entry_id}"
        uri = _slot(eo, "URI")
        if not uri:
            problems.append(f"{where}: no URI slot naming the document file")
            continue
        path = f"IHE_XDM/{subset}/{uri}"
        content = files.get(path)
        if content is None:
            problems.append(f"{where}: URI {uri!r} names {path}, which is not in the archive")
            continue
        size = _slot(eo, "size")
        if size and size != str(len(content)):
            problems.append(f"{where}: size slot {size} but {path} has {len(content)} bytes")
        digest = _slot(eo, "hash")
        if digest and digest.lower() != hashlib.sha1(content).hexdigest():
            problems.append(f"{where}: hash slot does not match the SHA-1 of {path}")
        unique_id = _external_id(eo, DOC_UNIQUE_ID)
        mime = eo.get("mimeType", "")
        if check_cda and mime in ("text/xml", "application/xml", ""):
            _check_cda(content, path, unique_id, problems)
        documents.append(
            XdmDocument(
                path=path,
                content=content,
                mime_type=mime,
                unique_id=unique_id,
                patient_id=_external_id(eo, DOC_PATIENT_ID),
                action=(_slot(eo, "action") or submission_action).upper(),
                confidentiality_codes=tuple(
                    c.get("nodeRepresentation", "")
                    for c in eo.findall("rim:Classification", RNS)
                    if c.get("classificationScheme") == CONFIDENTIALITY
                ),
                entry_uuid=entry_id,
            )
        )
    return documents


def _check_cda(content: bytes, path: str, unique_id: str, problems: list[str]) -> None:
    try:
        header = read_cda_header(parse_cda(content))
    except CdaError as exc:
        problems.append(f"{path}: {exc}")
        return
    cda_id = str(header.id)
    if unique_id and unique_id != cda_id:
        problems.append(
            f"{path}: DocumentEntry uniqueId {unique_id!r} is not the CDA id {cda_id!r}"
        )


def _slot(el: etree._Element, name: str) -> str:
    """First value of the slot `name` (case-insensitive; 'x:action' matches 'action')."""
    wanted = name.lower()
    for slot in el.findall("rim:Slot", RNS):
        slot_name = (slot.get("name") or "").lower()
        if slot_name == wanted or slot_name.rsplit(":", 1)[-1] == wanted:
            value = slot.find("rim:ValueList/rim:Value", RNS)
            return (value.text or "").strip() if value is not None else ""
    return ""


def _external_id(el: etree._Element, scheme: str) -> str:
    for ext in el.findall("rim:ExternalIdentifier", RNS):
        if ext.get("identificationScheme") == scheme:
            return (ext.get("value") or "").strip()
    return ""
