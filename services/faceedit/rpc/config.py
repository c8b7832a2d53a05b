"""One config mechanism for every service: argparse flags whose defaults fall back to FACEEDIT_* env vars."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def env_flag(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    env: str,
    default: Any = None,
    type: Callable[[str], Any] = str,
    help: str,
    required: bool = False,
    choices: list[str] | None = None,
    switch: bool = False,
    metavar: str | None = None,
) -> None:
    """Add `flag`, taking its default from `env` when that variable is set. switch=True (boolean flags): the flag
    alone means true, and it still takes a value (`--tracing`, `--tracing off`); help shows it as `[on|off]`.
    metavar: the value's name in help (e.g. DIR), instead of the flag's name in capitals.

    A malformed env value fails fast with the variable's name, instead of surfacing later as a confusing error.
    """
    raw = os.environ.get(env)
    if raw is not None and raw != "":
        try:
            default = type(raw)
        except (TypeError, ValueError) as exc:
            parser.error(f"environment variable {env}={raw!r} is invalid for {flag}: {exc}")
        required = False
    # A path shows as the user would type it, not as PosixPath('models'); a switch as on or off.
    if default is None:
        shown = ""
    elif switch:
        shown = f", default {'on' if default else 'off'}"
    else:
        shown = f", default {os.fspath(default) if isinstance(default, os.PathLike) else repr(default)}"
    extra: dict[str, Any] = {"nargs": "?", "const": True, "metavar": "on|off"} if switch else {}
    if metavar is not None:
        extra["metavar"] = metavar
    parser.add_argument(
        flag,
        default=default,
        type=type,
        required=required,
        choices=choices,
        help=f"{help} (env {env}{shown})",
        **extra,
    )


def server_flags(parser: argparse.ArgumentParser, *, port: int, metrics_port: int) -> None:
    """The flags and env vars every gRPC service shares: where it listens, TLS, probes, connection ageing,
    draining, its metrics, its worker pool, its logs and tracing."""
    env_flag(parser, "--host", env="FACEEDIT_HOST", default="127.0.0.1", help="address to bind (0.0.0.0 in containers)")
    env_flag(parser, "--port", env="FACEEDIT_PORT", default=port, type=int, help="gRPC port (0 picks a free one)")
    env_flag(
        parser,
        "--metrics-port",
        env="FACEEDIT_METRICS_PORT",
        default=metrics_port,
        type=int,
        help="Prometheus /metrics HTTP port (-1 disables)",
    )
    env_flag(
        parser,
        "--metrics-host",
        env="FACEEDIT_METRICS_HOST",
        default="127.0.0.1",
        help="address the metrics endpoint binds (0.0.0.0 in Kubernetes, for Prometheus)",
    )
    env_flag(
        parser,
        "--health-port",
        env="FACEEDIT_HEALTH_PORT",
        default=-1,
        type=int,
        help="plaintext port serving grpc.health.v1 only, for probes that speak no TLS (-1: none)",
    )
    env_flag(
        parser,
        "--reflection",
        env="FACEEDIT_REFLECTION",
        default=False,
        type=parse_bool,
        help="serve gRPC reflection on the main port",
    )
    env_flag(
        parser,
        "--tls-cert",
        env="FACEEDIT_TLS_CERT",
        default=None,
        help="PEM certificate (chain) to serve TLS with; reloaded when the file changes",
    )
    env_flag(parser, "--tls-key", env="FACEEDIT_TLS_KEY", default=None, help="PEM private key of --tls-cert")
    env_flag(
        parser,
        "--tls-client-ca",
        env="FACEEDIT_TLS_CLIENT_CA",
        default=None,
        help="PEM CA: clients must present a certificate it signed (mTLS)",
    )
    env_flag(
        parser,
        "--max-connection-age",
        env="FACEEDIT_MAX_CONNECTION_AGE",
        default=300.0,
        type=float,
        help="seconds after which a client connection is closed (GOAWAY), so clients re-resolve and reach new "
        "replicas (0: never)",
    )
    env_flag(
        parser,
        "--max-connection-age-grace",
        env="FACEEDIT_MAX_CONNECTION_AGE_GRACE",
        default=600.0,
        type=float,
        help="seconds the calls on an aged connection may still take",
    )
    env_flag(
        parser,
        "--drain-grace",
        env="FACEEDIT_DRAIN_GRACE",
        default=300.0,
        type=float,
        help="on SIGTERM: NOT_SERVING, then up to this many seconds to finish in-flight and queued work",
    )
    env_flag(
        parser,
        "--workers",
        env="FACEEDIT_WORKERS",
        default=2,
        type=int,
        help="threads for CPU work (decode, resize, masks, composite, encode), off the event loop",
    )
    env_flag(
        parser,
        "--log-level",
        env="FACEEDIT_LOG_LEVEL",
        default="info",
        type=str.lower,
        choices=list(LOG_LEVELS),
        help="least severe log records written",
    )
    env_flag(
        parser,
        "--log-format",
        env="FACEEDIT_LOG_FORMAT",
        default="text",
        type=str.lower,
        choices=list(LOG_FORMATS),
        help="text (for people) or json (one object per line, for log collectors)",
    )
    env_flag(
        parser,
        "--tracing",
        env="FACEEDIT_TRACING",
        default=False,
        type=parse_bool,
        switch=True,
        help="OpenTelemetry tracing, exported over OTLP/gRPC as the standard OTEL_* variables say "
        "(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ...)",
    )


def check_server_flags(args: argparse.Namespace) -> str | None:
    """The first shared server flag whose value cannot work, said so the operator can fix it; None if none."""
    if not 0 <= args.port <= 65535 or not -1 <= args.metrics_port <= 65535 or not -1 <= args.health_port <= 65535:
        return (
            "--port must be in [0, 65535], --metrics-port and --health-port in [-1, 65535], got "
            f"{args.port}, {args.metrics_port}, {args.health_port}"
        )
    if (args.tls_cert is None) != (args.tls_key is None):
        return "--tls-cert and --tls-key go together"
    if args.tls_client_ca is not None and args.tls_cert is None:
        return "--tls-client-ca (mTLS) needs --tls-cert and --tls-key"
    for name in ("max_connection_age", "max_connection_age_grace", "drain_grace"):
        if getattr(args, name) < 0:
            return f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}"
    if args.workers < 1:
        return f"--workers must be at least 1, got {args.workers}"
    # argparse checks choices on the command line only, not on a default taken from the environment.
    if args.log_level not in LOG_LEVELS:
        return f"--log-level (FACEEDIT_LOG_LEVEL) must be one of {', '.join(LOG_LEVELS)}, got {args.log_level!r}"
    if args.log_format not in LOG_FORMATS:
        return f"--log-format (FACEEDIT_LOG_FORMAT) must be one of {', '.join(LOG_FORMATS)}, got {args.log_format!r}"
    return None


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")
