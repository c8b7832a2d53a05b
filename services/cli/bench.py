"""`faceedit bench` (load generator) and `faceedit compare` (the tracked comparisons)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from tqdm import tqdm

from faceedit.bench import compare, report
from faceedit.bench.loadgen import closed_loop, open_loop, warm_up
from faceedit.bench.targets import editface_target, inpainter_target, parser_target, portrait, present_class
from faceedit.cli.commands import parse_edit
from faceedit.config import env_flag
from faceedit.core.imageio import decode_image
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="load-test EditFace, the parser on Triton, or the inpainter")
    p.add_argument("--target", choices=["editface", "parser", "inpainter"], default="editface")
    env_flag(
        p,
        "--server",
        env="FACEEDIT_SERVER",
        default="127.0.0.1:50051",
        help="address of the target: orchestrator, Triton gRPC, or inpainter",
    )
    p.add_argument("--concurrency", type=_ints, default=[1, 2, 4], help="closed-loop sweep, e.g. 1,2,4,8,16")
    p.add_argument("--rate", type=_floats, help="open-loop target rates in req/s (replaces --concurrency)")
    p.add_argument("--fixed-interval", action="store_true", help="open loop: fixed gaps instead of Poisson")
    p.add_argument("--requests", type=int, default=20, help="measured requests per level")
    p.add_argument("--duration", type=float, help="seconds per level instead of a request count (closed loop)")
    p.add_argument("--warmup", type=int, default=2, help="requests per level sent first and not measured")
    p.add_argument("--image", type=Path, help="portrait (default skimage.data.astronaut() at --size)")
    p.add_argument("--size", type=int, default=512, help="size of the bundled portrait")
    p.add_argument(
        "-e",
        "--edit",
        dest="edits",
        type=parse_edit,
        action="append",
        help="ATTRIBUTE=PROMPT (editface); default: the largest class the parser finds",
    )
    p.add_argument("--steps", type=int, default=4, help="denoising steps per edit")
    p.add_argument("--parser-size", type=int, default=512, help="parser target: input size")
    p.add_argument("--timeout", type=float, default=600.0, help="per-request deadline, seconds")
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="directory for JSON, CSV and plots")
    p.set_defaults(handler=run_bench)

    p = subparsers.add_parser(
        "compare", help="tracked comparisons: parser | crop | overhead | batching (both sides, ratio)"
    )
    p.add_argument("which", choices=["parser", "crop", "overhead", "batching"])
    p.add_argument("--requests", type=int, default=None, help="requests per side (parser, overhead)")
    p.add_argument("--size", type=int, default=None, help="image size (parser/overhead 512, crop 1024)")
    p.add_argument("--working-size", type=int, default=1024, help="crop: inpainting working size")
    p.add_argument("--steps", type=int, default=4, help="crop/overhead: denoising steps")
    p.add_argument("--concurrency", type=_ints, default=[1, 8], help="parser: concurrency levels")
    p.add_argument("--server", help="overhead: measure this running orchestrator instead of a tiny local stack")
    p.add_argument("--format", choices=["png", "jpeg"], default="png", help="overhead: response image format")
    p.add_argument("--out", type=Path, default=Path("out/compare"), help="directory for the JSON result")
    p.set_defaults(handler=run_compare)


def _make_target(args: argparse.Namespace):
    image = decode_image(args.image.read_bytes()) if args.image else portrait(args.size)
    if args.target == "parser":
        return parser_target(args.server, image, size=args.parser_size, timeout_s=args.timeout)
    if args.target == "inpainter":
        return inpainter_target(
            args.server, image, prompt="matte dusty-rose lipstick", steps=args.steps, timeout_s=args.timeout
        )
    if args.edits:
        edits = [fe.Edit(attribute=a, prompt=p, num_inference_steps=args.steps) for a, p in args.edits]
    else:
        edits = [
            fe.Edit(
                prompt="natural, detailed",
                num_inference_steps=args.steps,
                mask=types_pb2.MaskOptions(classes=[present_class(args.server, image)]),
            )
        ]
    return editface_target(args.server, image, edits, timeout_s=args.timeout)


async def _sweep(args: argparse.Namespace) -> list[dict]:
    call, close = _make_target(args)
    levels = []
    try:
        points = args.rate or args.concurrency
        total = None if args.duration else args.requests * len(points)
        with tqdm(total=total, desc=f"bench {args.target}", unit="req", file=sys.stderr) as bar:
            for point in points:
                await warm_up(call, args.warmup)
                if args.rate:
                    level = await open_loop(
                        call, point, requests=args.requests, poisson=not args.fixed_interval, tick=lambda: bar.update()
                    )
                else:
                    level = await closed_loop(
                        call,
                        point,
                        requests=None if args.duration else args.requests,
                        duration_s=args.duration,
                        tick=lambda: bar.update(),
                    )
                levels.append(level.summary())
    finally:
        await close()
    return levels


def run_bench(args: argparse.Namespace) -> int:
    levels = asyncio.run(_sweep(args))
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "target": args.target,
        "server": args.server,
        "mode": "open" if args.rate else "closed",
        "requests_per_level": args.requests,
        "duration_s": args.duration,
        "warmup": args.warmup,
        "steps": args.steps,
        "levels": levels,
    }
    print(report.table(levels))
    paths = [
        report.write_json(result, args.out / "bench.json"),
        report.write_csv(levels, args.out / "bench.csv"),
        *report.write_plots(levels, args.out, f"faceedit {args.target}"),
    ]
    print("wrote", ", ".join(str(p) for p in paths))
    return 0 if all(lv["ok"] for lv in levels) else 1


def run_compare(args: argparse.Namespace) -> int:
    if args.which == "parser":
        result = compare.run_parser_comparison(
            tuple(args.concurrency), requests=args.requests or 48, size=args.size or 512
        )
    elif args.which == "batching":
        result = compare.run_batching_comparison(size=args.size or 512, steps=args.steps)
    elif args.which == "crop":
        result = compare.run_crop_comparison(size=args.size or 1024, working_size=args.working_size, steps=args.steps)
    elif args.server:
        result = compare.run_overhead_benchmark(
            args.server,
            requests=args.requests or 20,
            size=args.size or 512,
            steps=args.steps,
            output_format=args.format,
        )
    else:
        from faceedit.cli.stack import LocalStack, StackConfig
        from faceedit.parser.launcher import free_port

        stack = LocalStack(StackConfig(port=free_port(), working_size=512)).start()
        try:
            result = compare.run_overhead_benchmark(
                stack.address,
                requests=args.requests or 20,
                size=args.size or 512,
                steps=args.steps,
                output_format=args.format,
            )
        finally:
            stack.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.which}.json"
    path.write_text(json.dumps(result, indent=2))
    print("wrote", path)
    return 0
