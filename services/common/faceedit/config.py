"""One config mechanism for every service: argparse flags whose defaults fall back to FACEEDIT_* env vars."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any


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
) -> None:
    """Add `flag`, taking its default from `env` when that variable is set.

    A malformed env value fails fast with the variable's name, instead of surfacing later as a confusing error.
    """
    raw = os.environ.get(env)
    if raw is not None and raw != "":
        try:
            default = type(raw)
        except (TypeError, ValueError) as exc:
            parser.error(f"environment variable {env}={raw!r} is invalid for {flag}: {exc}")
        required = False
    shown = "" if default is None else f", default {default!r}"
    parser.add_argument(
        flag,
        default=default,
        type=type,
        required=required,
        choices=choices,
        help=f"{help} (env {env}{shown})",
    )


def server_flags(parser: argparse.ArgumentParser, *, port: int, metrics_port: int) -> None:
    """The flags and env vars every gRPC service shares: where it listens, its metrics, its worker pool."""
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
        "--workers",
        env="FACEEDIT_WORKERS",
        default=2,
        type=int,
        help="threads for CPU work (decode, resize, masks, composite, encode), off the event loop",
    )


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")
