"""`faceedit bench` (load generator), `faceedit bench compare` (the tracked comparisons; also `faceedit compare`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from tqdm import tqdm

from faceedit.bench import compare, report
from faceedit.bench.loadgen import run_level
from faceedit.bench.targets import Target, editface_target, inpainter_target, parser_target, portrait, present_class
from faceedit.cli.argtypes import count, counts, non_negative, photo_size, positive, rates, read_input
from faceedit.cli.commands import parse_edit
from faceedit.cli.connection import Connection, add_client_flags, connection
from faceedit.core.imageio import decode_image
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2


def _format_flags(p: argparse.ArgumentParser, scope: str) -> None:
    """The encodings of EditFace's request and response: decoding and encoding them is part of the overhead."""
    p.add_argument("--format", choices=["png", "jpeg"], default="png", help=f"{scope}: response image format")
    p.add_argument("--input-format", choices=["png", "jpeg"], default="png", help=f"{scope}: request image format")


def _add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "which",
        choices=["parser", "crop", "overhead", "batching", "replicas", "faces"],
        help="parser: Triton vs the thesis's PyTorch eager path (throughput); crop: crop-to-region vs full frame "
        "(latency); overhead: EditFace end to end minus parse + inpaint compute; batching: micro-batched vs "
        "one-by-one inpainting; replicas: EditFace throughput with one inpainter replica vs --replicas; "
        "faces: the face-aware flow vs the whole-frame parse (overhead, detail gain per face, parser calls per step)",
    )
    p.add_argument("--requests", type=count, default=None, help="requests per side (parser 48, overhead 20)")
    p.add_argument("--size", type=count, default=None, help="image size (parser/overhead 512, crop 1024)")
    p.add_argument(
        "--photo", type=photo_size, help="overhead: a WIDTHxHEIGHT photo instead of the square --size, e.g. 4032x3024"
    )
    p.add_argument(
        "--region",
        choices=["class", "lips"],
        default="class",
        help="overhead: the random parser's largest class, or a lips-sized region (crops, as lips do in production)",
    )
    p.add_argument(
        "--working-size", type=count, default=1024, help="crop/overhead: the inpainter's working size (default 1024)"
    )
    p.add_argument("--steps", type=count, default=4, help="crop/overhead/batching: denoising steps")
    p.add_argument(
        "--concurrency", type=counts, default=[1, 8], help="parser: concurrency levels; replicas: the last one"
    )
    p.add_argument("--replicas", type=count, default=3, help="replicas: inpainter replicas of the second side")
    p.add_argument(
        "--torch-threads", type=count, default=1, help="replicas: CPU threads per inpainter replica (default 1)"
    )
    p.add_argument(
        "--group-photo", type=photo_size, help="faces: the WIDTHxHEIGHT three-face photo (default 6000x4000)"
    )
    p.add_argument("--server", help="overhead: measure this running orchestrator instead of a tiny local stack")
    _format_flags(p, "overhead")
    p.add_argument("--out", type=Path, default=Path("out/compare"), help="directory for the JSON result")
    p.set_defaults(handler=run_compare)


