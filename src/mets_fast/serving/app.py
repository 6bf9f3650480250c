"""The HTTP face of a :class:`~mets_fast.serving.service.Service`: a FastAPI app.

    GET  /health          {"status": "ok", "model": id}  (no key needed)
    GET  /v1/info         the model's preprocessing, the limits, the indexes, the built-in tasks
    POST /v1/zeroshot     an ECG (or "ecgs") and classes or a task -> probabilities
    POST /v1/retrieve     an ECG or a text, an index and k -> the nearest items
    POST /v1/embed        an ECG or a text -> its embedding
    POST /v1/record       an uploaded record's samples as a JSON ECG (what the page plots)
    GET  /v1/examples     the example records; /v1/examples/NAME one of them as a JSON ECG
    GET  /                a page to try the model on a record

An ECG comes as JSON (``{"ecg": {"signal", "fs", "leads"}}``), as a ``.npy`` body
(``application/octet-stream``, the other fields as query parameters) or as an upload
(``multipart/form-data``: the record's files in ``files``, the other fields as form fields;
``classes`` as a JSON string).  Every bad request is answered 4xx with ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from contextlib import asynccontextmanager
from importlib import resources
from typing import Literal, Optional, Union

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from .inputs import (Recording, labelled, parse_int, read_form, read_json_body,
                     read_npy_body)
from .limits import LimitExceeded, check_text, over
from .service import Job, Service

PAGE = resources.files(__package__) / "page"
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_TYPES = ("application/json", "application/octet-stream", "multipart/form-data")


# ---------------------------------------------------------------- the schema (/docs)

class ECG(BaseModel):
    signal: list[list[float]] = Field(description="leads x samples, in mV")
    fs: float = Field(description="sampling rate in Hz")
    leads: list[str] = Field(description="the name of each row (any of the 12 standard "
                                         "leads, any order; the others are zeros)")


class ZeroShotRequest(BaseModel):
    ecg: Optional[ECG] = None
    ecgs: Optional[list[ECG]] = Field(None, description="several ECGs (up to --max-batch)")
    classes: Optional[Union[list[str], dict[str, list[str]]]] = Field(
        None, description="class names, or name -> descriptions")
    task: Optional[str] = Field(None, description="a built-in task (see /v1/info)")
    kind: Optional[Literal["diagnostic", "form", "rhythm"]] = None


class RetrieveRequest(BaseModel):
    ecg: Optional[ECG] = None
    ecgs: Optional[list[ECG]] = None
    text: Optional[str] = Field(None, description="a report, to find the ECGs it matches")
    index: str = Field(description="an index name (see /v1/info)")
    k: int = Field(5, description="results, from 1 to the index's size")


class EmbedRequest(BaseModel):
    ecg: Optional[ECG] = None
    ecgs: Optional[list[ECG]] = None
    text: Optional[str] = None


class ZeroShotResult(BaseModel):
    classes: list[str]
    probabilities: list[list[float]] = Field(description="one row per window")
    mean: list[float] = Field(description="the softmax of the windows' mean logits")
    windows: list[list[float]] = Field(description="[start_s, end_s] of each window")


class Hit(BaseModel):
    rank: int
    score: float
    text: Optional[str] = None
    id: Optional[Union[str, int]] = None


class RetrieveResult(BaseModel):
    results: list[Hit]


class EmbedResult(BaseModel):
    embedding: list[float]


def _body_doc(model: type) -> dict:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema(
            ref_template="#/components/schemas/{model}")},
        "application/octet-stream": {"schema": {
            "type": "string", "format": "binary",
            "description": "a .npy array (leads x samples); fs, leads (comma-separated) and "
                           "the other fields as query parameters"}},
        "multipart/form-data": {"schema": {
            "type": "object", "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "a WFDB (.hea + .dat) or Challenge (.hea + .mat) "
                                         "record"}},
            "description": "the other fields as form fields (classes as a JSON string)"}}}}}


# ---------------------------------------------------------------- the app

def create_app(service: Service, *, api_key: str | None = None,
               max_upload_mb: float = 64.0, max_json_mb: float = 8.0,
               max_reading_mb: float | None = None) -> FastAPI:
    """The app serving `service`; with `api_key`, every path but ``/health`` and the page's
    own files needs ``Authorization: Bearer <key>`` (the scheme in any case).  Bodies over
    `max_upload_mb` (JSON bodies over `max_json_mb`: parsing JSON holds the interpreter for
    ~15 ms a MB, and a .npy body carries the same ECG in a fifth of the bytes) are answered
    413 before more of them is read; while `max_reading_mb` of bodies (default: twice the
    upload limit) are being read or parsed, another is answered 503 (memory stays bounded
    whatever the clients send at once).  Bodies are parsed, and uploads read, in a thread of
    their own, one at a time, never on the event loop."""

    batcher = service.batcher()

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="mets_fast", lifespan=lifespan,
                  description="Zero-shot ECG classification, ECG-report retrieval and "
                              "embeddings with a METS model")
    app.state.batcher = batcher
    limits = service.limits

    @app.exception_handler(HTTPException)
    async def _http(_request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"},
                            status_code=422)

    @app.exception_handler(LimitExceeded)
    async def _too_much(_request, exc: LimitExceeded):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(ValueError)
    async def _bad(_request, exc: ValueError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(TypeError)
    async def _bad_type(_request, exc: TypeError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _bug(_request, exc: Exception):  # a bug: logged with its traceback by uvicorn
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server "
                                      f"goes on serving"}, status_code=500)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": service.id}

    @app.get("/v1/info")
    async def info() -> dict:
        return service.info()

    async def answered(request: Request, check) -> tuple:
        """Reads the request and queues a :class:`Job` per ECG with the fields ``check(fields,
        ecgs)`` returns after checking them (it raises: nothing is queued), all while the batcher
        expects the request; then awaits the batch's answers (None for a request without ECGs):
        ``(fields, job fields, answers, many)``."""
        with batcher.expecting():
            fields, ecgs, many = await _read(request, service)
            options = check(fields, ecgs)
            windows = sum(service.window_count(r) for r in ecgs or ())
            over(limits, "windows", windows, f"the request makes {windows:,} windows of "
                                             f"{service.model.settings.seconds:g} s", 413)
            futures = [batcher.submit(Job(r, **options)) for r in ecgs or ()]
        return fields, options, (await _answers(futures, many) if ecgs else None), many

    @app.post("/v1/zeroshot", openapi_extra=_body_doc(ZeroShotRequest),
              responses={200: {"model": ZeroShotResult}})
    async def zeroshot(request: Request):
        def check(fields: dict, ecgs) -> dict:
            if not ecgs:
                raise ValueError("give an ECG (ecg, a .npy body or uploaded files) to classify")
            return {"prompts": service.prompts(fields.get("classes"), fields.get("task"),
                                               fields.get("kind"))}

        _, _, answers, many = await answered(request, check)
        results = [{**a.zeroshot, "warnings": a.warnings} for a in answers]
        return results if many else results[0]

    @app.post("/v1/retrieve", openapi_extra=_body_doc(RetrieveRequest),
              responses={200: {"model": RetrieveResult}})
    async def retrieve(request: Request):
        def check(fields: dict, ecgs) -> dict:
            index = fields.get("index")
            if not isinstance(index, str):
                raise ValueError(f"give the index to search (one of {sorted(service.indexes)})")
            k = parse_int(fields.get("k", 5), "k")
            service.check_search(index, k)
            _text(fields, ecgs, limits)
            return {"index": index, "k": k}

        fields, search, answers, many = await answered(request, check)
        if answers is None:  # a text: the language model, not a batch
            query = await service.run(service.text_query, fields["text"])
            return {"results": (await service.run(service.search, search["index"], query,
                                                  [search["k"]]))[0]}
        results = [{"results": a.hits, "warnings": a.warnings} for a in answers]
        return results if many else results[0]

    @app.post("/v1/embed", openapi_extra=_body_doc(EmbedRequest),
              responses={200: {"model": EmbedResult}})
    async def embed(request: Request):
        def check(fields: dict, ecgs) -> dict:
            _text(fields, ecgs, limits)
            return {}

        fields, _, answers, many = await answered(request, check)
        if answers is None:
            return {"embedding": (await service.run(service.text_query,
                                                    fields["text"]))[0].tolist()}
        results = [{"embedding": a.query[0].tolist(), "warnings": a.warnings} for a in answers]
        return results if many else results[0]

    @app.post("/v1/record", openapi_extra=_body_doc(EmbedRequest),
              responses={200: {"model": ECG}})
    async def record(request: Request) -> dict:
        """The samples of an uploaded record (or of a .npy body) as a JSON ECG, as the page
        plots it (invalid samples null, as ``/v1/zeroshot`` takes them back)."""
        _, ecgs, _ = await _read(request, service)
        if not ecgs:
            raise ValueError("give a record (uploaded files or a .npy body)")
        return await service.read(_as_json, ecgs[0])

    @app.get("/v1/examples")
    async def examples() -> dict:
        return {"examples": sorted(_examples())}

    @app.get("/v1/examples/{name}")
    async def example(name: str) -> dict:
        found = _examples()
        if name not in found:
            raise HTTPException(404, f"no example {name!r}; the examples are {sorted(found)}")
        from ..data.records import read_record

        def shown() -> dict:
            record = read_record(found[name])
            return _as_json(Recording(record.signal, record.fs, record.leads))

        return {"name": name, **(await service.read(shown))}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE / "index.html")

    @app.get("/page/{name}", include_in_schema=False)
    async def page_file(name: str):
        files = {p.name: p for p in PAGE.iterdir() if p.name != "index.html"}
        if name not in files:  # only the page's own files, by name: never a path
            raise HTTPException(404, f"no page file {name!r}")
        return FileResponse(files[name])

    public = {"/health", "/", *(f"/page/{p.name}" for p in PAGE.iterdir())}
    reading = 2 * max_upload_mb if max_reading_mb is None else max_reading_mb
    return _Guard(app, api_key, public,
                  {"": (int(max_upload_mb * 2**20), "--max-upload-mb"),
                   "application/json": (int(min(max_json_mb, max_upload_mb) * 2**20),
                                        "--max-json-mb; a .npy body carries more"
                                        if max_json_mb < max_upload_mb else "--max-upload-mb")},
                  int(reading * 2**20))


class _Guard:
    """ASGI middleware in front of the app: the API key, then the body limits (a body is read
    up to its type's limit, ``limits[type]`` = (bytes, the flag that sets it), and handed on
    whole, or answered 413 without reading more; 503 while the bodies being read and parsed
    would pass `reading` bytes)."""

    def __init__(self, app: FastAPI, api_key: str | None, public: set, limits: dict,
                 reading: int):
        self.app, self.api_key, self.public = app, api_key, public
        self.limits, self.reading, self.in_flight = limits, reading, 0

    def __getattr__(self, name):  # the FastAPI app's own attributes (routes, openapi...)
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        if self.api_key is not None and scope["path"] not in self.public:
            scheme, _, given = headers.get("authorization", "").strip().partition(" ")
            if scheme.lower() != "bearer" or \
                    not secrets.compare_digest(given.strip().encode(), self.api_key.encode()):
                return await _answer(send, 401, "a valid API key is needed: send the header "
                                                "'Authorization: Bearer <key>'")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        limit, flag = self.limits.get(kind, self.limits[""])
        too_big = f"the body is over the limit of {limit / 2**20:g} MB ({flag})"
        declared = headers.get("content-length")
        if declared is not None and not _DIGITS.match(declared):
            return await _answer(send, 400, f"invalid Content-Length {declared[:40]!r}")
        if declared is not None and int(declared) > limit:
            return await _answer(send, 413, too_big)
        chunks, size = [], 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                self.in_flight += len(chunks[-1])
                if size > limit:
                    return await _answer(send, 413, too_big)
                if self.in_flight > self.reading and size:
                    return await _answer(send, 503, "the server is reading other large "
                                                    "requests: try again in a moment",
                                         retry=True)
                if not message.get("more_body", False):
                    break
            body, sent = b"".join(chunks), False
            del chunks

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay, send)
        finally:
            self.in_flight -= size


async def _answer(send, status: int, error: str, retry: bool = False) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            *([(b"retry-after", b"1")] if retry else [])]})
    await send({"type": "http.response.body", "body": body})


async def _read(request: Request, service: Service) -> tuple:
    """The request's fields, its ECGs (None when it has none) and whether it asked for a
    list (``ecgs``): parsed and checked in the service's reading thread."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _TYPES:
        raise HTTPException(415, f"content type {kind or 'none'!r} is not accepted: send "
                                 f"{', '.join(_TYPES)}")
    if kind == "application/json":
        return await service.read(read_json_body, await request.body(), service.max_batch,
                                  service.limits)
    if kind == "application/octet-stream":
        return await service.read(read_npy_body, dict(request.query_params),
                                  await request.body(), service.limits)
    form = await request.form(max_files=64, max_fields=64)
    try:
        files = [(f.filename or "", await f.read()) for f in form.getlist("files")
                 if not isinstance(f, str)]
        fields = {k: v for k, v in form.items() if k != "files" and isinstance(v, str)}
    finally:
        await form.close()  # the spooled temporary files go now
    return await service.read(read_form, fields, files, service.limits)


