"""`faceedit eval`: the thesis's quality metrics per attribute over a folder of portraits."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceedit.cli.commands import parse_edit
from faceedit.config import env_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="LPIPS/SSIM outside the mask, IoU, CLIP, FID, latency per attribute")
    p.add_argument("images", type=Path, nargs="?", help="folder of portraits (default: the bundled portrait)")
    env_flag(p, "--server", env="FACEEDIT_SERVER", default="127.0.0.1:50051", help="orchestrator address")
    p.add_argument("--attributes", default="hair,lips,skin,eyes,eyebrows", help="comma-separated attributes")
    p.add_argument(
        "--prompt",
        type=parse_edit,
        action="append",
        default=[],
        help="ATTRIBUTE=PROMPT overriding the thesis's annexure-10 prompt",
    )
    p.add_argument("--steps", type=int, default=50, help="denoising steps per edit")
    p.add_argument("--limit", type=int, default=100, help="at most this many portraits")
    p.add_argument("--lpips-weights", help="LPIPS (alex) state dict path; without it LPIPS is not computed")
    p.add_argument("--clip-model", help="CLIP model hub id or dir (openai/clip-vit-base-patch32 in the thesis)")
    p.add_argument("--fid-model", help="feature network for FID: hub id or dir of a transformers vision model")
    p.add_argument(
        "--random-init-metrics",
        action="store_true",
        help="smoke runs only: random-initialised metric networks; their numbers are MEANINGLESS",
    )
    p.add_argument("--out", type=Path, default=Path("out/eval"), help="directory for JSON, table and plots")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from faceedit.evaluation.runner import EvalConfig, run_evaluation

    config = EvalConfig(
        server=args.server,
        images=args.images,
        attributes=[a.strip() for a in args.attributes.split(",") if a],
        prompts=dict(args.prompt),
        steps=args.steps,
        limit=args.limit,
        lpips_weights=args.lpips_weights,
        clip_model=args.clip_model,
        fid_model=args.fid_model,
        random_init=args.random_init_metrics,
        out=args.out,
    )
    return run_evaluation(config)
