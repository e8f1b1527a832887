"""`rasid serve`: load a bundle once and answer over HTTP (the app itself lives in serving/api)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from serving.options import add_command, add_precision_option

log = logging.getLogger("rasid.serve")

# Flags for the settings an operator tunes per host; every other limit is an RASID_* variable
# (see serving/api/settings.py). The API key is deliberately env-only: flags show up in `ps`.
TUNING_FLAGS = {
    "max_batch_size": (int, "texts per model call (default: RASID_MAX_BATCH_SIZE, else 32)"),
    "max_wait_ms": (float, "how long a lone text waits to be batched (default: RASID_MAX_WAIT_MS, else 2.0)"),
    "max_queue_items": (int, "texts allowed to wait; past it 429 (default: RASID_MAX_QUEUE_ITEMS, else 512)"),
    "request_timeout_s": (float, "per-request timeout; past it 504 (default: RASID_REQUEST_TIMEOUT_S, else 30.0)"),
}


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "serve",
        "serve a bundle over HTTP (FastAPI; OpenAPI at /docs)",
        "RASID_API_KEY=a-long-secret rasid serve --model models/my-bundle --port 8000",
        description="Serve a bundle over HTTP. Every limit is an RASID_* environment variable "
        "(serving/api/settings.py); the flags below set the ones tuned per host, and "
        "win over the environment. RASID_API_KEY protects the /v1 routes.",
    )
    parser.add_argument(
        "--model", required=True, type=Path, metavar="DIR", help="the bundle folder (from `rasid train`)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only unless changed)")
    parser.add_argument("--port", type=int, default=8000, metavar="N", help="port to listen on")
    for name, (kind, text) in TUNING_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, metavar="N", help=text)
    parser.add_argument(
        "--abstain-unseen-targets",
        action="store_const",
        const=True,
        default=None,
        help="answer 'uncertain' (scores kept) when a stance target was not seen in training "
        "(RASID_ABSTAIN_UNSEEN_TARGETS)",
    )
    add_precision_option(parser, env=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from serving.api.main import create_app
    from serving.api.settings import Settings
    from serving.bundle import read_manifest
    from serving.errors import RasidError

    read_manifest(args.model)  # a wrong folder fails here, in one sentence, before a port is opened
    overrides = {
        name: getattr(args, name)
        for name in (*TUNING_FLAGS, "precision", "abstain_unseen_targets")
        if getattr(args, name) is not None
    }
    try:
        settings = Settings(model_dir=args.model, **overrides)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
        raise RasidError(f"invalid server settings: {problems}.") from None
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        proxy_headers=False,
        # in-flight requests end by their own timeout; a little more lets them answer
        timeout_graceful_shutdown=settings.request_timeout_s + 5,
    )
    server = uvicorn.Server(config)
    # The port opens at once and /readyz says "loading" meanwhile; a bundle that fails to load (damaged
    # weights, heads that do not match the labels) stops the server, and the command fails with the reason.
    service = app.state.service
    service.on_load_failure = lambda: setattr(server, "should_exit", True)
    # uvicorn re-raises the signal after its graceful shutdown; ignoring SIGTERM at that point turns
    # "stopped on request, everything answered" into exit status 0, as process managers expect.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run()
    if service.load_error:
        raise RasidError(service.load_error)
    log.info("rasid serve stopped")
    return 0
