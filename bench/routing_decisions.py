"""Routing decisions/s: `decide` on a mix of lab, imaging and DPI documents.

Phases, each bounded in count and time, in one process:
- baseline: building the `RoutingInput` (MetaDMPMSS parsed and checked) — the least the
  routing stage does per document event;
- decide with the shipped `config/routes.yaml`;
- decide with 200 routes where the matching route is the last one (worst case of
  first-match), to show that matching cost stays small next to the decision itself;
- decide + `to_json()` + `json.dumps`, what the stage stores in the ledger.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.routes import (  # noqa: E402
    Action,
    PatientFacts,
    Recipient,
    RoutingInput,
    decide,
    load_routes,
)

MAX_ITERATIONS = 200_000
MAX_SECONDS = 5.0
INS = "279035121518989"
META = {
    "MASQUE_PS": "N",
    "INVISIBLE_PATIENT": "Y",
    "INVISIBLE_REP_LEGAUX": "N",
    "CONNEXION_SECRETE": "N",
    "MODIF_CONF_CODE": "N",
    "DESTDMP": "Y",
    "DESTMSSANTEPS": "Y",
    "DESTMSSANTEPAT": "Y",
    "ACK_RECEPTION": "Y",
    "CORPSMAIL_PS": "Cher confrère, ci-joint le compte rendu.",
}
RECIPIENTS = (
    Recipient("dr.martin@chu-x.mssante.fr", "prescriber"),
    Recipient("dr.durand@cabinet-durand.mssante.fr", "copy"),
)


def input_fields() -> list[dict[str, object]]:
    qualified = PatientFacts(ins_qualified=True, ins=INS, dmp_opposition=False)
    provisional = PatientFacts(ins_qualified=False, ins=INS)
    return [
        {"source": "SGL", "document_kind": "CR-BIO", "patient": qualified},
        {"source": "SGL", "document_kind": "CR-BIO", "patient": provisional},
        {
            "source": "SGL",
            "document_kind": "CR-BIO",
            "patient": qualified,
            "action": Action.REPLACEMENT,
            "delivered_before": frozenset({"dmp", "mss_patient"}),
        },
        {"source": "RIS", "document_kind": "CR-IMG", "patient": qualified, "sender_metadata": META},
        {"source": "RIS", "document_kind": "CR-IMG", "patient": qualified},
        {"source": "DPI", "document_kind": "other", "patient": qualified, "sender_metadata": META},
        {
            "source": "SGL",
            "document_kind": "CR-BIO",
            "patient": qualified,
            "action": Action.DELETION,
            "delivered_before": frozenset({"dmp"}),
        },
        {"source": "SGL", "document_kind": "CR-BIO", "patient": qualified, "confidentiality": "R"},
    ]


def measure(label: str, work: Callable[[int], object]) -> float:
    start = time.perf_counter()
    n = 0
    while n < MAX_ITERATIONS and time.perf_counter() - start < MAX_SECONDS:
        for _ in range(1000):
            work(n)
            n += 1
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    print(f"{label:<58} {rate:>10,.0f}/s  ({n} in {elapsed:.2f} s)")
    return rate


def many_routes_file(directory: Path) -> Path:
    lines = ["routes:"]
    for i in range(199):
        lines += [f"  - name: lab {i}", f"    from: {{source: SGL, code: '{10000 + i}-0'}}"]
        lines += ["    to: [dmp, mss_prescriber]"]
    lines += ["  - name: the one", "    from: {source: SGL}", "    to: [dmp, mss_patient]"]
    path = directory / "routes.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    fields = input_fields()
    for f in fields:
        f.setdefault("recipients", RECIPIENTS)
    inputs = [RoutingInput(**f) for f in fields]  # type: ignore[arg-type]
    shipped = load_routes(ROOT / "config" / "routes.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        many = load_routes(many_routes_file(Path(tmp)))
    sgl_only = [i for i in inputs if i.source == "SGL"]
    count = len(inputs)

    baseline = measure(
        "baseline: RoutingInput(...) per event",
        lambda n: RoutingInput(**fields[n % count]),  # type: ignore[arg-type]
    )
    shipped_rate = measure(
        "decide, shipped routes (mix of 8 situations)",
        lambda n: decide(shipped, inputs[n % count]),
    )
    many_rate = measure(
        "decide, 200 routes, match on the last (SGL)",
        lambda n: decide(many, sgl_only[n % len(sgl_only)]),
    )
    stored = measure(
        "decide + to_json + json.dumps (shipped routes)",
        lambda n: json.dumps(decide(shipped, inputs[n % count]).to_json()),
    )
    print(f"decide / input construction:             {baseline / shipped_rate:5.1f}x the cost")
    print(f"200 routes / shipped routes:             {shipped_rate / many_rate:5.2f}x the cost")
    print(f"with JSON for the ledger / decide alone: {shipped_rate / stored:5.2f}x the cost")


if __name__ == "__main__":
    main()
