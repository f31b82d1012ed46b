"""The FastAPI application of `stylegan serve`: routes, JSON errors, and the path from a request to the worker.

Handlers are async and never touch torch: they validate (params), look in the cache, and await the worker's
Future. Errors are JSON {"error": MESSAGE, "parameter": NAME} (400), {"error": ...} (404, 413, 415),
{"error": "superseded", "slot": NAME} (409) and {"error": "busy"} (503).
"""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..images import png_bytes
from ..plot import default_keys
from ..projection.targets import TargetImageError
from .cache import CachedResponse
from .jobs import MAX_JOBS_KEPT, JobStore
from .params import ParamError, Query
from .renders import EditRequest, GenerateRequest, InterpolateRequest, MixRequest, cache_key
from .run_view import RunView
from .state import ServeState
from .uploads import (MAX_UPLOAD_BYTES, PROJECT_FIELDS, UploadTooLarge, parse_project_fields, prepare_target,
                      read_upload_form, upload_name)
from .worker import Busy, Superseded

STATIC_DIR = Path(__file__).parent / "static"
COMMAND_HEADER = "X-Stylegan-Command"
DEFAULT_MAX_IMAGE_PIXELS = int(1024 * 1024 * 1024 // 4 // 3)  # Pillow's own default: a 1 GB RGBA decode
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
                ".ico": "image/x-icon", ".json": "application/json"}


class ClientGone(Exception):
    """The client disconnected while its request was pending; the request was withdrawn from the queue."""


