"""The document worker processes: build and validate CDA documents off the stage thread.

Numbers that decide the design (docs/documents.md has the measurements): a validator
with the CI-SIS schematrons takes 15-20 s to compile (up to ~45 s on a loaded machine)
and ~1.2 GB; one document then costs ~140-200 ms of Saxon, during which Saxon holds the
interpreter lock. So:

- validation never runs in the MLLP intake process, nor inside a stage's database
  transaction (the documents stage prepares a whole polled batch first, see stage.py);
- it runs in `validation_processes` spawned processes, each compiling its validator once
  when the pool starts (asynchronously: the stage only waits when it has documents);
- one pool per interpreter (`shared_workers`): an engine restarted in the same process
  (tests, the worker process after a broker restart) reuses the compiled validators.

`validation_processes: 0` runs the same functions in the caller's thread (one validator
per interpreter, compiled on first use): for small sites, benches and unit tests.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from pfi.documents import checks
from pfi.documents.checks import CheckedDocument, DocumentChecker, SchematronMode
from pfi.transforms.cda.context import CdaContext
from pfi.transforms.imaging import ImagingReport
from pfi.transforms.lab.model import LabReport

log = logging.getLogger(__name__)

T = TypeVar("T")


class WorkersUnavailable(Exception):
    """The pool died (a worker was killed, out of memory...): retry later, nothing is lost."""


class DocumentWorkers:
    """Builds and validates documents; `submit_*` return futures of `CheckedDocument`."""

    def __init__(self, mode: SchematronMode, processes: int, cache_dir: Path | None) -> None:
        self.mode = mode
        self.processes = processes
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready: list[Future[float]] = []
        self._inline: DocumentChecker | None = None
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self.started_at: float | None = None
        self.startup_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Start the processes and have each compile its validator; does not wait."""
        with self._lock:
            if self.processes == 0 or self._pool is not None:
                return
            self.started_at = time.monotonic()
            before = set(multiprocessing.active_children())
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=checks.init_process,
                initargs=(self.mode, str(self.cache_dir) if self.cache_dir else None),
            )
            # One warm-up task per process so that every initializer runs now, not when
            # the first documents arrive.
            self._ready = [self._pool.submit(checks.startup_seconds) for _ in range(self.processes)]
            for future in self._ready:
                future.add_done_callback(self._on_ready)
            # the pool's processes (started by the submits above), to stop them at once
            # on shutdown instead of waiting for a compile of up to minutes to finish
            self._processes = [p for p in multiprocessing.active_children() if p not in before]
        log.info(
            "document workers: %d process(es) compiling the %s validator",
            self.processes,
            "XSD + schematron" if self.mode == "required" else "XSD-only",
        )

    def _on_ready(self, future: Future[float]) -> None:
        if future.cancelled() or future.exception() is not None:
            log.error("a document worker failed to start: %s", future.exception())
            return
        if all(f.done() for f in self._ready) and self.started_at is not None:
            self.startup_seconds = time.monotonic() - self.started_at
            log.info(
                "document workers ready in %.1fs (validator compile %.1fs per process)",
                self.startup_seconds,
                future.result(),
            )

    @property
    def ready(self) -> bool:
        if self.processes == 0:
            return True
        return bool(self._ready) and all(
            f.done() and not f.cancelled() and f.exception() is None for f in self._ready
        )

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for future in list(self._ready):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                future.result(timeout=remaining)
            except Exception:
                return False
        return True

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the processes now (a compile in progress is abandoned)."""
        with self._lock:
            pool, self._pool = self._pool, None
            processes, self._processes = self._processes, []
            self._ready = []
        if pool is None:
            return
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))

    # -- work ----------------------------------------------------------------------
    def submit_check(self, cda: bytes) -> Future[CheckedDocument]:
        """Validate a document received as is (way a)."""
        if self.processes == 0:
            return self._run_inline(lambda checker: checker.check(cda))
        return self._submit(checks.check_cda, cda)

    def submit_lab(self, report: LabReport, context: CdaContext) -> Future[CheckedDocument]:
        """Build a CR-BIO (with its PDF) and validate it (way b)."""
        if self.processes == 0:
            return self._run_inline(lambda checker: checker.build_lab(report, context))
        return self._submit(checks.build_and_check_lab, report, context)

    def submit_imaging(self, report: ImagingReport, context: CdaContext) -> Future[CheckedDocument]:
        """Build a CR-IMG (level 3 or 1, with its PDF) and validate it (way b)."""
        if self.processes == 0:
            return self._run_inline(lambda checker: checker.build_imaging(report, context))
        return self._submit(checks.build_and_check_imaging, report, context)

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        self.start()
        with self._lock:
            pool = self._pool
        if pool is None:
            raise WorkersUnavailable("document workers are shut down")
        try:
            return pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError) as exc:
            self._restart(exc)
            raise WorkersUnavailable(f"document workers restarted: {exc}") from exc

    def _run_inline(self, work: Callable[[DocumentChecker], T]) -> Future[T]:
        """`validation_processes: 0`: run now, in this thread (same results, same errors)."""
        future: Future[T] = Future()
        try:
            with self._lock:
                if self._inline is None:
                    self._inline = DocumentChecker(self.mode, self.cache_dir)
                checker = self._inline
            future.set_result(work(checker))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def broken(self, exc: BaseException) -> None:
        """A future failed with BrokenProcessPool: start a fresh pool for the retry."""
        self._restart(exc)

    def _restart(self, exc: BaseException) -> None:
        log.error("document workers broken (%s); starting new ones", exc)
        self.shutdown(timeout_s=1.0)
        self.start()


_SHARED: dict[tuple[str, int], DocumentWorkers] = {}
_SHARED_LOCK = threading.Lock()


def shared_workers(mode: SchematronMode, processes: int, cache_dir: Path | None) -> DocumentWorkers:
    """The interpreter's pool for this mode and size (created on first call).

    The cache directory only speeds up the first compile, so it is not part of the key:
    a second engine in the same interpreter gets the validators already compiled.
    """
    key = (mode, processes)
    with _SHARED_LOCK:
        workers = _SHARED.get(key)
        if workers is None:
            workers = DocumentWorkers(mode, processes, cache_dir)
            _SHARED[key] = workers
        return workers


@atexit.register
def _shutdown_shared() -> None:
    for workers in list(_SHARED.values()):
        with contextlib.suppress(Exception):  # interpreter exit: best effort
            workers.shutdown()


__all__ = [
    "CheckedDocument",
    "DocumentWorkers",
    "WorkersUnavailable",
    "shared_workers",
]
