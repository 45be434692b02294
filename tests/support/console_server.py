"""The ops HTTP app (`pfi.console.app.create_app`) on a loopback uvicorn server of its
own, without the rest of the engine: for API tests that need a store and real HTTP but
not the broker or the stages."""

from __future__ import annotations

import threading
import time

import uvicorn
from prometheus_client import CollectorRegistry

from pfi.console.app import create_app
from pfi.observability.health import Readiness
from pfi.store import Database


class ConsoleServer:
    def __init__(self, db: Database) -> None:
        self.outbox_notifications = 0
        app = create_app(
            Readiness(), CollectorRegistry(), db=db, on_outbox_committed=self._notified
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def _notified(self) -> None:
        self.outbox_notifications += 1

    def __enter__(self) -> ConsoleServer:
        self._thread = threading.Thread(target=self._server.run, name="console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the console server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
