"""Client commands against a running orchestrator: edit, parse, attributes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from tqdm import tqdm

from faceedit.cli.argtypes import read_image
from faceedit.cli.connection import add_client_flags, connection, failure_line
from faceedit.cli.grid import write_grid
from faceedit.core.imageio import decode_image
from faceedit.core.taxonomy import default_strength
from faceedit.rpc.messages import FORMAT_ENUM as FORMATS
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2


def stub_for(args: argparse.Namespace) -> face_editor_pb2_grpc.FaceEditorStub:
    return face_editor_pb2_grpc.FaceEditorStub(connection(args).channel())


def parse_edit(text: str) -> tuple[str, str]:
    """ "hair=curly auburn hair" (also "hair: ...") -> ("hair", "curly auburn hair")."""
    for sep in ("=", ":"):
        attribute, found, prompt = text.partition(sep)
        if found and attribute.strip() and prompt.strip():
            return attribute.strip(), prompt.strip()
    raise argparse.ArgumentTypeError(f"expected ATTRIBUTE=PROMPT, e.g. 'hair=curly auburn hair', got {text!r}")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("edit", help="edit regions of a portrait (StreamEditFace, with progress)")
    p.add_argument("image", type=Path, help="PNG, JPEG or WebP portrait")
    p.add_argument(
        "-e",
        "--edit",
        dest="edits",
        type=parse_edit,
        action="append",
        required=True,
        help="ATTRIBUTE=PROMPT, repeatable; applied in order (cascade)",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the edited image")
    add_client_flags(p)
    p.add_argument("--steps", type=int, help="denoising steps per edit (server default 50)")
    p.add_argument("--strength", type=float, help="denoising strength (default 0.90, eyebrows 0.60)")
    p.add_argument("--guidance", type=float, help="guidance scale (default 12.0)")
    p.add_argument("--seed", type=int, help="seed (default 42)")
    p.add_argument("--format", choices=sorted(FORMATS), default="png", help="output encoding (default png)")
    p.add_argument("--quality", type=int, help="JPEG/WebP quality 1-100 (server default 95)")
    p.add_argument("--grid", type=Path, help="also write the cascade figure (input, parse map, mask, result)")
    p.add_argument("--timeout", type=float, default=600.0, help="deadline in seconds")
    p.set_defaults(handler=run_edit)

    p = subparsers.add_parser("parse", help="face parse of a portrait (ParseFace)")
    p.add_argument("image", type=Path, help="PNG, JPEG or WebP portrait")
    p.add_argument("-o", "--output-dir", type=Path, help="write labels.png and parse_map.png here")
    add_client_flags(p)
    p.set_defaults(handler=run_parse)

    p = subparsers.add_parser("attributes", help="the editable attributes and their defaults (ListAttributes)")
    add_client_flags(p)
    p.set_defaults(handler=run_attributes)


def build_request(args: argparse.Namespace, data: bytes, return_masks: bool) -> fe.EditFaceRequest:
    edits = []
    for attribute, prompt in args.edits:
        edit = fe.Edit(attribute=attribute, prompt=prompt)
        for field, value in (
            ("num_inference_steps", args.steps),
            ("strength", args.strength),
            ("guidance_scale", args.guidance),
            ("seed", args.seed),
        ):
            if value is not None:
                setattr(edit, field, value)
        edits.append(edit)
    request = fe.EditFaceRequest(
        image=types_pb2.EncodedImage(data=data),
        edits=edits,
        return_masks=return_masks,
        output_format=FORMATS[args.format],
    )
    if args.quality is not None:
        request.output_quality = args.quality
    return request


def progress_label(edit: fe.Edit, index: int, count: int, total_steps: int) -> str:
    """The progress bar's title: which edit, and why it runs fewer steps than asked (diffusers runs strength x
    steps: strength 0.9 of 8 steps is 7), e.g. "hair (1/2): 7 of 8 steps at strength 0.90"."""
    name = f"{edit.attribute or 'edit'} ({index + 1}/{count})"
    strength = edit.strength if edit.HasField("strength") else default_strength(edit.attribute)
    if not edit.HasField("num_inference_steps"):
        return f"{name}: {total_steps} steps at strength {strength:.2f} of the server's default steps"
    if edit.num_inference_steps == total_steps:
        return f"{name}: {total_steps} steps"
    return f"{name}: {total_steps} of {edit.num_inference_steps} steps at strength {strength:.2f}"


def stream_edit(stub, request: fe.EditFaceRequest, timeout: float, *, quiet: bool = False) -> fe.EditFaceResponse:
    """StreamEditFace with a progress bar per edit; returns the final response."""
    bar = None
    try:
        for event in stub.StreamEditFace(request, timeout=timeout):
            kind = event.WhichOneof("event")
            if kind == "progress" and not quiet:
                p = event.progress
                if bar is None:
                    bar = tqdm(
                        total=p.total_steps,
                        desc=progress_label(
                            request.edits[p.edit_index], p.edit_index, len(request.edits), p.total_steps
                        ),
                        unit="step",
                        file=sys.stderr,
                    )
                bar.update(p.step - bar.n)
            elif kind == "step" and bar is not None:
                bar.close()
                bar = None
            elif kind == "result":
                return event.result
    finally:
        if bar is not None:
            bar.close()
    raise RuntimeError("the stream ended without a result")


def fail(exc: grpc.RpcError, args: argparse.Namespace) -> int:
    """Print the failed call as one line (plus what to do when the connection never came up); exit status 1."""
    tls = any(getattr(args, name, None) is not None for name in ("ca", "secure"))
    print(f"faceedit: {failure_line(exc, getattr(args, 'server', None), tls)}", file=sys.stderr)
    return 1


def run_edit(args: argparse.Namespace) -> int:
    data = read_image(args.image)
    request = build_request(args, data, return_masks=args.grid is not None)
    try:
        response = stream_edit(stub_for(args), request, args.timeout)
    except grpc.RpcError as exc:
        return fail(exc, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(response.image.data)
    for step in response.steps:
        print(
            f"edit {step.index} {step.attribute}: coverage {step.coverage:.2%}, seed {step.seed}, "
            f"{'crop ' if step.cropped else ''}{step.timings.total_ms:.0f} ms"
        )
    print(f"wrote {args.output} ({response.image.width}x{response.image.height}, {response.timings.total_ms:.0f} ms)")
    if args.grid:
        prompts = [prompt for _, prompt in args.edits]
        print(f"wrote {write_grid(decode_image(data), response, prompts, args.grid)}")
    return 0


def run_parse(args: argparse.Namespace) -> int:
    try:
        response = stub_for(args).ParseFace(
            fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=read_image(args.image))), timeout=60
        )
    except grpc.RpcError as exc:
        return fail(exc, args)
    for row in response.coverage:
        print(f"{row.class_id:>3} {row.name:<11} {row.fraction:8.2%} {row.pixels:>9} px")
    print("attributes present:", ", ".join(response.attributes_present) or "none")
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / "labels.png").write_bytes(response.labels.data)
        (args.output_dir / "parse_map.png").write_bytes(response.parse_map.data)
        print(f"wrote {args.output_dir}/labels.png and parse_map.png")
    return 0


def run_attributes(args: argparse.Namespace) -> int:
    try:
        response = stub_for(args).ListAttributes(fe.ListAttributesRequest(), timeout=10)
    except grpc.RpcError as exc:
        return fail(exc, args)
    for a in response.attributes:
        print(f"{a.name:<10} classes {','.join(a.class_names):<18} strength {a.default_strength:.2f}")
    print(
        f"defaults: guidance {response.default_guidance_scale}, steps {response.default_num_inference_steps}, "
        f"seed {response.default_seed}"
    )
    return 0