def _add_soak(p: argparse.ArgumentParser) -> None:
    from faceedit.cli.up import add_stack_flags

    add_stack_flags(p)
    p.add_argument("--rounds", type=count, default=4, help="rounds of overload (default 4)")
    p.add_argument("--round-seconds", type=positive, default=30.0, help="seconds per round (default 30)")
    p.add_argument("--concurrency", type=count, default=16, help="callers (default 16)")
    p.add_argument("--size", type=count, default=1024, help="portrait size, sent as JPEG (default 1024)")
    p.add_argument("--steps", type=count, default=8, help="denoising steps per edit (default 8)")
    p.add_argument("--max-in-flight", type=count, default=8, help="orchestrator --max-in-flight (default 8)")
    p.add_argument("--queue-size", type=non_negative, default=4, help="inpainter --queue-size (default 4)")
    p.add_argument("--max-queue-wait", type=positive, default=3.0, help="inpainter --max-queue-wait (default 3 s)")
    p.add_argument("--out", type=Path, default=Path("out/soak"), help="directory for soak.json")
    p.set_defaults(handler=run_soak)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="load-test EditFace, the parser on Triton, or the inpainter; `bench compare` for the comparisons",
        description="Closed loop (N workers back to back, --concurrency sweep) or open loop (--rate, latency "
        "counted from each request's scheduled send time). Prints a table and writes bench.json, bench.csv, "
        "latency_vs_concurrency.png and stage_breakdown.png under --out.",
    )
    p.add_argument(
        "--target",
        choices=["editface", "parser", "inpainter"],
        default="editface",
        help="editface: FaceEditor/EditFace on the orchestrator; parser: the face_parser model on Triton (KServe v2 "
        "gRPC); inpainter: Inpainter/Inpaint alone (default editface)",
    )
    add_client_flags(p, server_help="address of the target: orchestrator, Triton gRPC, or inpainter")
    p.add_argument(
        "--concurrency", type=counts, default=[1, 2, 4], help="closed-loop sweep, e.g. 1,2,4,8,16 (default 1,2,4)"
    )
    p.add_argument("--rate", type=rates, help="open-loop rates in req/s, e.g. 0.5,1,2 (replaces --concurrency)")
    p.add_argument("--fixed-interval", action="store_true", help="open loop: fixed gaps instead of Poisson arrivals")
    p.add_argument("--requests", type=count, default=20, help="measured requests per level (default 20)")
    p.add_argument(
        "--duration",
        type=positive,
        help="seconds per level instead of --requests (open loop: rate x duration requests)",
    )
    p.add_argument(
        "--warmup", type=non_negative, default=2, help="requests per level sent first and not measured (default 2)"
    )
    p.add_argument("--image", type=Path, help="portrait file (default: skimage's astronaut at --size)")
    p.add_argument("--size", type=count, default=512, help="size of the bundled portrait (default 512)")
    p.add_argument(
        "-e",
        "--edit",
        dest="edits",
        type=parse_edit,
        action="append",
        help="ATTRIBUTE=PROMPT, repeatable (editface); default: one edit of the largest class the parser finds",
    )
    p.add_argument("--steps", type=count, default=4, help="denoising steps per edit (default 4)")
    _format_flags(p, "editface")
    p.add_argument("--parser-size", type=count, default=512, help="parser target: letterboxed input size")
    p.add_argument("--parser-model-name", default="face_parser", help="parser target: Triton model name")
    p.add_argument("--timeout", type=positive, default=600.0, help="per-request deadline in seconds (default 600)")
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="directory for JSON, CSV and plots")
    p.set_defaults(handler=run_bench)
    nested = p.add_subparsers(dest="bench_command", metavar="compare|soak")
    _add_compare(nested.add_parser("compare", help="the tracked comparisons: both sides in one run, and the ratio"))
    _add_soak(
        nested.add_parser(
            "soak",
            help="rounds of overload against a local tiny stack: RSS per server per round, health-check latency",
        )
    )

    # `faceedit compare ...` is the same command (the Makefile's bench-* targets call it).
    _add_compare(subparsers.add_parser("compare", help="same as `faceedit bench compare`"))


def _make_target(args: argparse.Namespace, to: Connection) -> Target:
    image = decode_image(read_input(args.image)) if args.image else portrait(args.size)
    if args.target == "parser":
        return parser_target(
            to.server, image, size=args.parser_size, timeout_s=args.timeout, model_name=args.parser_model_name,
            tls=to.tls,
        )  # fmt: skip
    if args.target == "inpainter":
        return inpainter_target(
            to.server, image, prompt="matte dusty-rose lipstick", steps=args.steps, timeout_s=args.timeout,
            tls=to.tls,
        )  # fmt: skip
    if args.edits:
        edits = [fe.Edit(attribute=a, prompt=p, num_inference_steps=args.steps) for a, p in args.edits]
    else:
        edits = [
            fe.Edit(
                prompt="natural, detailed",
                num_inference_steps=args.steps,
                mask=types_pb2.MaskOptions(classes=[present_class(to.server, image, tls=to.tls, token=to.token)]),
            )
        ]
    return editface_target(
        to.server, image, edits, timeout_s=args.timeout, output_format=args.format, input_format=args.input_format,
        tls=to.tls, token=to.token,
    )  # fmt: skip


