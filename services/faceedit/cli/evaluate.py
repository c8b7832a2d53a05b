"""`faceedit eval`: the thesis's quality metrics per attribute over a folder of portraits."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceedit.cli.argtypes import count
from faceedit.cli.commands import parse_edit
from faceedit.rpc.config import env_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="LPIPS/SSIM outside the mask, IoU, CLIP, FID, latency per attribute",
        description="Edits every portrait for every attribute through EditFace (return_masks) on --server and "
        "reports, per attribute, mean and sd of each metric like thesis Table 6.1: a table, eval.json, table.txt "
        "and one bar plot per metric under --out. Metrics whose networks are not given are reported as not "
        "computed.",
    )
    p.add_argument("images", type=Path, nargs="?", help="folder of portraits (default: the bundled portrait)")
    env_flag(p, "--server", env="FACEEDIT_SERVER", default="127.0.0.1:50051", help="orchestrator address")
    p.add_argument(
        "--attributes", default="hair,lips,skin,eyes,eyebrows", help="comma-separated (default: the thesis's five)"
    )
    p.add_argument(
        "--prompt",
        type=parse_edit,
        action="append",
        default=[],
        help="ATTRIBUTE=PROMPT overriding the thesis's annexure-10 prompt",
    )
    p.add_argument("--steps", type=count, default=50, help="denoising steps per edit (default 50, as the thesis)")
    p.add_argument("--limit", type=count, default=100, help="at most this many portraits (default 100)")
    p.add_argument(
        "--lpips-weights",
        help="directory holding alexnet.pth (torchvision AlexNet state dict) and lpips_alex.pth (lpips v0.1 "
        "linear heads); without it LPIPS is not computed",
    )
    p.add_argument("--clip-model", help="CLIP hub id or dir (the thesis: openai/clip-vit-base-patch32)")
    p.add_argument(
        "--fid-model",
        help="FID feature network, hub id or dir: a CLIP checkpoint (image embeddings) or any transformers vision "
        "model (pooled output), e.g. facebook/dinov2-base",
    )
    p.add_argument(
        "--random-init-metrics",
        action="store_true",
        help="smoke runs only: random-initialised metric networks; their numbers are MEANINGLESS",
    )
    p.add_argument("--out", type=Path, default=Path("out/eval"), help="directory for JSON, table and plots")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.images is not None and not args.images.is_dir():
        raise SystemExit(f"faceedit eval: {args.images} is not a folder of portraits")
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
