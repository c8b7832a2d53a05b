"""A `.onnx` parser is checked against face_parser's I/O before it is served, and a wrong one is refused in one
line naming what differs."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from faceedit.devstack.parser_contract import ParserContractError, check_parser_onnx, contract_difference
from faceedit.devstack.stack import ensure_parser_onnx

U8, F32 = TensorProto.UINT8, TensorProto.FLOAT


def _graph(path: Path, *, inputs=(("image", U8, ["N", "H", "W", 3]),), outputs=(("labels", U8, ["N", "H", "W"]),)):
    """A graph with the given I/O: each output is its first input reduced over the last axis (never run here)."""
    nodes = [helper.make_node("ReduceMax", [inputs[0][0]], [name], axes=[-1], keepdims=0) for name, *_ in outputs]
    graph = helper.make_graph(
        nodes,
        "parser",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_face_parsers_io_passes(tmp_path: Path) -> None:
    assert contract_difference(_graph(tmp_path / "ok.onnx")) is None
    fixed = _graph(
        tmp_path / "fixed.onnx", inputs=(("image", U8, [1, 512, 512, 3]),), outputs=(("labels", U8, [1, 512, 512]),)
    )
    assert contract_difference(fixed) is None  # fmt: skip


@pytest.mark.parametrize(
    ("io", "difference"),
    [
        (dict(inputs=(("pixel_values", U8, ["N", "H", "W", 3]),)), "its inputs are ['pixel_values'], not ['image']"),
        (dict(inputs=(("image", F32, ["N", "H", "W", 3]),)), "input 'image' is FLOAT, not UINT8"),
        (dict(inputs=(("image", U8, ["N", 3, "H", "W"]),)), "input 'image' has shape [N,3,H,W], not [N,H,W,3]"),
        (dict(outputs=(("logits", U8, ["N", "H", "W"]),)), "its outputs are ['logits'], with no 'labels'"),
        (dict(outputs=(("labels", TensorProto.INT64, ["N", "H", "W"]),)), "output 'labels' is INT64, not UINT8"),
        (dict(outputs=(("labels", U8, ["N", 19, "H", "W"]),)), "output 'labels' has shape [N,19,H,W], not [N,H,W]"),
    ],
)
def test_a_wrong_graph_is_refused_naming_what_differs(tmp_path: Path, io: dict, difference: str) -> None:
    path = _graph(tmp_path / "wrong.onnx", **io)
    with pytest.raises(ParserContractError) as excinfo:
        check_parser_onnx(path)
    message = str(excinfo.value)
    assert message.endswith(f": {difference}") and str(path) in message and "\n" not in message


def test_a_file_that_is_no_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "parser.onnx"
    path.write_bytes(b"not a model")
    assert contract_difference(path).startswith("it is not a readable ONNX model")


def test_up_serves_a_onnx_file_as_it_is_without_exporting(tmp_path: Path) -> None:
    path = _graph(tmp_path / "mine.onnx")
    models = tmp_path / "models"
    assert ensure_parser_onnx(str(path), models) == path
    assert not models.exists()  # nothing exported, nothing written


def test_up_refuses_a_wrong_or_missing_onnx_before_preparing_anything(tmp_path: Path) -> None:
    wrong = _graph(tmp_path / "wrong.onnx", inputs=(("image", F32, ["N", "H", "W", 3]),))
    with pytest.raises(ParserContractError, match="input 'image' is FLOAT, not UINT8"):
        ensure_parser_onnx(str(wrong), tmp_path / "models")
    with pytest.raises(ValueError, match="does not exist"):
        ensure_parser_onnx(str(tmp_path / "absent.onnx"), tmp_path / "models")
