"""PFI's rewrite of the SchXslt output: preloaded documents, unverifiable checks."""

from __future__ import annotations

from lxml import etree

from pfi.transforms.cda.findings import Severity
from pfi.transforms.cda.schematron import (
    UNVERIFIABLE_ATTR,
    findings_from_svrl,
    readable_location,
    rewrite_document_calls,
)

XSL = "http://www.w3.org/1999/XSL/Transform"
SVRL = "http://purl.oclc.org/dsdl/svrl"
GENERATED = f"""<xsl:transform xmlns:xsl="{XSL}" xmlns:svrl="{SVRL}" version="2.0">
  <xsl:variable name="jdv_present" select="'../jeuxDeValeurs/A.xml'"/>
  <xsl:variable name="jdv_absent" select="'../jeuxDeValeurs/B.xml'"/>
  <xsl:template match="x">
    <xsl:if test="not(document($jdv_present)//code[@v = current()/@v])">
      <svrl:failed-assert location="here"><svrl:text>present</svrl:text></svrl:failed-assert>
    </xsl:if>
    <xsl:if test="not(document($jdv_absent)//code[@v = current()/@v])">
      <svrl:failed-assert location="here"><svrl:text>absent</svrl:text></svrl:failed-assert>
    </xsl:if>
    <xsl:if test="not(doc-available(concat('../t/', @cs, '.rdf')))">
      <svrl:failed-assert location="here"><svrl:text>dynamic</svrl:text></svrl:failed-assert>
    </xsl:if>
    <xsl:value-of select="$document"/>
  </xsl:template>
</xsl:transform>"""
AVAILABLE = frozenset({"ci-sis:/TestContenuCDA-3.0/jeuxDeValeurs/A.xml"})


def rewritten() -> etree._Element:
    result = rewrite_document_calls(GENERATED, "schematrons/CI-SIS_X.sch", AVAILABLE)
    assert result.redirected_calls == 3
    assert result.unverifiable == {"jeuxDeValeurs/B.xml": 1}
    assert result.dynamic_calls == 0
    return etree.fromstring(result.xslt.encode())


def test_document_calls_go_to_the_preloaded_map() -> None:
    tests = [el.get("test") for el in rewritten().iter(f"{{{XSL}}}if")]
    assert tests[0].startswith("not(Q{urn:pfi:cda-validation}document($jdv_present)")
    assert tests[2].startswith("not(Q{urn:pfi:cda-validation}doc-available(concat(")
    assert all("(document(" not in t and " doc(" not in t for t in tests)


def test_variables_named_document_are_left_alone() -> None:
    selects = [el.get("select") for el in rewritten().iter(f"{{{XSL}}}value-of")]
    assert selects == ["$document"]


def test_only_checks_reading_a_missing_file_are_tagged() -> None:
    asserts = list(rewritten().iter(f"{{{SVRL}}}failed-assert"))
    assert [a.get(UNVERIFIABLE_ATTR) for a in asserts] == [None, "jeuxDeValeurs/B.xml", None]


def test_relative_paths_resolve_against_the_schematron_in_the_kit() -> None:
    root = rewritten()
    base = [el for el in root if el.get("name") == "pfi:base"]
    assert base[0].get("select") == "'ci-sis:/TestContenuCDA-3.0/schematrons/CI-SIS_X.sch'"


def test_svrl_findings_carry_severity_rule_and_unverifiable_data() -> None:
    svrl = f"""<svrl:schematron-output xmlns:svrl="{SVRL}">
      <svrl:active-pattern id="Entete"/>
      <svrl:fired-rule id="r1" context="x"/>
      <svrl:failed-assert location="/Q{{urn:hl7-org:v3}}ClinicalDocument[1]">
        <svrl:text>  [Entete] setId
           obligatoire </svrl:text></svrl:failed-assert>
      <svrl:failed-assert id="a2" role="warning" location="/x[1]">
        <svrl:text>w</svrl:text></svrl:failed-assert>
      <svrl:successful-report location="/x[1]" {UNVERIFIABLE_ATTR}="jeuxDeValeurs/B.xml">
        <svrl:text>r</svrl:text></svrl:successful-report>
    </svrl:schematron-output>"""
    first, second, third = findings_from_svrl(svrl, "X.sch")
    assert (first.severity, first.rule_id, first.message) == (
        Severity.ERROR,
        "r1",
        "[Entete] setId obligatoire",
    )
    assert first.location == "/cda:ClinicalDocument[1]"
    assert (second.severity, second.rule_id) == (Severity.WARNING, "a2")
    assert third.severity is Severity.WARNING
    assert third.unverifiable == "jeuxDeValeurs/B.xml"
    assert third.message.startswith("not verifiable: the kit lacks jeuxDeValeurs/B.xml")


def test_locations_use_the_cda_prefix() -> None:
    assert (
        readable_location("/Q{urn:hl7-org:v3}a[1]/Q{urn:x}b[2]/@Q{}code")
        == "/cda:a[1]/Q{urn:x}b[2]/@code"
    )
