"""routes.yaml: a good file reads as written; every mistake names file, line, key and what
was expected, like the rest of the configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pfi.config import ConfigError
from pfi.routes import Action, DocumentKind, HoldKind, Routes, load_routes
from pfi.routes.model import DEFAULT_MAIL_BODIES
from tests.unit.routes.builders import SHIPPED_ROUTES_PATH

SOURCES = ("DPI", "SGL", "RIS")

GOOD = """\
defaults:
  dmp_always_for: CR-BIO
  restricted_confidentiality: send
  replacement_to_earlier_recipients: false
  acks: {reception: true}
  mail_bodies:
    deletion: {ps: "Document retiré."}

routes:
  - name: genetics retained
    description: released by the geneticist
    from: {source: SGL, document: CR-BIO, code: [51969-4, 94500-6]}
    when: {action: [initial, replacement], confidentiality: N, ins_qualified: true}
    hold: {kind: retain, released_by: geneticist release}
    to:
      - dmp: {masque_ps: false, invisible_rep_legaux: true}
      - mss_prescriber: {always: true}
      - mss_address: {address: Genetique@CHU-X.mssante.fr}
      - mss_patient: {no_reply: true}
    acks: {read: true}
    mail_bodies:
      initial: {ps: "Résultat de génétique."}

  - name: imaging
    from: {source: [RIS, DPI], document: CR-IMG}
    when: {sender_metadata: false, invisible_patient: false}
    hold: announcement
    to: [dmp, mss_prescriber, mss_copies, mss_patient]

  - name: rest
    to: []

release_triggers:
  - name: geneticist release
    message: [ORU^R01, MDM]
    source: SGL
    where: {OBX-3.1: LIBERATION, OBX-5.1: ["Y", "O"], OBR-25: 1}
    document_key: {field: OBR-3.1, kind: filler_order_number}
    releases: retain
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_routes_file_is_valid_and_covers_the_three_feeds() -> None:
    routes = load_routes(SHIPPED_ROUTES_PATH, known_sources=SOURCES)
    sources = {s for r in routes.routes for s in r.source_match.source}
    assert sources == {"SGL", "RIS", "DPI"}
    assert routes.defaults.dmp_always_for == [DocumentKind.CR_BIO, DocumentKind.CR_IMG]
    assert routes.routes[-1].is_catch_all
    announcement = next(r for r in routes.routes if r.hold is not None)
    assert announcement.hold.hold_kind is HoldKind.ANNOUNCEMENT
    assert announcement.when.invisible_patient is True
    assert all(r.line for r in routes.routes)


def test_a_complete_file_reads_as_written(tmp_path: Path) -> None:
    routes = load_routes(write(tmp_path, GOOD), known_sources=SOURCES)
    assert isinstance(routes, Routes)
    d = routes.defaults
    assert d.dmp_always_for == [DocumentKind.CR_BIO]
    assert d.restricted_confidentiality == "send"
    assert d.replacement_to_earlier_recipients is False
    assert (d.acks.reception, d.acks.read) == (True, False)
    assert d.mail_bodies.deletion.ps == "Document retiré."
    # A file that leaves a replacement/deletion body out keeps the built-in one.
    assert d.mail_bodies.deletion.patient == DEFAULT_MAIL_BODIES.deletion.patient
    assert d.mail_bodies.replacement == DEFAULT_MAIL_BODIES.replacement

    genetics, imaging, rest = routes.routes
    assert (genetics.line, imaging.line, rest.line) == (10, 24, 30)
    assert genetics.source_match.code == ["51969-4", "94500-6"]
    assert genetics.when.action == [Action.INITIAL, Action.REPLACEMENT]
    assert genetics.when.confidentiality == ["N"]
    assert [t.name for t in genetics.to] == ["dmp", "mss_prescriber", "mss_address", "mss_patient"]
    assert genetics.to[0].dmp.invisible_rep_legaux is True
    assert genetics.to[1].always is True
    assert genetics.to[2].mss_address.address == "Genetique@CHU-X.mssante.fr"
    assert genetics.to[3].mss_patient.no_reply is True
    assert genetics.hold.hold_kind is HoldKind.RETAIN and genetics.hold.dmp_held
    assert genetics.hold.released_by == ["geneticist release"]
    assert not genetics.hold.sender_releases
    assert genetics.acks.read is True and genetics.acks.reception is None
    assert genetics.mail_bodies.initial.ps == "Résultat de génétique."

    assert imaging.source_match.source == ["RIS", "DPI"]
    assert imaging.hold.hold_kind is HoldKind.ANNOUNCEMENT
    assert imaging.hold.sender_releases and not imaging.hold.dmp_held
    assert imaging.hold.default_reason == "announcement: patient not yet informed"
    assert rest.is_catch_all and rest.to == []

    (trigger,) = routes.release_triggers
    assert trigger.message == ["ORU^R01", "MDM"]
    assert trigger.where == {
        "OBX-3.1": ["LIBERATION"],
        "OBX-5.1": ["Y", "O"],
        "OBR-25": ["1"],
    }
    assert trigger.key_ref.segment == "OBR" and trigger.key_ref.field == 3
    assert routes.trigger("geneticist release") is trigger


