"""The ASGI app: the chat page, the OpenAI-compatible API and a health check.

    GET  /                     the chat page (self-contained: no request leaves this server)
    POST /v1/chat/completions  OpenAI chat completions, streamed as server-sent events or whole
    GET  /v1/models            the one model served
    GET  /health               liveness and load, for load balancers (no key needed)

Privacy: the access log holds method, path (never the query string), status and duration;
request and reply bodies are never logged or stored; no cookies are set. The page runs under a
Content-Security-Policy that only allows this server.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse

from mh_lightning.safety import NO_SAFETY_WARNING
from mh_lightning.serve.engine import Engine, Finished, Job
from mh_lightning.serve.protocol import (
    DONE,
    FINISH_REASONS,
    Completion,
    RequestError,
    conversation,
    generation_settings,
    parse_request,
)

access_log = logging.getLogger("mh_lightning.serve.access")

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
STATIC = {"chat.js": "text/javascript; charset=utf-8", "chat.css": "text/css; charset=utf-8"}


def read_static(name: str) -> str:
    return resources.files("mh_lightning.serve").joinpath(name).read_text(encoding="utf-8")


def page(engine: Engine) -> str:
    """page.html with the disclaimer (and the --no_safety warning) filled in."""
    notice = engine.guard.disclaimer.split("\n")[0]
    warning = "" if engine.guard.enabled else f'<p class="warning" role="alert">{html.escape(NO_SAFETY_WARNING)}</p>'
    return read_static("page.html").replace("{{disclaimer}}", html.escape(notice)).replace("{{warning}}", warning)


def error_response(err: RequestError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers={"Cache-Control": "no-store", **err.headers})


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes (checked as it arrives, not only by Content-Length)."""
    too_big = RequestError(413, f"the request body is larger than this server's limit of {limit} bytes "
                                "(--max_body_bytes): shorten the conversation", code="body_too_large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_big
    return bytes(body)


def create_app(engine: Engine, api_key: str | None = None, max_body_bytes: int = 1_000_000,
               cors_origins: list[str] | None = None) -> FastAPI:
    app = FastAPI(title="mh_lightning serve", docs_url=None, redoc_url=None, openapi_url=None)
    # uvicorn's access log writes query strings, and `access_log=False` does not stop it when the
    # root logger has a handler: switch it off here, whoever runs the app; ours replaces it
    logging.getLogger("uvicorn.access").disabled = True
    app.state.engine = engine
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)

    @app.middleware("http")
    async def log_access(request: Request, call_next: Any) -> Response:
        began = time.perf_counter()
        response = await call_next(request)
        access_log.info("%s %s %d %.3fs", request.method, request.url.path, response.status_code,
                        time.perf_counter() - began)
        return response

    def authorise(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise RequestError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY' "
                                    "(the server's --api_key or MH_LIGHTNING_API_KEY)", code="invalid_api_key")

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error_response(RequestError(404, f"no such endpoint: {request.method} {request.url.path}; see "
                                                "/v1/chat/completions, /v1/models, /health", code="not_found"))

    @app.exception_handler(405)
    async def wrong_method(request: Request, exc: Exception) -> JSONResponse:
        return error_response(RequestError(405, f"{request.method} is not allowed on {request.url.path}",
                                           code="method_not_allowed"))

    @app.get("/")
    async def chat_page() -> Response:
        return Response(page(engine), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise RequestError(404, f"no such file: /static/{name}", code="not_found")
        return Response(read_static(name), media_type=STATIC[name], headers=PAGE_HEADERS)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return engine.health()

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorise(request)
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "created": 0,
                                             "owned_by": "mh_lightning"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        authorise(request)
        body = parse_request(await read_body(request, max_body_bytes))
        talk = conversation(body, engine.guard)
        job = Job(talk, generation_settings(body, engine.defaults), asyncio.get_running_loop())
        engine.start(job)
        completion = Completion(engine.model_name)
        if body.stream:
            usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(stream(engine, job, completion, usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        return await whole(request, job, completion)

    return app


async def stream(engine: Engine, job: Job, completion: Completion, include_usage: bool) -> Any:
    """Server-sent events in OpenAI's chunk format. Each safety part starts a new chunk that names
    it in `mh_lightning_part`; a crisis reply is the first chunk, before any of the model's text."""
    part, role = None, {"role": "assistant"}
    async for kind, value in engine.events(job):
        if kind == "part":
            part = value
        elif kind == "text":
            yield completion.chunk({**role, "content": value}, part)
            role = {}
        elif kind == "error":  # headers are sent: the error travels as an event, as OpenAI does
            yield f"data: {json.dumps(value.body(), ensure_ascii=False)}\n\n"
            return
        else:
            done: Finished = value
            yield completion.chunk(role, None, FINISH_REASONS[done.stop_reason])
            if include_usage:
                yield completion.usage_chunk(done.prompt_tokens, done.completion_tokens)
    yield DONE


async def whole(request: Request, job: Job, completion: Completion) -> Response:
    """A non-streamed reply; a client that disconnects while it waits cancels its job."""
    parts: list[tuple[str, str]] = []
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(job.events.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return Response(status_code=499)
                continue
            if kind == "part":
                parts.append((value, ""))
            elif kind == "text":
                label, text = parts.pop() if parts else ("answer", "")
                parts.append((label, text + value))
            elif kind == "error":
                return error_response(value)
            else:
                done: Finished = value
                return JSONResponse(completion.whole(parts, FINISH_REASONS[done.stop_reason], done.prompt_tokens,
                                                     done.completion_tokens), headers={"Cache-Control": "no-store"})
    finally:
        job.cancel.set()
