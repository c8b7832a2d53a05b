"""The orchestrator's flags; every one falls back to a FACEEDIT_* environment variable."""

from __future__ import annotations

import argparse

from faceedit.channels import FRONT_DOOR_MAX_MESSAGE_BYTES
from faceedit.config import env_flag, server_flags
from faceedit.core.imageio import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="faceedit-orchestrator", description="faceedit.v1.FaceEditor: EditFace and co.")
    env_flag(
        p,
        "--parser-url",
        env="FACEEDIT_PARSER_URL",
        required=True,
        help="Triton gRPC address serving the face parser, host:port",
    )
    env_flag(
        p,
        "--inpainter-address",
        env="FACEEDIT_INPAINTER_ADDRESS",
        required=True,
        help="faceedit.v1.Inpainter address, host:port",
    )
    env_flag(
        p,
        "--parser-model-name",
        env="FACEEDIT_PARSER_MODEL_NAME",
        default="face_parser",
        help="Triton model name (face_parser, or face_parser_trt for the TensorRT plan)",
    )
    env_flag(
        p,
        "--parser-size",
        env="FACEEDIT_PARSER_SIZE",
        default=512,
        type=int,
        help="square size images are letterboxed to for parsing (one size per deployment)",
    )
    server_flags(p, port=50051, metrics_port=9101)
    env_flag(
        p,
        "--max-message-bytes",
        env="FACEEDIT_MAX_MESSAGE_BYTES",
        default=FRONT_DOOR_MAX_MESSAGE_BYTES,
        type=int,
        help="gRPC max send/receive message size of EditFace calls (a 24 MP PNG response with masks is ~100 MiB)",
    )
    env_flag(
        p,
        "--max-image-bytes",
        env="FACEEDIT_MAX_IMAGE_BYTES",
        default=DEFAULT_MAX_BYTES,
        type=int,
        help="largest encoded input image accepted",
    )
    env_flag(
        p,
        "--max-image-pixels",
        env="FACEEDIT_MAX_IMAGE_PIXELS",
        default=DEFAULT_MAX_PIXELS,
        type=int,
        help="largest input image in pixels (decompression-bomb guard)",
    )
    env_flag(
        p,
        "--timeout",
        env="FACEEDIT_TIMEOUT",
        default=600.0,
        type=float,
        help="seconds a request may take when the caller sets no deadline",
    )
    env_flag(
        p,
        "--parser-retries",
        env="FACEEDIT_PARSER_RETRIES",
        default=3,
        type=int,
        help="retries of a parse on UNAVAILABLE, with exponential backoff inside the deadline",
    )
    env_flag(
        p,
        "--max-in-flight",
        env="FACEEDIT_MAX_IN_FLIGHT",
        default=16,
        type=int,
        help="calls served at once; more are refused with RESOURCE_EXHAUSTED before decoding (memory: each holds "
        "~5 bytes per pixel of its photo)",
    )
    env_flag(
        p,
        "--working-size",
        env="FACEEDIT_WORKING_SIZE",
        default=1024,
        type=int,
        help="the inpainter's canvas: the longest side of the region sent to it (larger regions are downsampled)",
    )
    env_flag(
        p,
        "--health-interval",
        env="FACEEDIT_HEALTH_INTERVAL",
        default=1.0,
        type=float,
        help="seconds between dependency readiness checks",
    )
    args = p.parse_args(argv)
    problem = invalid_value(args)
    if problem:
        p.error(problem)
    return args


def invalid_value(args: argparse.Namespace) -> str | None:
    """The first flag whose value cannot work, said so that the operator can fix it; None when all are usable."""
    for flag, value in (("--parser-url", args.parser_url), ("--inpainter-address", args.inpainter_address)):
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            return f"{flag} must be host:port, got {value!r}"
    positive = (
        "parser_size",
        "max_message_bytes",
        "max_image_bytes",
        "max_image_pixels",
        "timeout",
        "health_interval",
        "max_in_flight",
        "working_size",
        "workers",
    )
    for name in positive:
        if not getattr(args, name) > 0:
            return f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
    if args.parser_retries < 0:
        return f"--parser-retries must be >= 0, got {args.parser_retries}"
    if not 0 <= args.port <= 65535 or not -1 <= args.metrics_port <= 65535:
        return f"--port must be in [0, 65535] and --metrics-port in [-1, 65535], got {args.port}, {args.metrics_port}"
    return None