BAD_FILES = [
    pytest.param(
        "routes:\n  - name: a\n    to: [dmp, dpm]\n",
        "routes.yaml:3: routes[0].to[1]: expected a destination among dmp, mss_prescriber, "
        "mss_copies, mss_patient, mss_address (got 'dpm')",
        id="unknown-destination",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to:\n      - dpm: {always: true}\n",
        "routes.yaml:4: routes[0].to[0].dpm: unknown key; expected one of: dmp, mss_address, "
        "mss_copies, mss_patient, mss_prescriber",
        id="unknown-destination-with-options",
    ),
    pytest.param(
        "routes:\n  - name: a\n    form: {source: SGL}\n    to: [dmp]\n",
        "routes.yaml:3: routes[0].form: unknown key; expected one of: acks, description, "
        "from, hold, mail_bodies, name, to, when",
        id="misspelt-route-key",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to:\n      - dmp: {invisible_patiant: true}\n",
        "routes.yaml:4: routes[0].to[0].dmp.invisible_patiant: unknown key; expected one of: "
        "always, invisible_patient, invisible_rep_legaux, masque_ps",
        id="misspelt-masking-option",
    ),
    pytest.param(
        "routes:\n  - name: a\n    from: {document: CR-BOI}\n    to: [dmp]\n",
        "routes.yaml:3: routes[0].from.document: expected 'CR-BIO', 'CR-IMG' or 'other' "
        "(got 'CR-BOI')",
        id="unknown-document-kind",
    ),
    pytest.param(
        "routes:\n  - name: a\n    when: {action: [initial, cancel]}\n    to: [dmp]\n",
        "routes.yaml:3: routes[0].when.action[1]: expected 'initial', 'replacement' or "
        "'deletion' (got 'cancel')",
        id="unknown-action",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to:\n      - dmp: {invisible_patient: true}\n"
        "      - mss_patient\n",
        "routes.yaml:3: routes[0].to: expected no mss_patient when dmp has invisible_patient: "
        "true, as a document hidden from the patient is never mailed to them",
        id="patient-mail-of-a-document-hidden-from-the-patient",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to:\n      - dmp: {masque_ps: true}\n      - mss_prescriber\n",
        "routes.yaml:3: routes[0].to: expected no mss_prescriber when dmp has masque_ps: true, "
        "as a document masked to professionals is not exchanged between professionals",
        id="professional-mail-of-a-document-masked-to-professionals",
    ),
    pytest.param(
        "routes:\n  - name: a\n    hold: announcement\n    to:\n"
        "      - dmp: {invisible_patient: true}\n",
        "routes.yaml:3: routes[0].hold: expected no dmp invisible_patient with an "
        "announcement hold, which makes the DMP copy invisible to the patient until release "
        "and visible after",
        id="announcement-with-a-visible-dmp-copy",
    ),
    pytest.param(
        "routes:\n  - name: a\n    hold: {kind: retain, dmp: invisible}\n    to: [dmp]\n",
        "routes.yaml:3: routes[0].hold: expected dmp only on announcement holds (retain holds "
        "everything)",
        id="retain-with-a-dmp-option",
    ),
    pytest.param(
        "routes:\n  - name: a\n    hold: {kind: retain, released_by_sender: true}\n    to: []\n",
        "routes.yaml:3: routes[0].hold: expected released_by_sender only on announcement holds",
        id="retain-released-by-sender",
    ),
    pytest.param(
        "routes:\n  - name: a\n    hold: later\n    to: [dmp]\n",
        "routes.yaml:3: routes[0].hold.kind: expected 'announcement' or 'retain' (got 'later')",
        id="unknown-hold-kind",
    ),
    pytest.param(
        "routes:\n  - name: a\n    hold: {kind: announcement, released_by: [ris-done]}\n"
        "    to: [dmp]\n",
        "routes.yaml:3: routes[0].hold.released_by[0]: expected the name of a release trigger "
        "(none is defined) (got 'ris-done')",
        id="hold-released-by-unknown-trigger",
    ),
    pytest.param(
        "routes:\n  - name: a\n    hold: {kind: announcement, released_by: [t]}\n    to: [dmp]\n"
        "release_triggers:\n  - name: t\n    message: ORU^R01\n"
        "    document_key: {field: OBR-3.1, kind: filler_order_number}\n    releases: retain\n",
        "routes.yaml:3: routes[0].hold.released_by[0]: expected a trigger releasing "
        "announcement holds ('t' releases retain holds)",
        id="hold-released-by-a-trigger-of-the-other-kind",
    ),
    pytest.param(
        "routes:\n  - name: a\n    from: {source: SGL}\n    to: [dmp]\n"
        "  - name: a\n    to: [dmp]\n",
        "routes.yaml:5: routes[1].name: expected a unique route name ('a' is also routes[0])",
        id="duplicate-route-name",
    ),
    pytest.param(
        "routes:\n  - name: everything\n    to: [dmp]\n"
        "  - name: lab\n    from: {source: SGL}\n    to: [dmp]\n",
        "routes.yaml:4: routes[1]: expected a reachable route: routes[0] ('everything') has "
        "neither from nor when and takes every document first",
        id="route-after-a-catch-all",
    ),
    pytest.param(
        "routes:\n  - name: a\n    from: {source: LAB}\n    to: [dmp]\n",
        "routes.yaml:3: routes[0].from.source: expected a source declared in pfi.yaml "
        "(DPI, RIS, SGL) (got 'LAB')",
        id="source-not-in-pfi-yaml",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to: [dmp, mss_patient, dmp]\n",
        "routes.yaml:3: routes[0].to: expected each destination once (dmp is listed twice)",
        id="duplicate-destination",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to:\n      - {dmp: {}, mss_patient: {}}\n",
        "routes.yaml:4: routes[0].to[0]: expected exactly one destination per item",
        id="two-destinations-in-one-item",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to:\n      - mss_address: {address: 1@patient.mssante.fr}\n",
        "routes.yaml:4: routes[0].to[0].mss_address.address: expected a professional or "
        "organisation address (a patient's address comes from the qualified INS: use "
        "mss_patient) (got '1@patient.mssante.fr')",
        id="fixed-address-of-a-patient",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to:\n      - mss_address: {always: true}\n",
        "routes.yaml:4: routes[0].to[0].mss_address.address: required key is missing",
        id="fixed-address-missing",
    ),
    pytest.param(
        "routes:\n  - name: a\n    from: {source: SGL}\n",
        "routes.yaml:2: routes[0].to: required key is missing",
        id="route-without-to",
    ),
    pytest.param(
        "defaults:\n  mail_bodies:\n    deletion: {ps: ''}\nroutes: []\n",
        "routes.yaml:3: defaults.mail_bodies.deletion.ps: expected a text, or no key at all "
        "for the default (got '')",
        id="empty-deletion-mail-body",
    ),
    pytest.param(
        "routes: []\nrelease_triggers:\n  - name: t\n    message: ORU-R01\n"
        "    document_key: {field: OBR-3.1, kind: filler_order_number}\n",
        "routes.yaml:4: release_triggers[0].message: expected a message type like 'ORU^R01', "
        "or 'MDM' for any event (got 'ORU-R01')",
        id="trigger-bad-message-type",
    ),
    pytest.param(
        "routes: []\nrelease_triggers:\n  - name: t\n    message: ORU^R01\n"
        "    where: {OBX3: 'Y'}\n    document_key: {field: OBR-3.1, kind: filler_order_number}\n",
        "routes.yaml:5: release_triggers[0].where.OBX3: expected a field path like 'OBX-5.1' "
        "or 'OBR-3' (got 'OBX3')",
        id="trigger-bad-field-path",
    ),
    pytest.param(
        "routes: []\nrelease_triggers:\n  - name: t\n    message: ORU^R01\n"
        "    where: {OBX-5.1: yes}\n"
        "    document_key: {field: OBR-3.1, kind: filler_order_number}\n",
        "routes.yaml:5: release_triggers[0].where: expected HL7 values as text in OBX-5.1: "
        "quote YAML words like yes, no, true",
        id="trigger-yaml-boolean-value",
    ),
    pytest.param(
        "routes: []\nrelease_triggers:\n  - name: t\n    message: ORU^R01\n"
        "    document_key: {field: OBR-3.1, kind: order}\n",
        "routes.yaml:5: release_triggers[0].document_key.kind: expected 'filler_order_number', "
        "'placer_order_number', 'accession_number' or 'document_id' (got 'order')",
        id="trigger-unknown-key-kind",
    ),
    pytest.param(
        "- name: a\n  to: [dmp]\n",
        "routes.yaml:1: (root): a mapping with routes: (and optionally defaults:, "
        "release_triggers:)",
        id="root-is-a-list",
    ),
    pytest.param(
        "defaults: {}\n",
        "routes.yaml:1: routes: required key is missing",
        id="no-routes-key",
    ),
    pytest.param(
        "routes:\n  - name: a\n    to: [dmp\n",
        "routes.yaml:4: (syntax): invalid YAML",
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_routes_file_names_file_line_key_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_routes(path, known_sources=SOURCES)
    message = str(info.value)
    assert f"{tmp_path}/{expected}" in message, message


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "routes:\n"
        "  - name: a\n    from: {source: LAB}\n    to: [dmp]\n"
        "  - name: a\n    to: [dmp]\n"
        "  - name: c\n    to: [dmp]\n",
    )
    with pytest.raises(ConfigError) as info:
        load_routes(path, known_sources=SOURCES)
    assert [p.key for p in info.value.problems] == [
        "routes[1].name",
        "routes[2]",
        "routes[0].from.source",
    ]


def test_pydantic_problems_are_all_reported_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "routes:\n  - name: a\n    to: [dpm]\n  - name: b\n    from: {document: X}\n    to: []\n",
    )
    with pytest.raises(ConfigError) as info:
        load_routes(path)
    assert {p.key for p in info.value.problems} == {"routes[0].to[0]", "routes[1].from.document"}


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: \(file\): file not found"):
        load_routes(tmp_path / "nope.yaml")