def _text(fields: dict, ecgs, limits) -> str | None:
    """The request's text (a report), or None when it gives ECGs; an error unless it gives
    one of the two."""
    text = fields.get("text")
    if (ecgs is None) == (text is None):
        raise ValueError("give an ECG or a text (one of the two)")
    if ecgs is None and (not isinstance(text, str) or not text.strip()):
        raise ValueError("text must be a non-empty report")
    if ecgs is None:
        check_text(limits, text)
    return text


async def _answers(futures: list, many: bool) -> list:
    """The batch's answers to a request's jobs, or the first job's error (after all are
    done: none is left unread), naming its entry (``ecgs[2]: ...``) in a list."""
    answers = await asyncio.gather(*futures, return_exceptions=True)
    for k, answer in enumerate(answers):
        if isinstance(answer, ValueError) and many:
            raise labelled(answer, f"ecgs[{k}]")
        if isinstance(answer, BaseException):
            raise answer
    return answers


def _as_json(recording: Recording) -> dict:
    """A recording as a JSON ECG: each sample with the 9 significant digits that give back
    its float32 value (the precision a record is read in), invalid ones null."""
    rows = [[float(f"{v:.9g}") if np.isfinite(v) else None for v in row]
            for row in np.asarray(recording.signal, dtype=np.float32).tolist()]
    return {"signal": rows, "fs": recording.fs, "leads": list(recording.leads)}


def _examples() -> dict:
    """name -> the path of each example record of the package (:mod:`mets_fast.examples`)."""
    from .. import examples

    return {name: str(examples.path(name)) for name in examples.names()}
