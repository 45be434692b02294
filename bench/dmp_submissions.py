"""Submissions/s of CR-BIO documents from DmpClient to the DMP simulator over loopback.

The simulator runs as its own process (`pfi simulate dmp`), as in a demo. Each iteration
submits a distinct CR-BIO (the official TSH example with a unique document id), with VIHF
and XAdES signatures, and the simulator does every check (XSD, hash, signatures...).
Baseline measured in the same run: building the same requests without sending them, so the
ratio shows what the wire and the simulator's checks cost on top of the pure transforms.
Bounded: at most N submissions and at most T seconds per phase.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.adapters.dmp import DmpClient  # noqa: E402
from pfi.adapters.dmp.client import signer_from_settings  # noqa: E402
from pfi.transforms.xds.dmp_request import prepare_submission  # noqa: E402
from tests.support.dmp_fixtures import CR_BIO, dmp_settings  # noqa: E402
from tests.support.dmp_pki import make_pki  # noqa: E402

MAX_SUBMISSIONS = 300
MAX_SECONDS = 20.0
ORIGINAL_ID = b'<id root="1.2.250.1.213.1.1.1.55.2024.9.1"/>'


def variants(n: int) -> list[bytes]:
    cda = CR_BIO.read_bytes()
    assert ORIGINAL_ID in cda
    return [
        cda.replace(ORIGINAL_ID, f'<id root="1.2.250.1.213.1.1.1.55.2024.9.1.{i}"/>'.encode())
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pfi-bench-dmp-"))
    pki = make_pki(tmp)
    port = free_port()
    sim = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "pfi"),
            "simulate",
            "dmp",
            "--port",
            str(port),
            "--trusted-signer",
            str(pki.signing_cert),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/_sim/stats", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or sim.poll() is not None:
                    raise SystemExit("the DMP simulator did not start") from None
                time.sleep(0.1)
        settings = dmp_settings(url, pki.signing_cert, pki.signing_key)
        docs = variants(MAX_SUBMISSIONS)

        signer = signer_from_settings(settings)
        with DmpClient(settings) as client:
            client.submit(variants(1)[0].replace(b".9.1.0", b".9.1.warmup"))  # warm-up
            start = time.perf_counter()
            built = 0
            for cda in docs:
                prepare_submission(cda, client.context(), signer, to=settings.repository_url)
                built += 1
                if time.perf_counter() - start > MAX_SECONDS:
                    break
            build_s = time.perf_counter() - start

            start = time.perf_counter()
            sent = accepted = 0
            for cda in docs:
                outcome = client.submit(cda)
                sent += 1
                accepted += outcome.accepted
                if not outcome.accepted:
                    print("not accepted:", outcome.reason)
                    break
                if time.perf_counter() - start > MAX_SECONDS:
                    break
            send_s = time.perf_counter() - start
        build_rate = built / build_s
        send_rate = sent / send_s
        print(f"CR-BIO {len(docs[0])} bytes, VIHF + XAdES signed, simulator with full checks")
        print(f"baseline (build request only): {built} in {build_s:.2f}s = {build_rate:.1f}/s")
        print(
            f"client -> simulator (loopback): {sent} in {send_s:.2f}s = {send_rate:.1f}/s, "
            f"{accepted} accepted, {1000 / send_rate:.1f} ms each"
        )
        print(f"ratio end-to-end / build-only: {send_rate / build_rate:.2f}")
    finally:
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()


if __name__ == "__main__":
    main()
