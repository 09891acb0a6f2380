"""``python -m twin_lib.serving``: the twin under ``kserve.ModelServer``, locally and in a pod.

It takes the flags a KServe ServingRuntime passes (``--model_name``, ``--model_dir``,
``--http_port`` and KServe's own), reads every other setting from ``TWIN_*``, loads the twin,
adds the OpenAI-compatible routes to KServe's FastAPI application and serves. gRPC stays off
unless ``--grpc_port`` or ``--enable_grpc true`` is given (KServe's gRPC server listens
on every interface).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fastapi import FastAPI
from kserve import ModelServer
from kserve.constants.constants import DEFAULT_GRPC_PORT
from kserve.model_server import app as kserve_app
from kserve.model_server import parser as kserve_parser

from twin_lib.logs import configure_logging
from twin_lib.serving.errors import install_handlers
from twin_lib.serving.metrics import RequestMetrics
from twin_lib.serving.openai_api import openai_router
from twin_lib.serving.predictor import TwinModel
from twin_lib.settings import ServingSettings, TwinSettings, load_settings
from twin_lib.steps.serving import FeatureVersionMismatchError, ModelNotServableError
from twin_lib.storage.errors import StorageError

log = logging.getLogger(__name__)


class BoundModelServer(ModelServer):
    """KServe's model server with its REST listener bound to ``bind_host``.

    KServe's ``RESTServer`` writes ``host="0.0.0.0"`` into its ``uvicorn.Config`` and offers no
    option. ``ModelServer.start`` builds that server, then calls ``setup_event_loop`` and only
    then runs it; uvicorn reads ``config.host`` when it opens its socket. So this hook is the
    one moment where the config exists and nothing listens yet: changing the host there keeps
    KServe's own server, routes and shutdown untouched, where pre-bound sockets would need
    ``RESTServer.start`` to accept them (it does not) and patching the class would change every
    server in the process.
    """

    def __init__(self, *, bind_host: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.bind_host = bind_host

    def setup_event_loop(self) -> None:
        super().setup_event_loop()
        if self._rest_server is None:
            raise RuntimeError("the REST server was not built: run with --workers 1")
        self._rest_server.config.host = self.bind_host


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twin_lib.serving",
        parents=[kserve_parser],
        description="Serve the twin with KServe's model server (settings from TWIN_*).",
    )
    parser.add_argument(
        "--model_dir",
        type=Path,
        default=None,
        help="merged weights already on disk (the cluster's /mnt/models); "
        "default: download the registry version into the cache",
    )
    parser.set_defaults(model_name=None, http_port=None, grpc_port=None, enable_grpc=None)
    return parser


def serving_settings(settings: TwinSettings, args: argparse.Namespace) -> TwinSettings:
    """The settings with the command line's name and port, which win over ``TWIN_SERVING__*``."""
    flags = {"served_name": args.model_name, "http_port": args.http_port}
    given = {key: value for key, value in flags.items() if value is not None}
    serving = ServingSettings.model_validate({**settings.serving.model_dump(), **given})
    return settings.model_copy(update={"serving": serving})


def grpc_enabled(args: argparse.Namespace) -> bool:
    """gRPC only when asked for: ``--enable_grpc true`` or a ``--grpc_port``."""
    if args.enable_grpc is not None:
        return bool(args.enable_grpc)
    return args.grpc_port is not None


def mount(app: FastAPI, model: TwinModel) -> None:
    """Add the twin's routes, error shapes and request metrics to KServe's application."""
    app.include_router(openai_router(model, model.serving))
    install_handlers(app)
    app.add_middleware(RequestMetrics)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, as_json=settings.log_json)
    if settings.log_level.upper() != "DEBUG":
        # KServe logs two timing lines per request; twin_requests_total and the latency
        # histograms on /metrics carry the same, so they are kept for debugging only.
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    if args.workers != 1:
        raise SystemExit(
            f"--workers {args.workers}: the twin holds one model in this process; "
            "run more replicas instead"
        )
    settings = serving_settings(settings, args)
    serving = settings.serving
    model = TwinModel(settings, model_dir=args.model_dir)
    try:
        model.load()
    except (ModelNotServableError, FeatureVersionMismatchError, StorageError) as error:
        # Refusals and unreachable stores are the operator's to fix: one line, no traceback.
        log.error("cannot serve the twin", extra={"error": str(error)})
        raise SystemExit(f"✘ {error}") from None
    server = BoundModelServer(
        bind_host=serving.bind_host,
        http_port=serving.http_port,
        grpc_port=args.grpc_port or DEFAULT_GRPC_PORT,
        enable_grpc=grpc_enabled(args),
        max_threads=args.max_threads,
        workers=1,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    mount(kserve_app, model)
    host = f"[{serving.bind_host}]" if ":" in serving.bind_host else serving.bind_host
    log.info(
        "serving the twin",
        extra={
            "model": model.served.label,
            "status": model.served.status,
            "served_name": model.name,
            "url": f"http://{host}:{serving.http_port}",
            "generator": model.generator_name,
            "device": model.device,
            "grpc": grpc_enabled(args),
        },
    )
    try:
        server.start([model])
    finally:
        model.stop()
