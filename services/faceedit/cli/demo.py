"""`faceedit demo` (what `make demo` runs): the thesis's three-edit cascade on the bundled portrait, end to end
through the real services, with tiny random models unless real ones are named."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from faceedit.cli.argtypes import read_image
from faceedit.cli.commands import stream_edit
from faceedit.cli.grid import write_grid
from faceedit.cli.up import add_stack_flags, stack_config
from faceedit.core.imageio import decode_image, encode_image
from faceedit.core.taxonomy import ATTRIBUTES
from faceedit.devstack.stack import LocalStack
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, dial_sync
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2

# Thesis annexure 8: anatomical order, strengths per region.
CASCADE = [
    ("hair", "purple hair with silver highlights", 0.80),
    ("lips", "matte dusty-rose lipstick", 0.75),
    ("eyebrows", "bold, well-defined dark eyebrows", 0.60),
]
FALLBACK_PROMPT = "natural, detailed, photorealistic"
MIN_COVERAGE = 0.001

NOTE = """\
NOTE: this run used TINY RANDOM models (no weights can be downloaded here): the parse map is arbitrary and the
edited regions are noise. Everything else is the production path: Triton parses, masks are built and feathered,
the SDXL pipeline inpaints, and pixels outside each mask are returned bit-identical.
With real weights (GPU recommended):
  faceedit demo --parser-model jonathandinu/face-parsing \\
                --inpaint-model diffusers/stable-diffusion-xl-1.0-inpainting-0.1 --device cuda --steps 50"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the thesis's 3-edit cascade on the bundled portrait -> out/")
    add_stack_flags(p)
    p.add_argument("--out", type=Path, default=Path("out"), help="output directory (default out/)")
    p.add_argument("--steps", type=int, default=8, help="denoising steps per edit (8 keeps the CPU demo quick)")
    p.add_argument("--image", type=Path, help="portrait to edit (default skimage.data.astronaut())")
    p.set_defaults(handler=run)


def choose_edits(response: fe.ParseFaceResponse) -> list[tuple[str, str, float]]:
    """The thesis cascade where the parse finds those regions; otherwise the largest attributes it does find."""
    fraction = {c.class_id: c.fraction for c in response.coverage}

    def covered(attribute: str) -> float:
        return sum(fraction.get(i, 0.0) for i in ATTRIBUTES[attribute])

    chosen = [edit for edit in CASCADE if covered(edit[0]) >= 2 * MIN_COVERAGE]
    taken = {edit[0] for edit in chosen}
    spare = sorted((a for a in ATTRIBUTES if a not in taken and covered(a) >= 2 * MIN_COVERAGE), key=covered)
    while len(chosen) < len(CASCADE) and spare:
        attribute = spare.pop()
        chosen.append((attribute, f"{attribute}, {FALLBACK_PROMPT}", 0.75))
    return chosen


def run(args: argparse.Namespace) -> int:
    if args.image:
        data = read_image(args.image)
    else:
        from skimage import data as samples

        data = encode_image(np.asarray(samples.astronaut()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "original.png").write_bytes(encode_image(decode_image(data)))
    stack = LocalStack(stack_config(args, port=_free_port())).start(log=lambda line: print(line, flush=True))
    try:
        stub = face_editor_pb2_grpc.FaceEditorStub(
            dial_sync(stack.address, max_message_bytes=FRONT_DOOR_MAX_MESSAGE_BYTES)
        )
        parsed = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data)), timeout=120)
        (args.out / "parse_map.png").write_bytes(parsed.parse_map.data)
        print("parse:", ", ".join(f"{c.name} {c.fraction:.1%}" for c in parsed.coverage[:8]))
        cascade = choose_edits(parsed)
        if not cascade:
            print("the parser found no editable region above 0.2% of the image; nothing to edit")
            return 1
        if [a for a, *_ in cascade] != [a for a, *_ in CASCADE]:
            print("the parser did not find all of hair/lips/eyebrows; editing what it found instead")
        edits = [fe.Edit(attribute=a, prompt=p, strength=s, num_inference_steps=args.steps) for a, p, s in cascade]
        print("cascade:", "; ".join(f"{a}: {p} (strength {s})" for a, p, s in cascade))
        request = fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=edits, return_masks=True)
        response = stream_edit(stub, request, timeout=3600)
    finally:
        stack.stop()
    (args.out / "result.png").write_bytes(response.image.data)
    for step in response.steps:
        stem = args.out / f"step{step.index + 1}_{step.attribute}"
        stem.with_name(stem.name + "_mask.png").write_bytes(step.mask.data)
        stem.with_name(stem.name + "_parse_map.png").write_bytes(step.parse_map.data)
        stem.with_name(stem.name + "_result.png").write_bytes(step.image.data)
        print(
            f"  {step.attribute:<9} coverage {step.coverage:6.2%}  {step.timings.total_ms:7.0f} ms"
            f"{'  (cropped)' if step.cropped else ''}"
        )
    write_grid(decode_image(data), response, [p for _, p, _ in cascade], args.out / "grid.png")
    print(
        f"wrote {args.out}/result.png, grid.png, original.png, parse_map.png and per-step masks "
        f"({response.timings.total_ms / 1000:.1f} s end to end)"
    )
    if args.parser_model is None or args.inpaint_model is None:
        print(NOTE)
    return 0


def _free_port() -> int:
    from faceedit.devstack.ports import free_port

    return free_port()
