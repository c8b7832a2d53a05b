"""The exported graph matches PyTorch (thesis path) at several sizes, and a mismatch fails the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from faceedit.export import tensorrt_plan
from faceedit.export.onnx_export import check_parity, export_parser
from faceedit.export.segformer import build_random_parser, load_parser


@pytest.fixture(scope="module")
def exported_with_logits(parser_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "with_logits.onnx"
    reports = export_parser(parser_checkpoint, out, logits=True, parity_sizes=((64, 64), (96, 64), (50, 77)))
    assert all(r.ok and r.label_agreement == 1.0 and r.max_logit_error <= 1e-4 for r in reports)
    return out


@pytest.mark.parametrize("shape", [(1, 64, 64, 3), (3, 96, 64, 3), (2, 45, 130, 3), (1, 256, 256, 3)])
def test_parity_at_several_sizes_including_non_square(
    parser_checkpoint: Path, exported_with_logits: Path, shape: tuple[int, ...]
) -> None:
    images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    report = check_parity(load_parser(parser_checkpoint), exported_with_logits, images)
    assert report.ok, report
    assert report.compared_pixels > 0.9 * shape[0] * shape[1] * shape[2]


def test_graph_io_is_uint8_images_in_uint8_labels_out(parser_model: Path) -> None:
    session = ort.InferenceSession(str(parser_model), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("image", "tensor(uint8)", ["N", "H", "W", 3])
    assert [(o.name, o.type) for o in session.get_outputs()] == [("labels", "tensor(uint8)")]
    (labels,) = session.run(None, {"image": np.zeros((2, 40, 72, 3), np.uint8)})
    assert labels.shape == (2, 40, 72) and labels.max() < 19


def test_parity_check_catches_a_different_model(exported_with_logits: Path, tmp_path: Path) -> None:
    other = load_parser(build_random_parser("tiny", tmp_path / "other", seed=7))
    images = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    report = check_parity(other, exported_with_logits, images)
    assert not report.ok and report.max_logit_error > 1e-4


def test_export_cli_fails_and_writes_nothing_when_parity_fails(
    parser_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceedit.export import onnx_export

    monkeypatch.setattr(onnx_export, "PARITY_LOGITS_ATOL", -1.0)  # no export can meet a negative tolerance
    out = tmp_path / "model.onnx"
    assert onnx_export.main(["--model", str(parser_checkpoint), "--out", str(out)]) == 1
    assert not out.exists()


def test_tensorrt_builder_refuses_without_a_gpu(parser_model: Path, tmp_path: Path, capsys) -> None:
    assert tensorrt_plan.main(["--onnx", str(parser_model), "--out", str(tmp_path / "m.plan")]) == 3
    assert "cannot build a TensorRT plan here" in capsys.readouterr().err
    assert not (tmp_path / "m.plan").exists()
