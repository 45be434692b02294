"""IHE_XDM.zip: layout, metadata pointing at the CDA, action C/D, and the checker failing."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from lxml import etree

from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.cda_header import read_cda_header
from pfi.transforms.mssante.xdm import XdmSender, build_xdm_zip
from pfi.transforms.mssante.xdm_read import RNS, XdmError, check_xdm_zip, read_xdm_zip
from tests.support.mss import cr_bio, submission

SENDER = XdmSender("Hôpital de test", "pfi@hopital.mssante.fr", "PFI", "0.1")


def _rezip(data: bytes, change: dict[str, bytes | None]) -> bytes:
    """The same archive with entries replaced (bytes) or removed (None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name in change:
                if change[name] is not None:
                    dst.writestr(name, change[name])
            else:
                dst.writestr(name, src.read(name))
    return out.getvalue()


def test_package_has_the_ihe_xdm_layout_and_metadata_names_the_cda():
    cda = cr_bio()
    data = build_xdm_zip(cda, submission(), SENDER)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == [
            "IHE_XDM/SUBSET01/DOC0001.XML",
            "IHE_XDM/SUBSET01/METADATA.XML",
            "INDEX.HTM",
            "README.TXT",
        ]
        assert zf.read("IHE_XDM/SUBSET01/DOC0001.XML") == cda
        readme = zf.read("README.TXT").decode()
        index = zf.read("INDEX.HTM").decode()
        metadata = etree.fromstring(zf.read("IHE_XDM/SUBSET01/METADATA.XML"))
    assert "Hôpital de test" in readme and "pfi@hopital.mssante.fr" in readme
    assert 'href="IHE_XDM/SUBSET01/DOC0001.XML"' in index
    assert metadata.tag == "{urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0}SubmitObjectsRequest"
    entry = metadata.find(".//rim:ExtrinsicObject", RNS)
    slots = {
        s.get("name"): s.findtext("rim:ValueList/rim:Value", namespaces=RNS)
        for s in entry.findall("rim:Slot", RNS)
    }
    assert slots["URI"] == "DOC0001.XML"
    assert slots["hash"] == hashlib.sha1(cda).hexdigest()
    assert slots["size"] == str(len(cda))
    assert "action" not in slots
    assert check_xdm_zip(data) == []
    package = read_xdm_zip(data)
    assert package.documents[0].unique_id == str(read_cda_header(cda).id)
    assert package.documents[0].patient_id.startswith("279035121518989^^^")


@pytest.mark.parametrize(
    ("action", "code"), [(DocumentAction.REPLACE, "C"), (DocumentAction.DELETE, "D")]
)
def test_replacement_and_deletion_carry_the_action_extra_metadata(action, code):
    data = build_xdm_zip(cr_bio(), submission(), SENDER, action=action)
    assert read_xdm_zip(data).documents[0].action == code


def test_entry_given_for_other_bytes_is_refused():
    from pfi.transforms.xds.metadata import document_entry_from_cda

    ctx = submission()
    entry = document_entry_from_cda(cr_bio(), ctx)
    with pytest.raises(ValueError, match="hash or size"):
        build_xdm_zip(cr_bio() + b"\n", ctx, SENDER, entry=entry)


def test_zip_is_reproducible_for_the_same_input():
    ctx = submission()
    assert build_xdm_zip(cr_bio(), ctx, SENDER) == build_xdm_zip(cr_bio(), ctx, SENDER)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"README.TXT": None}, "README.TXT missing"),
        ({"IHE_XDM/SUBSET01/METADATA.XML": b"<not-closed>"}, "not well-formed"),
        ({"IHE_XDM/SUBSET01/DOC0001.XML": None}, "not in the archive"),
        ({"IHE_XDM/SUBSET01/DOC0001.XML": b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"}, "hash"),
        ({"IHE_XDM/SUBSET01/DOC0001.XML": b"<html/>"}, "size slot"),
    ],
)
def test_checker_names_what_is_broken(change, expected):
    broken = _rezip(build_xdm_zip(cr_bio(), submission(), SENDER), change)
    problems = check_xdm_zip(broken)
    assert any(expected in p for p in problems), problems
    with pytest.raises(XdmError):
        read_xdm_zip(broken)


def test_checker_refuses_a_document_that_is_not_a_cda():
    good = build_xdm_zip(cr_bio(), submission(), SENDER)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        metadata = zf.read("IHE_XDM/SUBSET01/METADATA.XML")
    not_cda = b"<report>hello</report>"
    sha = hashlib.sha1(cr_bio()).hexdigest().encode()
    metadata = metadata.replace(sha, hashlib.sha1(not_cda).hexdigest().encode())
    metadata = metadata.replace(f">{len(cr_bio())}<".encode(), f">{len(not_cda)}<".encode())
    broken = _rezip(
        good,
        {"IHE_XDM/SUBSET01/DOC0001.XML": not_cda, "IHE_XDM/SUBSET01/METADATA.XML": metadata},
    )
    assert any("ClinicalDocument" in p for p in check_xdm_zip(broken))


def test_checker_refuses_what_is_not_a_zip():
    assert check_xdm_zip(b"PK\x03\x04 truncated") == [
        "attachment is not a zip archive (File is not a zip file)"
    ]
