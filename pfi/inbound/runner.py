"""The engine's periodic poll of the application mailbox, in a thread of its own.

A poll does network work (IMAP, MLLP to the DPI) that may wait for time-outs; it runs
beside the asyncio loop, not in it. One poll at a time; `stop()` wakes the thread and
waits for the poll in progress to finish (its time-outs bound that wait).
"""

from __future__ import annotations

import logging
import threading

from pfi.inbound.service import InboundIntegrator

log = logging.getLogger(__name__)


class InboundRunner:
    def __init__(self, integrator: InboundIntegrator, interval_s: float | None = None) -> None:
        self.integrator = integrator
        self.interval_s = interval_s if interval_s is not None else integrator.cfg.poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.failures = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("inbound runner already started")
        self._thread = threading.Thread(target=self._run, name="mss-inbound", daemon=True)
        self._thread.start()
        log.info(
            "inbound MSSanté: polling %s every %.0fs, documents to %s:%d",
            self.integrator.cfg.imap.mailbox,
            self.interval_s,
            self.integrator.cfg.dpi.host,
            self.integrator.cfg.dpi.port,
        )

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("inbound MSSanté poll still running after %.0fs", timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                summary = self.integrator.poll_once()
                if summary.fetched or summary.integrated or summary.ko:
                    log.info(
                        "inbound MSSanté: %d fetched, %d kept, %d integrated, %d KO, %d pending",
                        summary.fetched,
                        summary.kept,
                        summary.integrated,
                        summary.ko,
                        summary.pending,
                    )
            except Exception:  # the poller must survive a bad poll; the next one retries
                self.failures += 1
                log.exception("inbound MSSanté poll failed")
            self.polls += 1
            self._stop.wait(self.interval_s)
