"""`faceedit up`: the whole stack on this machine until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from faceedit.devstack.prometheus import LocalPrometheus, PrometheusNotFound, PrometheusStartError, find_binary
from faceedit.devstack.stack import LocalStack, StackConfig
from faceedit.devstack.supervisor import RestartPolicy, Supervisor
from faceedit.rpc.config import env_flag, parse_bool


def add_stack_flags(p: argparse.ArgumentParser) -> None:
    env_flag(
        p,
        "--parser-model",
        env="FACEEDIT_PARSER_MODEL",
        default=None,
        help="face parser: a SegFormer hub id (jonathandinu/face-parsing) or dir, exported to ONNX once, or a .onnx "
        "file served as it is (its I/O must be face_parser's: input image UINT8 [N,H,W,3], output labels UINT8 "
        "[N,H,W]); default a tiny random SegFormer",
    )
    env_flag(
        p,
        "--inpaint-model",
        env="FACEEDIT_INPAINT_MODEL",
        default=None,
        help="SDXL inpainting pipeline: hub id or dir; default a tiny random one",
    )
    env_flag(
        p,
        "--parser-revision",
        env="FACEEDIT_PARSER_REVISION",
        default=None,
        help="hub revision (commit sha or tag) of --parser-model to pin",
    )
    env_flag(
        p,
        "--inpaint-revision",
        env="FACEEDIT_INPAINT_REVISION",
        default=None,
        help="hub revision (commit sha or tag) of --inpaint-model to pin",
    )
    env_flag(
        p,
        "--device",
        env="FACEEDIT_DEVICE",
        default="auto",
        help="auto, cpu, cuda or cuda:N, for the inpainter and the parser (onnxruntime's CUDA provider in the "
        "local Triton; auto: the GPU when usable)",
    )
    env_flag(
        p,
        "--models-dir",
        env="FACEEDIT_MODELS_DIR",
        default=Path("models"),
        type=Path,
        metavar="DIR",
        help="where tiny models and exported ONNX files are kept",
    )
    env_flag(
        p,
        "--working-size",
        env="FACEEDIT_WORKING_SIZE",
        default=None,
        type=int,
        help="inpainting canvas (default 1024 with real SDXL, 512 with the tiny pipeline)",
    )
    env_flag(p, "--parser-size", env="FACEEDIT_PARSER_SIZE", default=512, type=int, help="parser input size")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("up", help="start Triton (parser), the inpainter and the orchestrator locally")
    add_stack_flags(p)
    env_flag(p, "--host", env="FACEEDIT_HOST", default="127.0.0.1", help="address every service binds")
    env_flag(p, "--port", env="FACEEDIT_PORT", default=50051, type=int, help="orchestrator (EditFace) port")
    env_flag(
        p,
        "--triton-grpc-port",
        env="FACEEDIT_TRITON_GRPC_PORT",
        default=8001,
        type=int,
        help="Triton gRPC (parser replicas take the next free ports)",
    )
    for what, env, port in (("http", "HTTP", 8000), ("metrics", "METRICS", 8002)):
        env_flag(
            p,
            f"--triton-{what}-port",
            env=f"FACEEDIT_TRITON_{env}_PORT",
            default=None,
            type=int,
            help=f"Triton {what} (default: Triton's own {port} beside --triton-grpc-port 8001 when free, else a "
            "free port; the line `parser:` prints it)",
        )
    env_flag(p, "--inpainter-port", env="FACEEDIT_INPAINTER_PORT", default=50052, type=int, help="inpainter gRPC")
    env_flag(p, "--metrics-port", env="FACEEDIT_METRICS_PORT", default=9101, type=int, help="orchestrator metrics")
    env_flag(
        p,
        "--inpainter-metrics-port",
        env="FACEEDIT_INPAINTER_METRICS_PORT",
        default=9100,
        type=int,
        help="inpainter metrics (replicas take the next ports that no other server of the stack uses)",
    )
    env_flag(
        p,
        "--inpainter-replicas",
        env="FACEEDIT_INPAINTER_REPLICAS",
        default=1,
        type=int,
        help="inpainter processes, balanced per call by the orchestrator (ports from --inpainter-port up, skipping "
        "ports another server of the stack uses)",
    )
    env_flag(
        p,
        "--parser-replicas",
        env="FACEEDIT_PARSER_REPLICAS",
        default=1,
        type=int,
        help="Triton servers for the parser, balanced per call (ports from --triton-grpc-port up)",
    )
    env_flag(
        p,
        "--secure",
        env="FACEEDIT_SECURE_DIR",
        default=None,
        type=Path,
        metavar="DIR",
        help="TLS on every hop, mTLS between services and a bearer token: writes a throwaway CA, certificates and "
        "a token into this directory (reused while valid); clients take --secure DIR",
    )
    env_flag(
        p,
        "--prometheus",
        env="FACEEDIT_PROMETHEUS",
        default=False,
        type=parse_bool,
        switch=True,
        help="also run a local Prometheus (Debian's `prometheus` binary) scraping every server, faceedit's rules "
        "loaded; its URL is printed",
    )
    env_flag(
        p,
        "--prometheus-port",
        env="FACEEDIT_PROMETHEUS_PORT",
        default=9090,
        type=int,
        help="port of --prometheus's web UI and API (0: a free one)",
    )
    env_flag(
        p,
        "--tracing",
        env="FACEEDIT_TRACING",
        default=False,
        type=parse_bool,
        switch=True,
        help="OpenTelemetry tracing on every service, exported to OTEL_EXPORTER_OTLP_ENDPOINT (default "
        "localhost:4317; Triton sends to the same host's OTLP/HTTP port 4318)",
    )
    env_flag(
        p,
        "--reflection",
        env="FACEEDIT_REFLECTION",
        default=False,
        type=parse_bool,
        switch=True,
        help="serve gRPC reflection on the orchestrator's port (for grpcurl)",
    )
    env_flag(
        p,
        "--restart-limit",
        env="FACEEDIT_RESTART_LIMIT",
        default=3,
        type=int,
        help="a child that dies is restarted with backoff; up gives up (exit 1, naming it and why) when one child "
        "fails this many times within --restart-window",
    )
    env_flag(
        p,
        "--restart-window",
        env="FACEEDIT_RESTART_WINDOW",
        default=60.0,
        type=float,
        help="seconds over which a child's failures count towards --restart-limit",
    )
    env_flag(
        p,
        "--restart-backoff",
        env="FACEEDIT_RESTART_BACKOFF",
        default=1.0,
        type=float,
        help="seconds before the first restart of a child; doubled for each further failure within the window",
    )
    p.set_defaults(handler=run)


def stack_config(args: argparse.Namespace, **overrides) -> StackConfig:
    return StackConfig(
        parser_model=args.parser_model,
        parser_revision=args.parser_revision,
        inpaint_model=args.inpaint_model,
        inpaint_revision=args.inpaint_revision,
        device=args.device,
        models_dir=args.models_dir,
        working_size=args.working_size,
        parser_size=args.parser_size,
        **overrides,
    )


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    config = stack_config(
        args,
        host=args.host,
        port=args.port,
        triton_grpc_port=args.triton_grpc_port,
        triton_http_port=args.triton_http_port,
        triton_metrics_port=args.triton_metrics_port,
        inpainter_port=args.inpainter_port,
        metrics_port=args.metrics_port,
        inpainter_metrics_port=args.inpainter_metrics_port,
        inpainter_replicas=args.inpainter_replicas,
        parser_replicas=args.parser_replicas,
        secure_dir=args.secure,
        tracing=args.tracing,
        reserved_ports=(args.prometheus_port,) if args.prometheus and args.prometheus_port else (),
        orchestrator_args=["--reflection", "true"] if args.reflection else [],
    )
    if args.inpainter_replicas < 1 or args.parser_replicas < 1:
        print("faceedit up: --inpainter-replicas and --parser-replicas must be at least 1", file=sys.stderr)
        return 2
    try:
        policy = RestartPolicy(args.restart_limit, args.restart_window, args.restart_backoff)
    except ValueError as exc:
        print(f"faceedit up: {exc}", file=sys.stderr)
        return 2
    if args.prometheus:
        try:
            find_binary()  # before minutes of model preparation
        except PrometheusNotFound as exc:
            print(f"faceedit up: --prometheus: {exc}", file=sys.stderr)
            return 2
    try:
        stack = LocalStack(config).start(log=lambda line: print(line, flush=True))
    except (RuntimeError, ValueError) as exc:  # a service that cannot start, a checkpoint refused by the export
        print(f"faceedit up: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    prometheus = None
    try:
        if args.prometheus:
            assert stack.workdir is not None
            prometheus = LocalPrometheus(
                stack.metrics_targets(), host=args.host, port=args.prometheus_port, workdir=stack.workdir / "prometheus"
            )
            try:
                prometheus.start()
            except PrometheusStartError as exc:
                print(f"faceedit up: --prometheus: {str(exc).splitlines()[0]}", file=sys.stderr)
                return 1
            print(f"prometheus:   {prometheus.url}  (jobs {', '.join(stack.metrics_targets())})", flush=True)
        print("faceedit is up; Ctrl-C stops it.", flush=True)
        children = {**stack.children(), **({"prometheus": prometheus} if prometheus is not None else {})}
        gave_up = Supervisor(children, policy, log=lambda line: print(line, file=sys.stderr, flush=True)).run(stop)
        if gave_up is not None:
            log = children[gave_up.name].log_path
            print(
                f"faceedit up: {gave_up.name} failed {gave_up.failures} times within {policy.window_s:.0f}s; "
                f"stopping the stack. Last: {gave_up.reason} (log: {log})",
                file=sys.stderr,
                flush=True,
            )
            return 1
        print("stopping ...", flush=True)
        return 0
    finally:
        if prometheus is not None:
            prometheus.stop()
        stack.stop()
