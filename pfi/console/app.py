"""The engine's HTTP application: open health and metrics endpoints, and the ops API.

`/healthz`, `/readyz` and `/metrics` are open: orchestrators and Prometheus call them
and they reveal no patient data. Everything under `/api` that reads patient data or
changes state requires a bearer token whose user's role covers the endpoint's
(`pfi.console.auth.require`), and is audited (`pfi.console.audit`). The API's own
description (`/api/docs`, `/api/openapi.json`) is open: it holds no data, and its
"Authorize" button is how an operator tries the API with their token.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from pfi import __version__
from pfi.console.auth import TokenAuthenticator
from pfi.console.routers import API_ROUTERS
from pfi.inbound.service import InboundIntegrator
from pfi.observability.health import Readiness
from pfi.routes.router import Router
from pfi.store import Database


def create_app(
    readiness: Readiness,
    registry: CollectorRegistry = REGISTRY,
    *,
    db: Database | None = None,
    authenticator: TokenAuthenticator | None = None,
    router: Router | None = None,
    on_outbox_committed: Callable[[], None] | None = None,
    inbound: InboundIntegrator | None = None,
) -> FastAPI:
    """The HTTP app; the ops API under /api is mounted only when a store is given.

    `router` (the loaded routes) serves the acts that route documents again (hold
    release, masking); `on_outbox_committed` wakes the outbox relay after such an act.
    `inbound` (when `mssante.inbound` is configured) serves the KO worklist's assign and
    retry, which send the document to the DPI.
    """
    app = FastAPI(
        title="PFI",
        version=__version__,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "alive", "version": __version__}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        ready, checks = readiness.check()
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    if db is not None:
        app.state.db = db
        app.state.router = router
        app.state.on_outbox_committed = on_outbox_committed
        app.state.inbound = inbound
        app.state.authenticator = authenticator or TokenAuthenticator(db)
        for api_router in API_ROUTERS:
            app.include_router(api_router, prefix="/api")

    return app