def test_sources_are_only_checked_when_the_configuration_is_known(tmp_path: Path) -> None:
    path = write(tmp_path, "routes:\n  - name: a\n    from: {source: LAB}\n    to: [dmp]\n")
    assert load_routes(path).routes[0].source_match.source == ["LAB"]


def test_routes_built_in_code_get_the_cross_checks_too() -> None:
    with pytest.raises(ValueError, match=r"routes\[1\]\.name: expected a unique route name"):
        Routes.model_validate(
            {
                "routes": [
                    {"name": "a", "from": {"source": "SGL"}, "to": []},
                    {"name": "a", "to": []},
                ]
            }
        )


def test_check_routes_command_accepts_the_shipped_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pfi.cli", "check-routes", str(SHIPPED_ROUTES_PATH)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=SHIPPED_ROUTES_PATH.parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert "OK (5 routes, 0 release triggers)" in result.stdout


def test_check_routes_command_exits_non_zero_with_the_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "routes:\n  - name: a\n    from: {source: LAB}\n    to: [dmp]\n")
    config = tmp_path / "pfi.yaml"
    config.write_text("sources:\n  LAB:\n    port: 2590\n    allowed_message_types: [ORU^R01]\n")
    ok = subprocess.run(
        [sys.executable, "-m", "pfi.cli", "check-routes", str(path), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "pfi.cli", "check-routes", str(path), "--config", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert (
        f"{path}:3: routes[0].from.source: expected a source declared in pfi.yaml "
        "(DPI, RIS, SGL) (got 'LAB')" in bad.stderr
    )
