"""HTTP face of the simulated DMP (FastAPI): the two XDS.b endpoints and `/_sim` control."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pfi.simulators.dmp.control import FailurePlan, PlannedFailure
from pfi.simulators.dmp.registry import DmpRegistry
from pfi.simulators.dmp.service import DmpService, HttpAnswer, SimulatorOptions
from pfi.transforms.xds import ns
from pfi.transforms.xds.registry_response import RegistryError
from pfi.transforms.xds.soap import render_fault


class FailureRequest(BaseModel):
    """Body of POST /_sim/fail: what to do to the next `count` XDS requests."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["http_500", "hang", "refuse", "soap_fault"]
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    seconds: Annotated[float, Field(ge=0, le=300)] = 30.0
    error_code: str = "XDSRegistryError"
    code_context: str = "failure injected by the simulator"
    status_code: Annotated[int, Field(ge=500, le=599)] = 500


def create_app(
    registry: DmpRegistry | None = None,
    options: SimulatorOptions | None = None,
    failures: FailurePlan | None = None,
) -> FastAPI:
    # `is None`, not `or`: an empty registry is falsy (len 0) and must still be the one used
    registry = DmpRegistry() if registry is None else registry
    failures = FailurePlan() if failures is None else failures
    service = DmpService(registry, options or SimulatorOptions())
    app = FastAPI(title="PFI DMP simulator", docs_url=None, redoc_url=None)
    app.state.registry = registry
    app.state.failures = failures
    app.state.counts = {"iti41": 0, "iti57": 0}

    async def xds(request: Request, action: str, counter: str) -> Response:
        app.state.counts[counter] += 1
        body = await request.body()
        failure = failures.take()
        if failure is not None:
            early = await _inject(failure, service, body, request, action)
            if early is not None:
                return early
        answer = service.handle(body, request.headers.get("content-type", ""), action)
        return _to_response(answer)

    @app.post("/repository")
    async def repository(request: Request) -> Response:
        return await xds(request, ns.ACTION_ITI41, "iti41")

    @app.post("/registry")
    async def registry_endpoint(request: Request) -> Response:
        return await xds(request, ns.ACTION_ITI57, "iti57")

    @app.get("/_sim/documents")
    async def documents(ins: Annotated[str, Query(min_length=1)]) -> JSONResponse:
        return JSONResponse([s.to_json() for s in registry.for_patient(ins)])

    @app.get("/_sim/documents/{entry_uuid}/content")
    async def content(entry_uuid: str) -> Response:
        stored = registry.get(entry_uuid)
        if stored is None:
            return JSONResponse({"error": f"no entry {entry_uuid}"}, status_code=404)
        return Response(stored.content, media_type=stored.entry.mime_type or "text/xml")

    @app.post("/_sim/fail")
    async def fail(plan: FailureRequest) -> JSONResponse:
        failures.add(
            PlannedFailure(
                plan.mode, plan.seconds, plan.error_code, plan.code_context, plan.status_code
            ),
            plan.count,
        )
        return JSONResponse({"pending_failures": len(failures)})

    @app.post("/_sim/patients/{ins}/close")
    async def close_dmp(ins: str) -> JSONResponse:
        registry.closed_ins.add(ins)
        return JSONResponse({"closed": sorted(registry.closed_ins)})

    @app.post("/_sim/reset")
    async def reset() -> JSONResponse:
        registry.reset()
        failures.clear()
        app.state.counts.update(iti41=0, iti57=0)
        return JSONResponse({"reset": True})

    @app.get("/_sim/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(
            {
                "requests": app.state.counts,
                "entries": len(registry),
                "pending_failures": len(failures),
            }
        )

    return app


async def _inject(
    failure: PlannedFailure, service: DmpService, body: bytes, request: Request, action: str
) -> Response | None:
    if failure.mode == "hang":
        await asyncio.sleep(failure.seconds)
        return None
    if failure.mode == "http_500":
        return Response(
            b"<html><body>Service temporarily unavailable</body></html>",
            status_code=failure.status_code,
            media_type="text/html",
        )
    if failure.mode == "soap_fault":
        return Response(
            render_fault("Receiver", failure.code_context),
            status_code=500,
            media_type="application/soap+xml",
        )
    # refuse: a well-formed RegistryResponse Failure with the given error
    answer = service.refusal(
        body,
        request.headers.get("content-type", ""),
        action,
        RegistryError(failure.error_code, failure.code_context),
    )
    return _to_response(answer)


def _to_response(answer: HttpAnswer) -> Response:
    return Response(
        answer.body, status_code=answer.status, headers={"Content-Type": answer.content_type}
    )
