"""The palette parser: face_parser's exact I/O, palette-drawn label maps parse back exactly, and a blend of two
colours parses as one of them or as background, never as a third class."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from faceedit.export import palette_parser
from faceedit.export.palette_parser import (
    MIN_BLEND_DISTANCE,
    PALETTE,
    THRESHOLD,
    palette_blend_distance,
    palette_graph,
    parse,
    render,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(palette_graph().SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    (labels,) = session.run(["labels"], {"image": images})
    return labels


def test_the_graph_has_face_parsers_io_with_dynamic_batch_and_size() -> None:
    model = palette_graph()
    (image,) = model.graph.input
    (labels,) = model.graph.output
    assert image.name == "image" and image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert labels.name == "labels" and labels.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["N", "H", "W", 3]
    assert [d.dim_param for d in labels.type.tensor_type.shape.dim] == ["N", "H", "W"]
    assert model.opset_import[0].version == palette_parser.OPSET
    for config in (REPO / "model_repository/production/face_parser/config.pbtxt",):
        text = config.read_text()
        assert re.search(r'name: "image"\s+data_type: TYPE_UINT8\s+dims: \[ -1, -1, 3 \]', text)
        assert re.search(r'name: "labels"\s+data_type: TYPE_UINT8\s+dims: \[ -1, -1 \]', text)


def test_the_palette_keeps_every_two_colour_blend_away_from_a_third_colour() -> None:
    assert len(PALETTE) == 19 and len({tuple(c) for c in PALETTE}) == 19
    distance = palette_blend_distance()
    assert distance >= MIN_BLEND_DISTANCE > THRESHOLD
    # The check itself can fail: a palette with grey between white and black puts a blend on a third colour.
    grey = PALETTE.copy()
    grey[5] = (128, 128, 128)
    assert palette_blend_distance(grey) < 1.0


def test_a_rendered_label_map_parses_back_exactly(session: ort.InferenceSession) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 19, (3, 37, 61), dtype=np.uint8)
    assert (_run(session, render(labels)) == labels).all()
    single = rng.integers(0, 19, (1, 512, 512), dtype=np.uint8)
    assert (_run(session, render(single)) == single).all()


def test_blends_of_two_colours_parse_as_one_of_them_or_background(session: ort.InferenceSession) -> None:
    colours = np.vstack([PALETTE, [(0, 0, 0)]]).astype(np.float64)
    ids = [*range(19), 0]  # black is background
    weights = np.linspace(0.0, 1.0, 41)
    pairs = list(itertools.combinations(range(len(colours)), 2))
    blends = np.array([[(1 - t) * colours[i] + t * colours[j] for t in weights] for i, j in pairs])
    pixels = np.rint(blends).astype(np.uint8)[None]  # one image: a row of blends per pair
    labels = _run(session, pixels)[0]
    for row, (i, j) in enumerate(pairs):
        assert set(labels[row].tolist()) <= {ids[i], ids[j], 0}, (i, j, labels[row])
        assert labels[row, 0] == ids[i] and labels[row, -1] == ids[j]


def test_colours_near_a_palette_colour_take_it_and_far_ones_are_background(session: ort.InferenceSession) -> None:
    skin = PALETTE[1].astype(int)
    near = np.clip(skin + np.array([10, -12, 8]), 0, 255).astype(np.uint8)
    far = np.array([128, 128, 128], np.uint8)
    white, black = np.array([255, 255, 255], np.uint8), np.zeros(3, np.uint8)
    labels = _run(session, np.stack([near, far, white, black])[None, None])[0, 0]
    assert labels.tolist() == [1, 0, 0, 0]


def test_the_numpy_reference_computes_what_the_graph_does(session: ort.InferenceSession) -> None:
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 80, 3), dtype=np.uint8)
    assert (_run(session, images) == np.stack([parse(i) for i in images])).all()


def test_the_cli_writes_a_model_onnxruntime_serves(tmp_path: Path) -> None:
    out = tmp_path / "face_parser" / "1" / "model.onnx"
    assert palette_parser.main(["--out", str(out)]) == 0
    served = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    labels = np.arange(19, dtype=np.uint8).reshape(1, 1, 19)
    assert (_run(served, render(labels)) == labels).all()
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["faceedit.source"] == "palette" and props["faceedit.threshold"] == f"{THRESHOLD:g}"
