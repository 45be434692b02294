"""Prescriber and copies named by RPPS (a CR-BIO PFI built) get their MSSanté address from
the imported annuaire, in the running engine's routing stage, on SQLite and PostgreSQL:
one mss_pro row per address, a refused row (with the reason, a warning shown by `pfi
documents show`, and a metric) for whoever cannot be resolved."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from typer.testing import CliRunner

from pfi.annuaire.importer import import_annuaire
from pfi.cli.app import app as cli_app
from pfi.config.mssante import MssanteSettings, MssRecipientSettings
from pfi.observability.metrics import REGISTRY
from pfi.routes.document_meta import DocumentMeta, MetaPerson, SourceMessage
from pfi.routes.mss_recipients import NO_ANNUAIRE, AnnuaireRecipientResolver
from pfi.store import Database
from tests.integration.test_routing_stage import ROUTES, DeliveryTap, Env, ins, wait_for
from tests.support.annuaire import HEADER, organisation, professional
from tests.support.databases import fresh_postgres_database, postgres_unavailable_reason, sqlite_url
from tests.support.inprocess import RunningEngine, engine_settings

pytestmark = pytest.mark.slow

HOUSE = "10001234567"  # personal and organisational mailboxes
CUDDY = "10007654321"  # one organisational mailbox
WILSON = "10005555555"  # in the annuaire, without a mailbox
UNKNOWN = "19999999999"


def _annuaire() -> list[str]:
    lines = [
        professional(HOUSE, "g.house@ch-x.mssante.fr", kind="ORG"),
        professional(HOUSE, "gregory.house@medecin.mssante.fr"),
        professional(CUDDY, "l.cuddy@ch-x.mssante.fr", kind="ORG", family="CUDDY"),
        professional(WILSON, "", family="WILSON"),
        organisation("cardio@ch-x.mssante.fr"),
    ]
    return [HEADER + "\n", *(f"{line}\n" for line in lines)]


def built_meta(*people: MetaPerson) -> DocumentMeta:
    return DocumentMeta(to_resolve=people, message=SourceMessage("M-1", "SIL", "LABO", "ORU^R01"))


def _unresolved_count(role: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "pfi_mss_recipients_total", {"role": role, "outcome": "unresolved"}
        )
        or 0.0
    )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"recipients-{request.param}")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(tmp)
        else:
            reason = postgres_unavailable_reason()
            if reason:
                pytest.skip(reason)
            url = stack.enter_context(fresh_postgres_database())
        routes_file = tmp / "routes.yaml"
        routes_file.write_text(ROUTES, encoding="utf-8")
        settings = engine_settings(tmp, url)
        settings.routing.routes_file = routes_file
        settings.mssante = MssanteSettings(recipients={"attending": True})
        config_file = tmp / "pfi.yaml"
        config_file.write_text(
            f"database: {{url: '{url}'}}\nrouting: {{routes_file: '{routes_file}'}}\n",
            encoding="utf-8",
        )
        running = stack.enter_context(RunningEngine(settings))
        assert running.engine is not None and running.engine.supervisor is not None
        import_annuaire(running.engine.db, _annuaire(), source="test")
        tap = DeliveryTap(running.engine.supervisor.bootstrap, settings.kafka.topic_prefix)
        tap.start()
        stack.callback(lambda: tap.consumer.close() if tap.consumer else None)
        yield Env(
            running,
            running.engine.db,
            f"http://127.0.0.1:{settings.http.port}",
            tap,
            config_file,
        )


def test_prescriber_by_rpps_gets_one_mail_at_their_personal_mailbox(env: Env) -> None:
    env.adt("RR-A1", "IPP-RRA", ins=ins(41), status="VALI")
    pid = env.patient_id("IPP-RRA", qualified=True)
    meta = built_meta(
        MetaPerson("prescriber", HOUSE, "RPPS", "Gregory HOUSE"),
        MetaPerson("copy", CUDDY, "RPPS"),
    )
    vid = env.document(patient_id=pid, set_id="RR-LAB-1", meta=meta)
    rows = env.ledger(vid)
    assert {k: r.status for k, r in rows.items()} == {
        "dmp": "pending",
        "mss_pro:gregory.house@medecin.mssante.fr": "pending",
        "mss_pro:l.cuddy@ch-x.mssante.fr": "pending",
        "mss_patient": "pending",
    }
    prescriber = rows["mss_pro:gregory.house@medecin.mssante.fr"]
    assert prescriber.request is not None and prescriber.request["role"] == "prescriber"
    env.tap.wait({r.id for r in rows.values()})


def test_unknown_rpps_and_professional_without_mailbox_are_refused_rows_with_reasons(
    env: Env,
) -> None:
    before = _unresolved_count("copy")
    env.adt("RR-B1", "IPP-RRB", ins=ins(42), status="VALI")
    pid = env.patient_id("IPP-RRB", qualified=True)
    meta = built_meta(
        MetaPerson("prescriber", HOUSE, "RPPS"),
        MetaPerson("copy", UNKNOWN, "RPPS", "Dr Nobody"),
        MetaPerson("copy", WILSON, "RPPS"),
    )
    vid = env.document(patient_id=pid, set_id="RR-LAB-2", meta=meta)
    rows = env.ledger(vid)
    unknown = rows[f"mss_pro:unresolved:{UNKNOWN}"]
    no_box = rows[f"mss_pro:unresolved:{WILSON}"]
    assert (unknown.status, no_box.status) == ("refused", "refused")
    assert unknown.refusal_reason == (
        f"no MSSanté address for the copy Dr Nobody ({UNKNOWN}): {UNKNOWN} is not in the annuaire"
    )
    assert no_box.refusal_reason is not None
    assert f"8{WILSON} has no MSSanté mailbox in the annuaire" in no_box.refusal_reason
    assert rows["mss_pro:gregory.house@medecin.mssante.fr"].status == "pending"
    env.tap.none_of({unknown.id, no_box.id})
    assert _unresolved_count("copy") == before + 2

    shown = CliRunner().invoke(
        cli_app, ["documents", "show", str(vid), "--config", str(env.config_file)]
    )
    assert shown.exit_code == 0, shown.output
    assert f"mss_pro unresolved:{UNKNOWN} submit — refused: no MSSanté address" in shown.output
    assert f"routing warning: no MSSanté address for the copy Dr Nobody ({UNKNOWN})" in (
        shown.output
    )


def test_resolved_addresses_are_kept_when_the_document_is_decided_again(env: Env) -> None:
    """Held for the identity, released days later: the addresses routing resolved first
    are the ones mailed, whatever the annuaire says by then (stored routing input)."""
    env.adt("RR-C1", "IPP-RRC", status="PROV")
    pid = env.patient_id("IPP-RRC", qualified=False)
    vid = env.document(
        patient_id=pid, set_id="RR-LAB-3", meta=built_meta(MetaPerson("prescriber", HOUSE))
    )
    assert env.ledger(vid)["mss_patient"].status == "held"
    env.adt("RR-C2", "IPP-RRC", trigger="A31", status="VALI", ins=ins(43))
    assert wait_for(lambda: env.ledger(vid)["mss_patient"].status == "pending")
    rows = env.ledger(vid)
    assert [k for k in rows if k.startswith("mss_pro:")] == [
        "mss_pro:gregory.house@medecin.mssante.fr"
    ]


def test_the_patients_attending_physician_gets_a_copy_when_configured(env: Env) -> None:
    rol = f"ROL|1|UC|ODRP|{CUDDY}^CUDDY^Lisa^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS\r"
    env.adt("RR-D1", "IPP-RRD", ins=ins(44), status="VALI", extra_segments=rol)
    pid = env.patient_id("IPP-RRD", qualified=True)
    vid = env.document(
        patient_id=pid, set_id="RR-LAB-4", meta=built_meta(MetaPerson("prescriber", HOUSE))
    )
    rows = env.ledger(vid)
    copy = rows["mss_pro:l.cuddy@ch-x.mssante.fr"]
    assert copy.status == "pending"
    assert copy.request is not None and copy.request["role"] == "copy"
    assert rows["mss_pro:gregory.house@medecin.mssante.fr"].status == "pending"


def test_several_mailboxes_all_sends_to_each_and_no_annuaire_is_a_reason(db: Database) -> None:
    meta = built_meta(MetaPerson("prescriber", HOUSE), MetaPerson("copy", CUDDY))
    resolver = AnnuaireRecipientResolver(MssRecipientSettings(several_mailboxes="all"))
    with db.reader() as s:
        nothing = resolver.resolve(s, meta)
    assert [u.reason for u in nothing.unresolved] == [NO_ANNUAIRE, NO_ANNUAIRE]
    assert nothing.recipients == ()
    import_annuaire(db, _annuaire())
    with db.reader() as s:
        every = resolver.resolve(s, meta)
        personal = AnnuaireRecipientResolver(MssRecipientSettings()).resolve(s, meta)
    assert [(r.address, r.role.value) for r in every.recipients] == [
        ("g.house@ch-x.mssante.fr", "prescriber"),
        ("gregory.house@medecin.mssante.fr", "prescriber"),
        ("l.cuddy@ch-x.mssante.fr", "copy"),
    ]
    assert [r.address for r in personal.recipients] == [
        "gregory.house@medecin.mssante.fr",
        "l.cuddy@ch-x.mssante.fr",
    ]
    assert personal.notes[0] == (
        f"prescriber DR Gregory HOUSE ({HOUSE}) -> gregory.house@medecin.mssante.fr (PER), "
        "of 2 mailboxes (personal)"
    )


def test_transmission_documents_never_resolve_the_prescriber_id_marker() -> None:
    """Way (a): the `prescriber` entry only says which PRT RCT prescribed; the sender's
    own addresses are the recipients, nothing is looked up."""
    meta = DocumentMeta.from_json(
        {
            "way": "transmission",
            "people": [
                {"role": "recipient", "id": HOUSE, "mssante_address": "a@b.mssante.fr"},
                {"role": "prescriber", "id": HOUSE},
            ],
        }
    )
    assert meta.to_resolve == ()
    assert [r.role.value for r in meta.recipients] == ["prescriber"]
    built = DocumentMeta.from_json(built_meta(MetaPerson("copy", CUDDY, "RPPS", "X")).to_json())
    assert built.to_resolve == (MetaPerson("copy", CUDDY, "RPPS", "X"),)
