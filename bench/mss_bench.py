"""MSSanté throughput, loopback only, every loop bounded in count and time.

Prints: message building (XDM + MIME) per second; SMTP sending to the simulator with one
reused connection against a new connection per message (the baseline, same run); DSN
parsing; annuaire extract parsing. Run: .venv/bin/python bench/mss_bench.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pfi.adapters.mssante.smtp import MssSmtpSender
from pfi.config.mssante import MssClientTls, MssSmtpSettings
from pfi.simulators.mssante import MssSimulator, SimulatorTls
from pfi.transforms.mssante.annuaire import parse_annuaire
from pfi.transforms.mssante.notifications import DsnRecipient, build_dsn
from pfi.transforms.mssante.reports import parse_delivery_report
from tests.support.dmp_pki import make_pki
from tests.support.mss import APP, APP_PASSWORD, pro_message

TIME_LIMIT_S = 30.0


def _timed(label: str, count: int, action: object) -> float:
    """Rate in wall-clock time; CPU time printed too (the machine is shared: wall time
    includes waiting for a core)."""
    start, cpu = time.perf_counter(), time.process_time()
    done = 0
    for n in range(count):
        action(n)  # type: ignore[operator]
        done += 1
        if time.perf_counter() - start > TIME_LIMIT_S:
            break
    elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    rate = done / elapsed
    print(f"{label:<52} {done:>7} in {elapsed:6.2f} s  {rate:9.1f} /s  (cpu {cpu_s:6.2f} s)")
    return rate


def _bench_sending(
    label: str, tls: tuple[SimulatorTls, MssClientTls] | None, messages: list
) -> None:
    with MssSimulator(
        smtp_port=0,
        imap_port=0,
        http_port=0,
        mailboxes={APP: APP_PASSWORD},
        tls=tls[0] if tls else None,
    ) as sim:
        settings = MssSmtpSettings(
            host="127.0.0.1",
            port=sim.smtp_port,
            tls_mode="starttls" if tls else "none",
            tls=tls[1] if tls else MssClientTls(),
            request_dsn=False,
            max_messages_per_connection=10_000,
        )

        def connect_only(n: int) -> None:
            with MssSmtpSender(settings) as sender:
                sender._ensure()

        rate = _timed(f"connect {label} (EHLO, TLS, no mail)", 50, connect_only)
        print(f"{'  connection set-up':<52} {1000 / rate:8.1f} ms")

        def fresh(n: int) -> None:
            with MssSmtpSender(settings) as sender:
                assert sender.send(messages[n % 3])[0].accepted

        baseline = _timed(f"send {label}, new connection each (baseline)", 100, fresh)
        reused_sender = MssSmtpSender(settings)

        def reused(n: int) -> None:
            assert reused_sender.send(messages[n % 3])[0].accepted

        reuse = _timed(f"send {label}, one reused connection", 100, reused)
        reused_sender.close()
        print(f"{'  reuse / new connection':<52} ratio {reuse / baseline:5.2f}")


def main() -> None:
    messages = [
        pro_message(["dr@ch-b.mssante.fr"], message_id=f"<b{n}@h.mssante.fr>") for n in range(3)
    ]
    _timed("build message (XDM + MIME, CR-BIO 135 kB)", 100, lambda n: pro_message(["a@b.fr"]))

    _bench_sending("plain", None, messages)
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        tls = SimulatorTls(pki.server_cert, pki.server_key, pki.ca_cert, require_client_cert=True)
        client = MssClientTls(cafile=pki.ca_cert, certfile=pki.client_cert, keyfile=pki.client_key)
        _bench_sending("STARTTLS + client cert", (tls, client), messages)

    original = messages[0].as_bytes()
    dsn = build_dsn(
        original,
        [DsnRecipient("dr@ch-b.mssante.fr", "failed", "5.1.1", "550 5.1.1 unknown")],
        reporting_mta="relay",
        sender="MAILER-DAEMON@relay",
        to=APP,
        date=datetime.now(UTC),
        message_id="<d@relay>",
        envelope_id="b0@h.mssante.fr",
    ).as_bytes()
    _timed("parse DSN", 3000, lambda n: parse_delivery_report(dsn))

    header = (
        "Type de BAL|Adresse BAL|Type Identifiant PP|Identifiant PP|Identification nationale PP|"
        "Type identifiant structure|Identification Structure|Service de rattachement|"
        "Civilité d'exercice|Nom d'exercice|Prénom d'exercice|Catégorie profession|"
        "Libellé de catégorie profession|Code Profession|Libellé Profession|Code savoir-faire|"
        "Libellé savoir-faire|Dématérialisation|Raison Sociale structure BAL|"
        "Enseigne commerciale structure BAL|L2COMPLEMENTLOCALISATION|L3COMPLEMENTDISTRIBUTION|"
        "L4NUMEROVOIE|L4COMPLEMENTNUMEROVOIE|NL4TYPEVOIE|L4LIBELLEVOIE|L5LIEUDITMENTION|"
        "L6LIGNEACHEMINEMENT|Code postal|Département|Pays"
    )

    def extract_line(n: int) -> str:
        cells = [""] * 31
        cells[:18] = [
            "PER",
            f"p{n}@ch.mssante.fr",
            "8",
            f"1{n:010d}",
            f"81{n:010d}",
            "",
            "",
            "",
            "DR",
            f"NOM{n}",
            "Prénom",
            "C",
            "Civil",
            "10",
            "Médecin",
            "SM26",
            "Médecine générale",
            "O",
        ]
        cells[18], cells[27], cells[28] = "CH de test", "75001 PARIS", "75001"
        return "|".join(cells)

    lines = [header] + [extract_line(n // 2) for n in range(200_000)]  # 2 lines per person
    _timed(f"parse annuaire extract ({len(lines) - 1} lines)", 1, lambda n: parse_annuaire(lines))


if __name__ == "__main__":
    main()
