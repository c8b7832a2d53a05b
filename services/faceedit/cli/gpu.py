"""`faceedit gpu-check`: one command that measures a GPU machine (see faceedit.bench.gpu_check)."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceedit.cli.argtypes import UsageError, count, counts, non_negative, photo_size, positive

CASES_HELP = "engine_vs_bare, crop, editface, parser, compile"


def _cases(text: str) -> tuple[str, ...]:
    from faceedit.bench.gpu_cases import CASES

    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names or names - set(CASES):
        raise argparse.ArgumentTypeError(f"cases are a comma list of {', '.join(CASES)}; got {text!r}")
    return tuple(n for n in CASES if n in names)  # always in run order


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gpu-check",
        help="measure this machine's GPU: SDXL inpainting engine vs bare diffusers, crops, compile, parser "
        "backends, EditFace end to end (real architectures, random weights); --tiny --device cpu: the dry run",
        description="Writes gpu-check.json (after every case) and gpu-check.md under --out.",
    )
    p.add_argument("--tiny", action="store_true", help="tiny models and a few steps: the dry run, any machine")
    p.add_argument("--device", default="auto", help="auto (cuda when there is one), cpu, cuda or cuda:N")
    p.add_argument("--size", type=count, help="canvas of the inpainting cases (1024; --tiny 128)")
    p.add_argument("--steps", type=count, help="DPM-Solver++ steps (30; --tiny 2)")
    p.add_argument("--runs", type=count, help="timed runs per side after a warm-up (5; --tiny 2)")
    p.add_argument("--photo", type=photo_size, help="EditFace photo WIDTHxHEIGHT (4032x3024; --tiny 640x480)")
    p.add_argument("--requests", type=count, help="EditFace requests measured (5; --tiny 2)")
    p.add_argument("--batches", type=counts, help="parser batch sizes (1,8; --tiny 1,2)")
    p.add_argument("--cases", type=_cases, help=f"a comma list of {CASES_HELP} (default all, in that order)")
    p.add_argument(
        "--compile-backend", help="torch.compile backend (inductor; --tiny eager: dynamo's tracing, no codegen)"
    )
    p.add_argument(
        "--compile-mode", default=None, help="torch.compile mode of the UNet (default the inpainter's: reduce-overhead)"
    )
    p.add_argument(
        "--parser-server",
        choices=["auto", "triton", "standin"],
        default="auto",
        help="EditFace's parser: tritonserver when installed (auto), or the KServe v2 stand-in without Triton",
    )
    p.add_argument("--budget", type=non_negative, default=0, help="seconds after which cases are skipped (0: none)")
    p.add_argument("--max-case", type=positive, default=300.0, help="seconds a case may wait for servers (300)")
    p.add_argument("--workdir", type=Path, help="where models are built (default a temporary directory)")
    p.add_argument("--out", type=Path, default=Path("out/gpu-check"), help="directory for gpu-check.json and .md")
    p.set_defaults(handler=run_gpu_check)


def run_gpu_check(args: argparse.Namespace) -> int:
    from faceedit.bench.gpu_cases import CASES
    from faceedit.bench.gpu_check import FULL, TINY, Settings, run
    from faceedit.inpainter.pipeline import resolve_device

    defaults = TINY if args.tiny else FULL
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    inductor_mode = "reduce-overhead" if device.startswith("cuda") else None
    backend = args.compile_backend or ("eager" if args.tiny else "inductor")
    settings = Settings(
        tiny=args.tiny,
        device=device,
        size=args.size or defaults["size"],
        steps=args.steps or defaults["steps"],
        runs=args.runs or defaults["runs"],
        photo=args.photo or defaults["photo"],
        requests=args.requests or defaults["requests"],
        batches=tuple(args.batches or defaults["batches"]),
        parser_runs=defaults["parser_runs"],
        compile_backend=backend,
        compile_mode=args.compile_mode or (inductor_mode if backend == "inductor" else None),
        parser_server=args.parser_server,
        cases=args.cases or tuple(CASES),
        budget_s=float(args.budget),
        max_case_s=args.max_case,
    )
    if settings.size % 8:
        raise UsageError(f"--size must be a multiple of 8 (as the inpainter's --working-size), got {settings.size}")
    result = run(settings, args.out, args.workdir)
    failed = [name for name, case in result["cases"].items() if case["status"] != "ok"]
    return 1 if failed else 0
