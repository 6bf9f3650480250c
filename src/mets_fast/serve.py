"""``mets-fast serve``: a trained model (and indexes built with it) over HTTP, with dynamic
batching and a page to try it.

    mets-fast serve --model runs/x --index reports=indexes/reports
    METS_FAST_API_KEY=... mets-fast serve --model runs/x --host 0.0.0.0 --workers 2

Binds to 127.0.0.1 unless told otherwise; any other address needs an API key
(``METS_FAST_API_KEY`` or ``--api-key-file``), which every request but ``/health`` must then
carry as ``Authorization: Bearer <key>``.  The API is documented at ``/docs``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path

from .errors import UsageError, command, positive_int
from .serving.limits import FLAGS, MEANING, Limits

KEY_VARIABLE = "METS_FAST_API_KEY"
# how a worker process of --workers N learns its settings (uvicorn starts them by import)
SETTINGS_VARIABLE = "METS_FAST_SERVE_SETTINGS"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mets-fast serve", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", required=True, help="a run directory (mets_fast.train --out)")
    add("--index", action="append", default=[], metavar="NAME=DIR",
        help="an index built by this model (mets-fast index build), served as NAME; repeat")
    add("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    add("--port", type=int, default=8000, help="port (8000)")
    add("--threads", type=positive_int, help="the encoder's threads per worker (default: all "
                                             "cores / workers)")
    add("--workers", type=positive_int, default=1,
        help="worker processes, each loading the model and the indexes (1)")
    add("--max-batch", type=positive_int, default=64,
        help="most ECGs one batch of the model takes, gathered from concurrent requests; "
             "also the most ECGs of one request (64)")
    add("--max-wait-ms", type=float, default=5.0,
        help="how long a batch waits for requests still being read (5 ms); a lone request "
             "never waits")
    add("--max-upload-mb", type=float, default=64.0, help="largest request body (64 MB)")
    add("--max-json-mb", type=float, default=8.0,
        help="largest JSON body (8 MB; send long recordings as .npy bodies or uploads)")
    for name, default in Limits()._asdict().items():
        add(FLAGS[name], type=float if isinstance(default, float) else positive_int,
            default=default, help=f"{MEANING[name]} ({default:,})")
    add("--api-key-file", help=f"a file holding the API key (else ${KEY_VARIABLE})")
    return parser


def settings(args) -> dict:
    """The checked settings of a server (before anything is loaded); UsageError otherwise."""
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    if not args.max_wait_ms >= 0 or args.max_wait_ms > 10_000:
        raise UsageError(f"--max-wait-ms must be from 0 to 10000, got {args.max_wait_ms}")
    for flag, value in (("--max-upload-mb", args.max_upload_mb),
                        ("--max-json-mb", args.max_json_mb)):
        if not 0 < value <= 4096:
            raise UsageError(f"{flag} must be above 0 and at most 4096, got {value}")
    if not Path(args.model).is_dir():
        raise UsageError(f"--model {args.model}: not a run directory")
    indexes = {}
    for value in args.index:
        name, sep, folder = value.partition("=")
        if not sep or not name.strip() or not folder:
            raise UsageError(f"--index takes NAME=DIR, got {value!r}")
        if name in indexes:
            raise UsageError(f"--index names {name!r} twice")
        if not Path(folder).is_dir():
            raise UsageError(f"--index {name}: {folder} is not a directory")
        indexes[name] = str(Path(folder).resolve())
    key = _api_key(args.api_key_file)
    if key is not None and args.api_key_file is not None:
        # a worker of --workers N reads the key from the file itself: it never travels in the
        # settings (an environment variable every child process and /proc would show)
        key_file = str(Path(args.api_key_file).resolve())
    else:
        key_file = None
    if key is None and not _loopback(args.host):
        raise UsageError(f"refusing to serve on {args.host} without an API key: anyone who "
                         f"reaches it could use the model; set ${KEY_VARIABLE} or give "
                         f"--api-key-file (or bind to 127.0.0.1)")
    _free(args.host, args.port)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    return {"model": str(Path(args.model).resolve()), "indexes": indexes, "threads": threads,
            "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
            "max_upload_mb": args.max_upload_mb, "max_json_mb": args.max_json_mb,
            "api_key_file": key_file,
            "limits": limits_of(args)._asdict()}


def app_from_settings(values: dict):
    """The ASGI app of `values` (:func:`settings`): the model and indexes loaded, threads set,
    the API key read from its file or ``$METS_FAST_API_KEY``."""
    from .serving.app import create_app
    from .serving.service import Service
    from .threads import set_threads

    set_threads(values["threads"])
    limits = Limits(**values["limits"])
    service = Service.load(values["model"], values["indexes"], max_batch=values["max_batch"],
                           max_wait_ms=values["max_wait_ms"], limits=limits)
    return create_app(service, api_key=_api_key(values["api_key_file"]),
                      max_upload_mb=values["max_upload_mb"], max_json_mb=values["max_json_mb"])


def limits_of(args) -> Limits:
    """The per-request bounds the flags set (a UsageError for a bound that is not a positive
    number)."""
    try:
        return Limits(**{name: getattr(args, flag[2:].replace("-", "_"))
                         for name, flag in FLAGS.items()}).check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def worker_app():
    """uvicorn's factory in each worker process of ``--workers N``."""
    return app_from_settings(json.loads(os.environ[SETTINGS_VARIABLE]))


def _run(args) -> int:
    import uvicorn

    values = settings(args)
    where = f"http://{args.host}:{args.port}"
    if args.workers == 1:
        app = app_from_settings(values)
        print(f"serving {values['model']} at {where} (the API at {where}/docs)",
              file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    else:
        os.environ[SETTINGS_VARIABLE] = json.dumps(values)
        print(f"serving {values['model']} at {where} with {args.workers} workers",
              file=sys.stderr)
        uvicorn.run("mets_fast.serve:worker_app", factory=True, host=args.host,
                    port=args.port, workers=args.workers, log_level="warning")
    return 0


def _api_key(path: str | None) -> str | None:
    if path is not None:
        try:
            key = Path(path).read_text().strip()
        except OSError as exc:
            raise UsageError(f"--api-key-file {path}: {exc.strerror or exc}") from None
        if not key:
            raise UsageError(f"--api-key-file {path} is empty")
        return key
    return os.environ.get(KEY_VARIABLE, "").strip() or None


def _free(host: str, port: int) -> None:
    """A UsageError unless `port` on `host` can be bound, checked before the model is loaded
    (uvicorn would find out only after, and exit 3 behind a line saying it serves)."""
    import socket

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot serve at {host}:{port}: {exc.strerror or exc} (another "
                             f"server holds the port? give --port)") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that resolves elsewhere, or the wildcard's spellings


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
