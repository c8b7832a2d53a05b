"""`faceedit demo` (what `make demo` runs): the thesis's three-edit cascade on a group photo, face by face, end to
end through the real services: hair and lips of face 0 (the largest), then the eyebrows of every face.

By default the photo is a generated group portrait (faceedit.export.portraits: three faces of different sizes, one
rolled past the upright threshold) parsed by the palette parser (faceedit.export.palette_parser, served by Triton
as a .onnx), whose output on that portrait is its true label map: the faces, masks and crops are the real ones,
and only the tiny random inpainter's pixels are noise."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceedit.cli.argtypes import read_image
from faceedit.cli.commands import stream_edit
from faceedit.cli.grid import write_grid
from faceedit.cli.up import add_stack_flags, stack_config
from faceedit.core.imageio import decode_image, encode_image
from faceedit.devstack.stack import LocalStack
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, dial_sync
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2

# Thesis annexure 8: anatomical order, strengths per region; the faces each edit selects (empty: every face).
CASCADE = [
    ("hair", "purple hair with silver highlights", 0.80, (0,)),
    ("lips", "matte dusty-rose lipstick", 0.75, (0,)),
    ("eyebrows", "bold, well-defined dark eyebrows", 0.60, ()),
]
# The generated group portrait: (width, height) and its faces (centre x, centre y, face width, roll degrees). The
# second face's roll (25 degrees) is past the 15 degree threshold, so it is parsed and rendered upright.
GROUP_SIZE = (1600, 1000)
GROUP_FACES = ((430, 480, 300, 0.0), (1000, 420, 220, 25.0), (1350, 560, 160, 0.0))
PALETTE_PARSER = "parser-palette.onnx"

REAL = """\
REAL in this run: the parse (the palette parser reads the drawn portrait back to its true label map, exactly),
the faces found and numbered from it (by area, largest first), each face's fine parse (one batched parser request
per step), its mask, its crop (the rolled face turned upright), and the exact composite: every pixel outside the
masks is the input's, bit for bit, so the |difference| panels of grid.png show exactly where each edit wrote."""
NOISE = """\
NOISE: the pixels rendered inside the masks come from a TINY RANDOM inpainter (no weights can be downloaded here).
With real weights (GPU recommended), on a photo of your own:
  faceedit demo --image group.jpg --parser-model jonathandinu/face-parsing \\
                --inpaint-model diffusers/stable-diffusion-xl-1.0-inpainting-0.1 --device cuda --steps 50"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="edit a group photo face by face (hair and lips of face 0, every face's eyebrows) -> out/"
    )
    add_stack_flags(p)
    p.add_argument("--out", type=Path, default=Path("out"), help="output directory (default out/)")
    p.add_argument("--steps", type=int, default=8, help="denoising steps per edit (8 keeps the CPU demo quick)")
    p.add_argument(
        "--image",
        type=Path,
        help="photo to edit (default: a generated group portrait, parsed by the palette parser unless "
        "--parser-model names another)",
    )
    p.set_defaults(handler=run)


def group_portrait():
    """The demo's generated photo, with its true labels and owners (faceedit.export.portraits.Portrait)."""
    from faceedit.export.portraits import FaceSpec, portrait

    return portrait(GROUP_SIZE, [FaceSpec(x, y, w, roll=r) for x, y, w, r in GROUP_FACES])


def palette_parser(models_dir: Path) -> Path:
    """The palette parser's ONNX in models_dir, written once."""
    from faceedit.export.palette_parser import export

    path = models_dir / PALETTE_PARSER
    return path if path.exists() else export(path)


def changed_per_face(
    before: np.ndarray, after: np.ndarray, frames: Sequence[tuple[int, int, int, int]]
) -> tuple[list[int], int]:
    """Pixels that differ, per face frame (a pixel in several frames counts for the first), and outside all."""
    changed = (before != after).any(axis=-1)
    counts = []
    for x0, y0, x1, y1 in frames:
        window = changed[y0:y1, x0:x1]
        counts.append(int(np.count_nonzero(window)))
        window[...] = False
    return counts, int(np.count_nonzero(changed))


def build_edits(steps: int) -> list[fe.Edit]:
    return [
        fe.Edit(attribute=a, prompt=p, strength=s, num_inference_steps=steps, face_indices=faces)
        for a, p, s, faces in CASCADE
    ]


def run(args: argparse.Namespace) -> int:
    generated = args.image is None
    data = read_image(args.image) if args.image else encode_image(group_portrait().image)
    original = decode_image(data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "original.png").write_bytes(encode_image(original))
    config = stack_config(args, port=_free_port())
    palette = args.parser_model is None
    if palette:
        config = dataclasses.replace(config, parser_model=str(palette_parser(config.models_dir)))
    stack = LocalStack(config).start(log=lambda line: print(line, flush=True))
    try:
        stub = face_editor_pb2_grpc.FaceEditorStub(
            dial_sync(stack.address, max_message_bytes=FRONT_DOOR_MAX_MESSAGE_BYTES)
        )
        parsed = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data)), timeout=120)
        (args.out / "parse_map.png").write_bytes(parsed.parse_map.data)
        if not parsed.faces:
            hint = " (the palette parser only reads drawn portraits: name a real one with --parser-model)"
            print(f"the parser found no face; a face must span at least 5% of the photo's long side{hint * palette}")
            return 1
        for face in parsed.faces:
            b = face.box
            roll = f"roll {face.roll_degrees:+.1f} deg" if face.HasField("roll_degrees") else "roll unknown"
            print(f"face {face.index}: box ({b.x0}, {b.y0})-({b.x1}, {b.y1}), {roll}")
        print("cascade:", "; ".join(f"{a} of {f'face {f[0]}' if f else 'every face'}: {p}" for a, p, _, f in CASCADE))
        request = fe.EditFaceRequest(image=types_pb2.EncodedImage(data=data), edits=build_edits(args.steps))
        request.return_masks = True
        response = stream_edit(stub, request, timeout=3600)
    finally:
        stack.stop()
    (args.out / "result.png").write_bytes(response.image.data)
    for step in response.steps:
        stem = f"step{step.index + 1}_{step.attribute}"
        (args.out / f"{stem}_mask.png").write_bytes(step.mask.data)
        (args.out / f"{stem}_parse_map.png").write_bytes(step.parse_map.data)
        (args.out / f"{stem}_result.png").write_bytes(step.image.data or response.image.data)
        faces = ", ".join(f"face {f.index} seed {f.seed} coverage {f.coverage:.2%}" for f in step.faces)
        print(f"  {step.attribute:<9} {step.timings.total_ms:7.0f} ms  {faces}")
    result = decode_image(response.image.data)
    counts, outside = changed_per_face(
        original, result, [(f.frame.x0, f.frame.y0, f.frame.x1, f.frame.y1) for f in parsed.faces]
    )
    print(
        "changed pixels:",
        ", ".join(f"face {i} {n:,}" for i, n in enumerate(counts)),
        f"; outside every face {outside:,}",
    )
    write_grid(original, response, [p for _, p, *_ in CASCADE], args.out / "grid.png", faces=parsed.faces)
    print(
        f"wrote {args.out}/result.png, grid.png, original.png, parse_map.png and per-step masks "
        f"({response.timings.total_ms / 1000:.1f} s end to end)"
    )
    if palette and generated:
        print(REAL)
    if args.inpaint_model is None:
        print(NOISE)
    return 0


def _free_port() -> int:
    from faceedit.devstack.ports import free_port

    return free_port()