async def _sweep(args: argparse.Namespace, to: Connection) -> list[dict]:
    # The aio channels belong to the event loop they are created in.
    target = _make_target(args, to)
    levels = []
    points = args.rate or args.concurrency
    if args.duration and not args.rate:
        total = None  # a closed loop for a duration sends as many as the server answers
    elif args.duration:
        total = sum(max(1, round(rate * args.duration)) for rate in points)
    else:
        total = args.requests * len(points)
    try:
        with tqdm(total=total, desc=f"bench {args.target}", unit="req", file=sys.stderr) as bar:
            for point in points:
                bar.set_postfix_str(f"rate {point:g}/s" if args.rate else f"concurrency {point}")
                level = await run_level(
                    target,
                    concurrency=None if args.rate else point,
                    rate=point if args.rate else None,
                    requests=None if args.duration else args.requests,
                    duration_s=args.duration,
                    poisson=not args.fixed_interval,
                    warmup=args.warmup,
                    tick=bar.update,
                )
                levels.append(level.summary())
    finally:
        await target.close()
    return levels


def run_bench(args: argparse.Namespace) -> int:
    levels = asyncio.run(_sweep(args, connection(args)))
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "target": args.target,
        "server": args.server,
        "mode": "open" if args.rate else "closed",
        "arrivals": ("fixed" if args.fixed_interval else "poisson") if args.rate else None,
        "requests_per_level": None if args.duration else args.requests,
        "duration_s": args.duration,
        "warmup": args.warmup,
        "steps": args.steps,
        "image": str(args.image) if args.image else f"astronaut {args.size}x{args.size}",
        "levels": levels,
    }
    print(report.table(levels))
    print()
    print(report.stage_table(levels))
    paths = [
        report.write_json(result, args.out / "bench.json"),
        report.write_csv(levels, args.out / "bench.csv"),
        *report.write_plots(levels, args.out, f"faceedit {args.target}"),
    ]
    print("wrote", ", ".join(str(p) for p in paths))
    return 0 if all(lv["ok"] for lv in levels) else 1


def _overhead(args: argparse.Namespace) -> dict:
    requests = args.requests or 20
    options = {
        "requests": requests,
        "size": args.photo or (args.size or 512,) * 2,
        "steps": args.steps,
        "output_format": args.format,
        "input_format": args.input_format,
        "region": args.region,
    }
    with tqdm(total=requests, desc="compare overhead", unit="req", file=sys.stderr) as bar:

        def tick() -> None:
            bar.update()

        if args.server:
            return compare.run_overhead_benchmark(args.server, **options, log=tqdm.write, tick=tick)
        from faceedit.devstack.ports import free_port
        from faceedit.devstack.stack import LocalStack, StackConfig

        bar.set_postfix_str("starting a tiny local stack")
        stack = LocalStack(StackConfig(port=free_port(), working_size=args.working_size)).start(log=tqdm.write)
        bar.set_postfix_str("")
        try:
            return compare.run_overhead_benchmark(
                stack.address, **options, working_size=args.working_size, log=tqdm.write, tick=tick
            )
        finally:
            stack.stop()


def _faces(args: argparse.Namespace) -> dict:
    from faceedit.bench import faces

    photos = {
        "one_face_photo": args.photo or faces.ONE_FACE_PHOTO,
        "group_photo": args.group_photo or faces.GROUP_PHOTO,
    }
    return faces.run_faces_comparison(
        working_size=args.working_size, requests=args.requests or 5, steps=args.steps, input_format=args.input_format,
        output_format=args.format, **photos,
    )  # fmt: skip