async def _disconnected(request: Request) -> None:
    """Returns when the client has disconnected (the ASGI server's http.disconnect); GET bodies are empty."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


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
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.jobs.cancel_all()   # a running projection stops at its next step, so the worker thread ends
        state.worker.close()

    app = FastAPI(title="stylegan serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.serve = state
    state.jobs = JobStore(state.worker)
    if state.run_dir is not None:
        state.run_view = RunView(state.run_dir)
    keep_decompression_bomb_limit()

    @app.exception_handler(ParamError)
    async def _param_error(request: Request, exc: ParamError) -> JSONResponse:
        return error(400, exc.message, parameter=exc.parameter)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not bad input: still JSON, naming the exception (the server's log has the traceback)."""
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return error(exc.status_code, f"{message}: {request.method} {request.url.path}")

    async def on_worker(request: Request, fn: Callable[[], Any], slot: Optional[str] = None) -> Any:
        """Runs fn on the worker and awaits it; Busy / Superseded propagate to the caller. A client that closes
        its connection while the request still waits (the page aborts a stale fetch) withdraws it: ClientGone."""
        future = state.worker.submit(fn, slot)
        answer = asyncio.wrap_future(future)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not answer.done() and state.worker.withdraw(future):
            raise ClientGone()
        return await answer

    async def respond(request: Request, parsed: Any, slot: Optional[str], render: Callable[[], bytes],
                      command: Callable[[], str]) -> Response:
        """The cached answer of `parsed`, else render() on the worker (409 when superseded, 503 when busy)."""
        key = cache_key(parsed)
        cached = state.cache.get(key) if parsed.cacheable else None
        if cached is None:
            try:
                body = await on_worker(request, render, slot)
            except ClientGone:
                return error(499, "the client closed the connection")
            except Superseded as exc:
                return error(409, "superseded", slot=exc.slot)
            except Busy:
                return error(503, "busy")
            cached = CachedResponse(body, parsed.media_type, {COMMAND_HEADER: command()})
            if parsed.cacheable:
                state.cache.put(key, cached)
        return Response(cached.body, media_type=cached.media_type, headers=cached.headers)

    async def image(request: Request, kind) -> Response:
        query = Query(request.query_params, kind.PARAMS)
        served = _network(state, query)
        slot = query.slot()
        parsed = kind.parse(query, served)
        return await respond(request, parsed, slot, lambda: parsed.render(served, state.precision),
                             lambda: parsed.command(state.device, state.precision))

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

    # -- projection jobs --------------------------------------------------------------------------------------

    def job_of(job_id: str):
        job = state.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id[:40]!r} (unknown, or forgotten after {MAX_JOBS_KEPT} newer jobs)")
        return job

    @app.post("/api/project")
    async def project(request: Request) -> Response:
        try:
            form = await read_upload_form(request)
        except UploadTooLarge as exc:
            return error(413, str(exc))
        upload = form.get("image")
        fields = {k: v for k, v in form.items() if k != "image"}
        query = Query(fields, PROJECT_FIELDS)
        served = _network(state, query)
        if upload is None or isinstance(upload, str):
            raise ParamError("image", "image is missing: expected an image file (multipart field 'image')")
        options = parse_project_fields(query, served, state.vgg16)
        name = upload_name(upload.filename)
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            return error(413, f"the image is over the upload limit of {MAX_UPLOAD_BYTES >> 20} MB")
        try:
            target, target_png = await asyncio.to_thread(prepare_target, data, name, served.G)
        except TargetImageError as exc:
            return error(415, str(exc))
        try:
            job = state.jobs.start(served=served, target_name=name, target=target, vgg16=state.vgg16,
                                   precision=state.precision, **options)
        except Busy:
            return error(503, "busy")
        job.target_png = target_png
        return JSONResponse({"job": job.id})

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str, request: Request) -> Dict[str, Any]:
        Query(request.query_params, ())
        return job_of(job_id).status()

    @app.delete("/api/jobs/{job_id}")
    async def job_cancel(job_id: str) -> Dict[str, Any]:
        job = job_of(job_id)
        state.jobs.cancel(job)
        return job.status()

    @app.get("/api/jobs/{job_id}/image")
    async def job_image(job_id: str) -> Response:
        job = job_of(job_id)
        current = job.current
        if current is None:
            raise NotFound(f"job {job_id} has no image yet (state {job.state})")
        body = await asyncio.to_thread(png_bytes, current)
        return Response(body, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/target")
    async def job_target(job_id: str) -> Response:
        return Response(job_of(job_id).target_png, media_type="image/png")

    @app.get("/api/jobs/{job_id}/ws")
    async def job_ws(job_id: str) -> Response:
        job = job_of(job_id)
        if job.npz is None:
            raise NotFound(f"job {job_id} has no latents yet (state {job.state})")
        return Response(job.npz, media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="projected.npz"'})

    @app.get("/api/edit")
    async def edit(request: Request) -> Response:
        query = Query(request.query_params, EditRequest.PARAMS)
        served = _network(state, query)
        slot = query.slot()

        def finished_job(job_id: str) -> str:
            job = job_of(job_id)
            if job.state != "done" or job.served is not served:
                raise ParamError("job", f"job {job_id} is {job.state}" + ("" if job.served is served else
                                 f" for network {job.served.index}") + ": expected a finished projection of net="
                                 f"{served.index}")
            return job_id

        parsed = EditRequest.parse(query, served, finished_job)
        job = None if parsed.job is None else job_of(parsed.job)
        return await respond(request, parsed, slot, lambda: parsed.render(served, job),
                             lambda: parsed.command(served, state.device))

    # -- the run ----------------------------------------------------------------------------------------------

    def run_view():
        if state.run_view is None:
            raise NotFound("no run: start the server with --run RUN_DIR")
        return state.run_view

    @app.get("/api/run")
    async def run(request: Request) -> Dict[str, Any]:
        view = run_view()
        since = Query(request.query_params, ("since",)).integer("since", 0, 0, None)
        records = await asyncio.to_thread(view.records, since)
        keys = default_keys(await asyncio.to_thread(view.records, 0))  # the curves `stylegan plot` draws
        return {"name": view.name, "records": records, "keys": keys, "snapshots": view.snapshots()}

    @app.get("/api/run/snapshots/{name}")
    async def snapshot(name: str) -> Response:
        path = run_view().snapshot_path(name)
        if path is None:
            raise NotFound(f"no snapshot {name[:80]!r}: expected one of the names /api/run lists")
        return Response(await asyncio.to_thread(path.read_bytes), media_type="image/png")

    return app


def keep_decompression_bomb_limit() -> None:
    """Pillow's decompression-bomb check stays on (restored to its default if something turned it off)."""
    import PIL.Image

    if PIL.Image.MAX_IMAGE_PIXELS is None:
        PIL.Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS


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
