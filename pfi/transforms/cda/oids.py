"""OIDs and code systems the CI-SIS documents use (values from the CI-SIS kit and IG pages)."""

from __future__ import annotations

HL7_NS = "urn:hl7-org:v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
LAB_NS = "urn:oid:1.3.6.1.4.1.19376.1.3.2"
DICOM_NS = "urn:dicom-org:ps3-20"

#: INS-NIR, INS-NIA and their test counterparts (annexe INS du CI-SIS).
INS_NIR = "1.2.250.1.213.1.4.8"
INS_NIA = "1.2.250.1.213.1.4.9"
INS_NIR_TEST = "1.2.250.1.213.1.4.10"
INS_NIA_TEST = "1.2.250.1.213.1.4.11"
INS_OIDS = frozenset({INS_NIR, INS_NIA, INS_NIR_TEST, INS_NIA_TEST})

#: RPPS / ADELI professionals (national person identifier) and structures (FINESS, SIRET).
PERSON_ID_ROOT = "1.2.250.1.71.4.2.1"
STRUCTURE_ID_ROOT = "1.2.250.1.71.4.2.2"

LOINC = "2.16.840.1.113883.6.1"
UCUM = "2.16.840.1.113883.6.8"
SNOMED_CT = "2.16.840.1.113883.6.96"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
ADMINISTRATIVE_GENDER = "2.16.840.1.113883.5.1"
OBSERVATION_INTERPRETATION = "2.16.840.1.113883.5.83"
SPECIMEN_TYPE = "2.16.840.1.113883.18.311"
ACT_CODE = "2.16.840.1.113883.5.4"
PROFESSION_SPECIALITY = "1.2.250.1.213.1.1.4.5"
PRACTICE_SETTING = "1.2.250.1.213.1.1.4.9"
HEALTHCARE_FACILITY_TYPE = "1.2.250.1.71.4.2.4"
IHE_ACT_CODE = "1.3.5.1.4.1.19376.1.5.3.2"
DCM = "1.2.840.10008.2.16.4"

#: HL7 v2 coding system names (table 0396) that mean LOINC.
LOINC_NAMES = frozenset({"LN", "LOINC", LOINC})
