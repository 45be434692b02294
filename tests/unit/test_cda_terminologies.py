"""Which codes the kit can check, and one warning per code system it cannot."""

from __future__ import annotations

from lxml import etree

from pfi.transforms.cda.findings import Severity
from pfi.transforms.cda.kit import TERMINOLOGY_INDEX
from pfi.transforms.cda.terminologies import TerminologyCoverage

DOC = b"""<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <code code="11502-2" codeSystem="2.16.840.1.113883.6.1"/>
  <component><observation>
    <code code="3016-3" codeSystem="2.16.840.1.113883.6.1"/>
    <value xsi:type="CD" code="B97.7" codeSystem="2.16.840.1.113883.6.3"/>
    <value xsi:type="PQ" value="1" unit="mg"/>
    <interpretationCode code="N" codeSystem="2.16.840.1.113883.5.83"/>
    <methodCode code="X" codeSystem="2.16.840.1.113883.6.96"/>
  </observation></component>
</ClinicalDocument>"""


def coverage(rdf_files: list[str]) -> TerminologyCoverage:
    return TerminologyCoverage.from_index(TERMINOLOGY_INDEX.read_text(encoding="utf-8"), rdf_files)


def test_the_kit_index_lists_loinc_snomed_and_ucum() -> None:
    names = coverage([]).names
    assert names["2.16.840.1.113883.6.1"] == "LOINC"
    assert names["2.16.840.1.113883.6.96"] == "SNOMED CT"
    assert names["2.16.840.1.113883.6.8"] == "UCUM"


def test_one_warning_per_code_system_in_the_terminology_rule_contexts() -> None:
    findings = coverage(["2.16.840.1.113883.6.8.xml"]).unverifiable_codes(
        etree.ElementTree(etree.fromstring(DOC))
    )
    by_file = {f.unverifiable: f for f in findings}
    # methodCode is not a context of is-code-exist: SNOMED CT is not reported here.
    assert set(by_file) == {"2.16.840.1.113883.6.1.rdf", "2.16.840.1.113883.6.3.rdf"}
    loinc = by_file["2.16.840.1.113883.6.1.rdf"]
    assert loinc.severity is Severity.WARNING
    assert "2 code(s) of LOINC" in loinc.message and "11502-2, 3016-3" in loinc.message
    assert loinc.location == "/cda:ClinicalDocument[1]/cda:code[1]"
    assert "left out of the kit copy for size" in by_file["2.16.840.1.113883.6.3.rdf"].message


def test_a_code_system_whose_file_is_present_is_not_reported() -> None:
    findings = coverage(["2.16.840.1.113883.6.1.rdf"]).unverifiable_codes(
        etree.ElementTree(etree.fromstring(DOC))
    )
    assert [f.unverifiable for f in findings] == ["2.16.840.1.113883.6.3.rdf"]
