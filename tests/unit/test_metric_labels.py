"""Label values stay bounded whatever the senders put in their messages."""

import pytest

from pfi.observability.labels import (
    OTHER,
    ack_code_label,
    certificate_label,
    document_type_label,
    message_type_label,
    snake_label,
    source_label,
)


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("ORU^R01", "ORU^R01"),
        ("oru^r01^ORU_R01", "ORU^R01"),
        (" ADT^A08 ", "ADT^A08"),
        ("ORU_R01", "ORU^R01"),
        ("MDM^T02^MDM_T02", "MDM^T02"),
        ("ADT", "ADT"),
        ("ADT^", "ADT"),
        ("ZAM^Z01", "ZAM^Z01"),
    ],
)
def test_message_type_is_normalised_to_code_and_event(raw, label):
    assert message_type_label(raw) == label


@pytest.mark.parametrize(
    "raw",
    [
        "",
        None,
        "XYZ^A01",  # not an HL7 table 0076 code
        "ORU^R0",  # malformed event
        "ORU^RR1",
        "ORU^R01X",
        "PATIENT-12345",
        "ORU^R01'; DROP TABLE",
        "12345678",
    ],
)
def test_unknown_or_invalid_message_type_collapses_to_other(raw):
    assert message_type_label(raw) == OTHER


def test_ack_codes_outside_msa1_collapse_to_other():
    assert [ack_code_label(c) for c in ("AA", "ae", " AR ", "CA", "XX", None)] == [
        "AA",
        "AE",
        "AR",
        "CA",
        OTHER,
        OTHER,
    ]


def test_names_that_could_carry_identifiers_collapse_to_other():
    assert source_label("SGL") == "SGL"
    assert source_label("1.2.250.1.71.4.2.2^MSG00042") == OTHER
    assert snake_label("delivery_dmp") == "delivery_dmp"
    assert snake_label("patient 123") == OTHER
    assert document_type_label("CR-BIO") == "CR-BIO"
    assert document_type_label("urn:oid:1.2.250.1.213.1.1.1.1") == OTHER
    assert certificate_label("dmp_auth") == "dmp_auth"
    assert certificate_label("CN=Dr Martin, O=Hospital") == OTHER
