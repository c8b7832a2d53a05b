"""A deterministic face parser for tests and for checking a deployment: an ONNX graph with face_parser's I/O that
labels each pixel by its nearest colour of a fixed palette, and as background when no colour is near.

    image UINT8 [N,H,W,3] -> nearest of PALETTE (squared RGB distance, exact in float32) -> labels UINT8 [N,H,W]:
    the colour's class id, or 0 (background) when the nearest colour is THRESHOLD or farther

A photo drawn in these colours (faceedit.export.portraits) parses back to the label map it was drawn from, so tests
know which pixels are the true lips of every face. Resizing blends neighbouring colours (area averaging, Lanczos)
and a blend can land near a third colour (DESIGN.md 7c: skin/background blends once read as lower lip). The
palette is chosen so that every blend of two of its colours, or of one with white or black (letterbox and turn
fills), stays at least MIN_BLEND_DISTANCE from every other colour: a blend parses as one of its two sources or
as background, never as a third class. Only blends of three or more colours (junctions) can mislabel.

    python -m faceedit.export.palette_parser --out model.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from faceedit.core.taxonomy import CLASS_NAMES

OPSET = 20  # the face parser export's (faceedit.export.onnx_export.OPSET), without importing torch for it

# Class id -> RGB. Background is white, as the letterbox pads. The 18 others were found by a search for the
# largest distance from any blend of two colours (white and black included) to every third colour, then given
# to the classes (skin orange, hair brown, lips red and magenta).
PALETTE = np.array(
    [
        (255, 255, 255),  # background
        (236, 163, 6),  # skin
        (255, 92, 95),  # nose
        (139, 228, 191),  # eye_g
        (2, 182, 254),  # l_eye
        (84, 69, 246),  # r_eye
        (5, 51, 148),  # l_brow
        (63, 8, 195),  # r_brow
        (116, 193, 1),  # l_ear
        (125, 246, 52),  # r_ear
        (249, 100, 218),  # mouth
        (208, 31, 80),  # u_lip
        (164, 7, 167),  # l_lip
        (166, 60, 17),  # hair
        (0, 93, 11),  # hat
        (199, 247, 73),  # ear_r
        (36, 250, 247),  # neck_l
        (193, 56, 255),  # neck
        (2, 253, 190),  # cloth
    ],
    np.uint8,
)
PALETTE.setflags(write=False)
# The smallest distance from a two-colour blend to a third colour (tested: palette_blend_distance()).
MIN_BLEND_DISTANCE = 42.0
# A pixel is labelled when its nearest colour is nearer than this: below MIN_BLEND_DISTANCE, so no two-colour
# blend reaches a third class; above the drift of a colour through resizing, JPEG-free encoding and mild noise.
THRESHOLD = 30.0
# Colours that count as background besides PALETTE[0]: the black of turned-frame corners.
EXTRA_BACKGROUNDS = np.array([(0, 0, 0)], np.uint8)


def palette_blend_distance(palette: np.ndarray = PALETTE) -> float:
    """The smallest distance from a blend (1 - t) a + t b of two colours (of palette, white and black) to any
    class colour other than a and b: the margin a blend keeps from being read as a third class."""
    colours = palette.astype(np.float64)
    classes = colours[1:]
    points = np.vstack([colours, EXTRA_BACKGROUNDS.astype(np.float64)])
    ids = [*range(len(colours)), *(-1 for _ in EXTRA_BACKGROUNDS)]  # -1: a background, never a third class
    nearest = np.inf
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            a, b = points[i], points[j]
            d = b - a
            t = np.clip(((classes - a) @ d) / max(float(d @ d), 1e-9), 0.0, 1.0)
            distance = np.linalg.norm(classes - (a + t[:, None] * d), axis=1)
            others = [k for k in range(1, len(colours)) if k not in (ids[i], ids[j])]
            nearest = min(nearest, float(distance[[k - 1 for k in others]].min()))
    return nearest


def render(labels: np.ndarray) -> np.ndarray:
    """(H,W) class ids -> (H,W,3) RGB in the palette: the image this parser reads back as labels."""
    return PALETTE[labels]


def parse(image: np.ndarray) -> np.ndarray:
    """The graph's computation in numpy, for one (H,W,3) uint8 image: what the ONNX graph returns per image."""
    pixels = image.reshape(-1, 3).astype(np.int64)
    palette = PALETTE.astype(np.int64)
    distance = (pixels**2).sum(1)[:, None] - 2 * pixels @ palette.T + (palette**2).sum(1)[None, :]
    nearest = distance.argmin(1)
    labels = np.where(distance.min(1) < THRESHOLD**2, nearest, 0)
    return labels.reshape(image.shape[:2]).astype(np.uint8)


def palette_graph() -> onnx.ModelProto:
    """The ONNX model: input `image` UINT8 [N,H,W,3] (dynamic N, H, W), output `labels` UINT8 [N,H,W].

    |x - p|^2 = |x|^2 - 2 x.p + |p|^2 as one MatMul against the palette (integers below 2^24: exact in float32),
    so memory is [N,H,W,19] floats rather than [N,H,W,19,3]."""
    palette = PALETTE.astype(np.float32)
    initializers = [
        numpy_helper.from_array((-2.0 * palette.T).astype(np.float32), "minus_two_palette_t"),  # [3, 19]
        numpy_helper.from_array((palette**2).sum(1).astype(np.float32), "palette_sq"),  # [19]
        numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
        numpy_helper.from_array(np.array(THRESHOLD**2, np.float32), "threshold_sq"),
        numpy_helper.from_array(np.array(0, np.int64), "background"),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "x"], ["x_sq"]),
        helper.make_node("ReduceSum", ["x_sq", "last_axis"], ["x_norm"], keepdims=1),  # [N,H,W,1]
        helper.make_node("MatMul", ["x", "minus_two_palette_t"], ["cross"]),  # [N,H,W,19]
        helper.make_node("Add", ["cross", "palette_sq"], ["partial"]),
        helper.make_node("Add", ["partial", "x_norm"], ["distance_sq"]),
        helper.make_node("ArgMin", ["distance_sq"], ["nearest"], axis=-1, keepdims=0),
        helper.make_node("ReduceMin", ["distance_sq", "last_axis"], ["nearest_sq"], keepdims=0),
        helper.make_node("Less", ["nearest_sq", "threshold_sq"], ["close"]),
        helper.make_node("Where", ["close", "nearest", "background"], ["class_id"]),
        helper.make_node("Cast", ["class_id"], ["labels"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes,
        "palette_parser",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, ["N", "H", "W"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceedit")
    model.ir_version = 9  # onnxruntime releases read IR 9 at opset 20
    helper.set_model_props(
        model,
        {
            "faceedit.classes": ",".join(CLASS_NAMES),
            "faceedit.source": "palette",
            "faceedit.palette": ";".join(",".join(map(str, c)) for c in PALETTE),
            "faceedit.threshold": f"{THRESHOLD:g}",
        },
    )
    onnx.checker.check_model(model)
    return model


def export(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(palette_graph(), str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the palette face parser (ONNX, face_parser's I/O): each pixel labelled by its nearest "
        "palette colour, background when none is near. For tests and for checking a deployment end to end."
    )
    parser.add_argument("--out", type=Path, required=True, help="path of the model.onnx to write")
    args = parser.parse_args(argv)
    print(export(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
