"""The engine's HTTP application: open health and metrics endpoints, and the ops API.

Only `/healthz`, `/readyz` and `/metrics` are open; everything that reads patient data
or changes state sits behind authentication (added with the routing issue).
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from pfi import __version__
from pfi.observability.health import Readiness


def create_app(readiness: Readiness, registry: CollectorRegistry = REGISTRY) -> FastAPI:
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

    return app