def _replicas(args: argparse.Namespace) -> dict:
    from faceedit.bench import scaleout
    from faceedit.devstack.ports import free_port
    from faceedit.devstack.stack import LocalStack, StackConfig

    concurrency, size = args.concurrency[-1], args.size or 256
    sides = []
    for replicas in (1, args.replicas):
        config = StackConfig(
            port=free_port(), working_size=size, inpainter_replicas=replicas,
            inpainter_args=["--torch-threads", str(args.torch_threads)],
        )  # fmt: skip
        stack = LocalStack(config).start(log=lambda line: None)
        try:
            side = scaleout.measure_stack(
                stack.address, [p.metrics_url for p in stack.inpainters], concurrency=concurrency,
                requests=args.requests or 24, size=size, steps=args.steps,
            )  # fmt: skip
        finally:
            stack.stop()
        print(
            f"{replicas} inpainter replica(s): {side['throughput_rps']:.2f} EditFace/s, p50 "
            f"{side['latency_ms']['p50']:.0f} ms, served per replica {side['served_per_replica']}"
        )
        sides.append(side)
    result = scaleout.comparison(
        *sides, concurrency=concurrency, steps=args.steps, size=size, torch_threads=args.torch_threads
    )
    ratio, cpus = result["throughput_ratio"], result["cpu_count"]
    print(f"throughput {args.replicas} replicas / 1 replica: {ratio:.2f}x on {cpus} CPUs")
    return result


def run_soak(args: argparse.Namespace) -> int:
    from faceedit.bench.soak import run_soak as soak
    from faceedit.cli.up import stack_config
    from faceedit.devstack.ports import free_port
    from faceedit.devstack.stack import LocalStack

    config = stack_config(
        args,
        port=free_port(),
        inpainter_args=["--queue-size", str(args.queue_size), "--max-queue-wait", str(args.max_queue_wait)],
        orchestrator_args=["--max-in-flight", str(args.max_in_flight)],
    )
    stack = LocalStack(config).start()
    try:
        image = portrait(args.size)
        edit = fe.Edit(
            prompt="natural, detailed",
            num_inference_steps=args.steps,
            mask=types_pb2.MaskOptions(classes=[present_class(stack.address, image)]),
        )
        result = soak(
            stack.address,
            stack.pids(),
            image,
            [edit],
            rounds=args.rounds,
            concurrency=args.concurrency,
            round_s=args.round_seconds,
        )
    finally:
        stack.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "soak.json"
    path.write_text(json.dumps(result, indent=2))
    print("wrote", path)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    if args.which == "parser":
        result = compare.run_parser_comparison(
            tuple(args.concurrency), requests=args.requests or 48, size=args.size or 512
        )
    elif args.which == "batching":
        result = compare.run_batching_comparison(size=args.size or 512, steps=args.steps)
    elif args.which == "crop":
        result = compare.run_crop_comparison(size=args.size or 1024, working_size=args.working_size, steps=args.steps)
    elif args.which == "replicas":
        result = _replicas(args)
    elif args.which == "faces":
        result = _faces(args)
    else:
        result = _overhead(args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.which}.json"
    path.write_text(json.dumps(result, indent=2))
    print("wrote", path)
    failed = failures(result)
    if failed:
        print(f"faceedit compare: {failed} request(s) failed; the figures above do not stand", file=sys.stderr)
    return 1 if failed else 0


def failures(result: dict) -> int:
    """Failed requests anywhere in a comparison's result (its "errors" counters, at any depth)."""
    if isinstance(result, dict):
        own = sum(result.get("errors", {}).values()) if isinstance(result.get("errors"), dict) else 0
        return own + sum(failures(v) for k, v in result.items() if k != "errors")
    if isinstance(result, list):
        return sum(failures(v) for v in result)
    return 0
