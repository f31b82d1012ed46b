"""The FastAPI application of `stylegan serve`: routes, JSON errors, and the path from a request to the worker.

Handlers are async and never touch torch: they validate (params), look in the cache, and await the worker's
Future. Errors are JSON {"error": MESSAGE, "parameter": NAME} (400), {"error": ...} (404, 413, 415),
{"error": "superseded", "slot": NAME} (409) and {"error": "busy"} (503).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .cache import CachedResponse
from .params import ParamError, Query
from .renders import GenerateRequest, InterpolateRequest, MixRequest, cache_key
from .state import ServeState
from .worker import Busy, Superseded

STATIC_DIR = Path(__file__).parent / "static"
COMMAND_HEADER = "X-Stylegan-Command"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
                ".ico": "image/x-icon", ".json": "application/json"}


class NotFound(Exception):
    """An unknown job, snapshot or static file: 404 with the message."""


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _network(state: ServeState, query: Query):
    count = len(state.networks)
    index = query.integer("net", 0, 0, count - 1)
    return state.networks[index]


def create_app(state: ServeState) -> FastAPI:
    """The app serving `state` (what `stylegan serve` loaded)."""
    app = FastAPI(title="stylegan serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serve = state

    @app.exception_handler(ParamError)
    async def _param_error(request: Request, exc: ParamError) -> JSONResponse:
        return error(400, exc.message, parameter=exc.parameter)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return error(exc.status_code, f"{message}: {request.method} {request.url.path}")

    async def on_worker(fn: Callable[[], Any], slot: Optional[str] = None) -> Any:
        """Runs fn on the worker and awaits it; Busy / Superseded propagate to the caller."""
        return await asyncio.wrap_future(state.worker.submit(fn, slot))

    async def image(request: Request, kind) -> Response:
        query = Query(request.query_params, kind.PARAMS)
        served = _network(state, query)
        slot = query.slot()
        parsed = kind.parse(query, served)
        key = cache_key(parsed)
        cached = state.cache.get(key) if parsed.cacheable else None
        if cached is None:
            try:
                body = await on_worker(lambda: parsed.render(served, state.precision), slot)
            except Superseded as exc:
                return error(409, "superseded", slot=exc.slot)
            except Busy:
                return error(503, "busy")
            cached = CachedResponse(body, parsed.media_type,
                                    {COMMAND_HEADER: parsed.command(state.device, state.precision)})
            if parsed.cacheable:
                state.cache.put(key, cached)
        return Response(cached.body, media_type=cached.media_type, headers=cached.headers)

    @app.get("/")
    async def index() -> Response:
        return _static_file("index.html")

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        return _static_file(name)

    @app.get("/api/info")
    async def info(request: Request) -> Dict[str, Any]:
        Query(request.query_params, ())
        return info_of(state)

    @app.get("/api/generate")
    async def generate(request: Request) -> Response:
        return await image(request, GenerateRequest)

    @app.get("/api/mix")
    async def mix(request: Request) -> Response:
        return await image(request, MixRequest)

    @app.get("/api/interpolate")
    async def interpolate(request: Request) -> Response:
        return await image(request, InterpolateRequest)

    return app


def _static_file(name: str) -> Response:
    """A file of the static folder, by its plain name only: anything not listed there (a path, '..') is a 404."""
    listed = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()} if STATIC_DIR.is_dir() else {}
    path = listed.get(name)
    if path is None:
        raise NotFound(f"no static file {name[:80]!r}")
    media_type = STATIC_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return Response(path.read_bytes(), media_type=media_type, headers={"Cache-Control": "no-cache"})


def info_of(state: ServeState) -> Dict[str, Any]:
    """/api/info: the networks (by index), the run, the device and the precision."""
    from ..generate import LAYER_GROUPS, layer_range

    networks = []
    for served in state.networks:
        cfg, num_layers = served.G.config, int(served.G.num_layers)
        groups = {}
        for group in LAYER_GROUPS:
            try:
                layers = layer_range(group, num_layers)
                groups[group] = [layers.start, layers.stop - 1]
            except ValueError:  # a group the network is too small to have
                groups[group] = None
        networks.append({"index": served.index, "name": served.name, "resolution": int(cfg.resolution),
                         "channels": int(cfg.num_channels), "num_layers": num_layers,
                         "latent_size": int(cfg.latent_size), "label_size": int(cfg.label_size),
                         "max_lod": cfg.max_lod, "default_lod": served.default_lod, "layer_groups": groups,
                         "directions": [{"name": d.name, "method": d.method, "count": d.count}
                                        for d in served.direction_sets.values()]})
    run = None if state.run_dir is None else {"name": state.run_dir.name}
    return {"networks": networks, "run": run, "device": str(state.device), "precision": state.precision.name}


__all__ = ["create_app", "info_of", "COMMAND_HEADER", "STATIC_DIR"]
