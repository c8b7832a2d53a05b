"""The orchestrator's flags; every one falls back to a FACEEDIT_* environment variable."""

from __future__ import annotations

import argparse

from faceedit.core.imageio import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from faceedit.core.upright import ROLL_THRESHOLD
from faceedit.orchestrator.plan import MAX_FACES
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, MAX_RETRIES, target_problem
from faceedit.rpc.config import check_server_flags, env_flag, server_flags


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="faceedit-orchestrator", description="faceedit.v1.FaceEditor: EditFace and co.")
    env_flag(
        p,
        "--parser-url",
        env="FACEEDIT_PARSER_URL",
        required=True,
        help="Triton gRPC target serving the face parser: host:port, dns:///name:port (every address the name "
        "resolves to, balanced per call) or ipv4:host:port,host:port",
    )
    env_flag(
        p,
        "--inpainter-address",
        env="FACEEDIT_INPAINTER_ADDRESS",
        required=True,
        help="faceedit.v1.Inpainter target, as --parser-url (Kubernetes: dns:///inpainter.<namespace>.svc."
        "cluster.local:50052 on a headless Service)",
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
        help="extra attempts of a parse on UNAVAILABLE (gRPC retry policy, throttled; at most 4)",
    )
    env_flag(
        p,
        "--inpainter-retries",
        env="FACEEDIT_INPAINTER_RETRIES",
        default=3,
        type=int,
        help="extra attempts of an Inpaint call on UNAVAILABLE, on another replica (deterministic for its seed, "
        "so safe; throttled; at most 4)",
    )
    env_flag(
        p,
        "--downstream-ca",
        env="FACEEDIT_DOWNSTREAM_CA",
        default=None,
        help="PEM CA to verify the parser's and the inpainter's TLS certificates (none: plaintext hops)",
    )
    env_flag(
        p,
        "--downstream-cert",
        env="FACEEDIT_DOWNSTREAM_CERT",
        default=None,
        help="PEM client certificate presented to the parser and the inpainter (mTLS)",
    )
    env_flag(p, "--downstream-key", env="FACEEDIT_DOWNSTREAM_KEY", default=None, help="PEM key of --downstream-cert")
    env_flag(
        p,
        "--auth-tokens",
        env="FACEEDIT_AUTH_TOKENS",
        default=None,
        help="file of SHA-256 token hashes (one per line, reloaded on change): callers must send "
        "'authorization: Bearer <token>' (none: no authentication)",
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
        "--max-faces",
        env="FACEEDIT_MAX_FACES",
        default=MAX_FACES,
        type=int,
        help=f"faces edited per request, at most {MAX_FACES} (the parser's batch): the largest found, or the "
        "caller's face_boxes (more boxes are refused)",
    )
    env_flag(
        p,
        "--roll-threshold",
        env="FACEEDIT_ROLL_THRESHOLD",
        default=ROLL_THRESHOLD,
        type=float,
        help="degrees of roll above which a face is turned upright for its parse and render (90: never)",
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
        problem = target_problem(value)
        if problem:
            return f"{flag}: {problem}"
    positive = (
        "parser_size",
        "max_message_bytes",
        "max_image_bytes",
        "max_image_pixels",
        "timeout",
        "health_interval",
        "max_in_flight",
        "working_size",
    )
    for name in positive:
        if not getattr(args, name) > 0:
            return f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
    if not 1 <= args.max_faces <= MAX_FACES:
        return f"--max-faces must be in [1, {MAX_FACES}], got {args.max_faces}"
    if not 0 <= args.roll_threshold <= 90:
        return f"--roll-threshold must be in [0, 90] degrees, got {args.roll_threshold:g}"
    for name in ("parser_retries", "inpainter_retries"):
        if not 0 <= getattr(args, name) <= MAX_RETRIES:
            return f"--{name.replace('_', '-')} must be in [0, {MAX_RETRIES}], got {getattr(args, name)}"
    if (args.downstream_cert is None) != (args.downstream_key is None):
        return "--downstream-cert and --downstream-key go together"
    if args.downstream_cert is not None and args.downstream_ca is None:
        return "--downstream-cert (mTLS) needs --downstream-ca to verify the servers"
    return check_server_flags(args)
