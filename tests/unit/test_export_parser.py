"""The exported graph matches the Hugging Face processor + model by the one parity criterion, whatever the
checkpoint's label order and preprocessing; a graph that does not match fails the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from faceedit.core.taxonomy import CLASS_NAMES, CheckpointLabelError, canonical_order
from faceedit.export import onnx_export, tensorrt_plan
from faceedit.export.onnx_export import (
    FP16_RTOL,
    RTOL,
    ParityUnavailable,
    ParserGraph,
    check_parity,
    compare,
    export_parser,
    open_session,
    reference_logits,
    trace_graph,
)
from faceedit.export.segformer import (
    Preprocessing,
    build_random_parser,
    load_parser,
    load_processor,
    preprocessing_from,
    relabel_parser,
)

pytestmark = pytest.mark.slow  # exports and runs parser graphs

IMAGENET = Preprocessing((512, 512), 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _images(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _parts(checkpoint: Path):
    model = load_parser(checkpoint)
    return model, load_processor(checkpoint), canonical_order(model.config.id2label)


def perturb(onnx_path: Path, out: Path, name_part: str, factor: float) -> Path:
    """A deliberately broken copy of an exported graph: one weight initializer scaled by factor."""
    proto = onnx.load(str(onnx_path))
    (tensor,) = [t for t in proto.graph.initializer if name_part in t.name]
    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * factor, tensor.name))
    onnx.save(proto, str(out))
    return out


@pytest.fixture(scope="module")
def exported_with_logits(parser_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "with_logits.onnx"
    (report,) = export_parser(parser_checkpoint, out, logits=True)
    assert report.ok and report.shape == (2, 512, 512, 3), report
    return out


def test_parity_at_the_serving_size_is_near_exact(parser_checkpoint: Path, exported_with_logits: Path) -> None:
    images = _images((2, 512, 512, 3))
    report = check_parity(*_parts(parser_checkpoint), exported_with_logits, images)
    assert report.ok and report.relative_error < 1e-5, report
    assert report.decisive_pixels > 0.9 * images[..., 0].size


def test_graph_io_is_uint8_images_in_uint8_labels_out(parser_model: Path) -> None:
    session = ort.InferenceSession(str(parser_model), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("image", "tensor(uint8)", ["N", "H", "W", 3])
    assert [(o.name, o.type) for o in session.get_outputs()] == [("labels", "tensor(uint8)")]
    (labels,) = session.run(None, {"image": np.zeros((2, 40, 72, 3), np.uint8)})
    assert labels.shape == (2, 40, 72) and labels.max() < 19
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["faceedit.classes"] == ",".join(CLASS_NAMES) and metadata["faceedit.processor_size"] == "512x512"


def test_without_resize_parity_holds_at_any_size_including_non_square(tmp_path: Path) -> None:
    checkpoint = build_random_parser("tiny", tmp_path / "ck", processor={"do_resize": False})
    sizes = ((64, 64), (96, 64), (45, 130), (256, 256))
    reports = export_parser(checkpoint, tmp_path / "m.onnx", parity_sizes=sizes)
    assert [r.shape[1:3] for r in reports] == list(sizes)
    assert all(r.ok and r.decisive_pixels > 0.9 * 2 * r.shape[1] * r.shape[2] for r in reports), reports


@pytest.mark.parametrize("shape", [(1, 64, 64, 3), (2, 96, 64, 3), (1, 45, 130, 3)])
def test_inputs_smaller_than_the_processor_size_are_resized_like_the_processor(
    parser_checkpoint: Path, exported_with_logits: Path, shape: tuple[int, ...]
) -> None:
    """Upscaling in the graph differs from the processor's PIL resize only by uint8 rounding of some pixels
    (measured: logits within 1-2% of the peak); not parity, which is checked at the processor's size."""
    report = check_parity(*_parts(parser_checkpoint), exported_with_logits, _images(shape), rtol=5e-2)
    assert report.ok and report.relative_error > RTOL, report


def test_non_imagenet_mean_std_match_hf_and_imagenet_constants_do_not(tmp_path: Path) -> None:
    processor = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255}
    checkpoint = build_random_parser("tiny", tmp_path / "ck", processor=processor)
    model, hf_processor, order = _parts(checkpoint)
    assert preprocessing_from(hf_processor.to_dict()).std == (0.5, 0.5, 0.5)
    (report,) = export_parser(checkpoint, tmp_path / "m.onnx")
    assert report.ok, report
    wrong = trace_graph(ParserGraph(load_parser(checkpoint), IMAGENET, order), tmp_path / "imagenet.onnx", (512, 512))
    broken = check_parity(model, hf_processor, order, wrong, _images((1, 512, 512, 3)))
    assert not broken.ok and broken.relative_error > 100 * RTOL, broken


def test_a_perturbed_weight_fails_parity(parser_checkpoint: Path, exported_with_logits: Path, tmp_path: Path) -> None:
    broken = perturb(exported_with_logits, tmp_path / "broken.onnx", "decode_head.classifier.weight", 1.01)
    report = check_parity(*_parts(parser_checkpoint), broken, _images((1, 512, 512, 3)))
    assert not report.ok and report.max_logit_error > report.tolerance, report


def test_permuted_head_parses_to_the_canonical_labels_pixel_for_pixel(
    parser_checkpoint: Path, parser_model: Path, tmp_path: Path
) -> None:
    order = list(np.random.default_rng(5).permutation(len(CLASS_NAMES)))
    relabelled = relabel_parser(parser_checkpoint, tmp_path / "relabelled", order)
    model = load_parser(relabelled)
    assert [model.config.id2label[i] for i in range(19)] == [CLASS_NAMES[i] for i in order]
    export_parser(relabelled, tmp_path / "relabelled.onnx")
    images = _images((2, 512, 512, 3), seed=9)
    (canonical,) = ort.InferenceSession(str(parser_model)).run(["labels"], {"image": images})
    (relabelled_labels,) = ort.InferenceSession(str(tmp_path / "relabelled.onnx")).run(["labels"], {"image": images})
    assert np.array_equal(relabelled_labels, canonical)
    # The relabelled checkpoint's own channel ids really are different: only the name mapping makes them agree.
    native = reference_logits(model, load_processor(relabelled), range(19), images).argmax(axis=1)
    assert (native != canonical).mean() > 0.5


def test_a_checkpoint_with_an_unknown_class_is_refused_by_name(tmp_path: Path, capsys) -> None:
    labels = [*CLASS_NAMES[:5], "tattoo", *CLASS_NAMES[6:]]
    checkpoint = build_random_parser("tiny", tmp_path / "ck", labels=labels)
    with pytest.raises(CheckpointLabelError, match="unknown classes: 5='tattoo'; missing classes: r_eye"):
        load_parser(checkpoint)
    out = tmp_path / "m.onnx"
    assert onnx_export.main(["--model", str(checkpoint), "--out", str(out)]) == 1
    assert "tattoo" in capsys.readouterr().err and not out.exists()


def test_export_cli_fails_and_writes_nothing_when_parity_fails(
    parser_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_export, "RTOL", -1.0)  # no export can meet a negative tolerance
    out = tmp_path / "model.onnx"
    assert onnx_export.main(["--model", str(parser_checkpoint), "--out", str(out), "--parity-batch", "1"]) == 1
    assert not out.exists()


def test_fp16_export_passes_its_own_tolerance_on_cpu(parser_checkpoint: Path, tmp_path: Path) -> None:
    (report,) = export_parser(parser_checkpoint, tmp_path / "fp16.onnx", fp16=True, parity_batch=1)
    assert report.ok and report.rtol == FP16_RTOL and RTOL < report.relative_error < FP16_RTOL, report
    metadata = ort.InferenceSession(str(tmp_path / "fp16.onnx")).get_modelmeta().custom_metadata_map
    assert metadata["faceedit.precision"] == "fp16"


def test_parity_on_a_provider_this_onnxruntime_lacks_says_so(
    parser_checkpoint: Path, exported_with_logits: Path, tmp_path: Path, capsys
) -> None:
    with pytest.raises(ParityUnavailable, match="has no CUDAExecutionProvider"):
        open_session(exported_with_logits, "CUDAExecutionProvider")
    out = tmp_path / "m.onnx"
    argv = ["--model", str(parser_checkpoint), "--out", str(out), "--fp16", "--provider", "CUDAExecutionProvider"]
    assert onnx_export.main(argv) == 2
    assert "parity cannot be checked here" in capsys.readouterr().err and not out.exists()


def test_compare_flags_a_label_flip_on_a_decisive_pixel() -> None:
    expected = np.zeros((1, 19, 2, 2), np.float32)
    expected[0, 3] = 1.0
    labels = np.full((1, 2, 2), 3, np.uint8)
    assert compare(labels, expected, expected, RTOL).ok
    labels[0, 1, 1] = 4
    flipped = compare(labels, expected, expected, RTOL)
    assert not flipped.ok and flipped.label_agreement == 0.75


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, Preprocessing(None, 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))),
        (
            {"do_resize": True, "size": {"height": 640, "width": 480}, "image_mean": [0.5] * 3, "image_std": 0.25},
            Preprocessing((640, 480), 1 / 255, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ),
        (
            {"do_resize": False, "do_rescale": False, "do_normalize": False},
            Preprocessing(None, 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
        ),
    ],
)
def test_preprocessing_from_processor_configs(config: dict, expected: Preprocessing) -> None:
    defaults = {"do_resize": False, "image_mean": [0.0] * 3, "image_std": [1.0] * 3}
    assert preprocessing_from({**defaults, **config}) == expected


def test_preprocessing_refuses_what_the_graph_cannot_repeat() -> None:
    with pytest.raises(ValueError, match="shortest_edge"):
        preprocessing_from({"do_resize": True, "size": {"shortest_edge": 512}})
    with pytest.raises(ValueError, match="image_std must be 3 values"):
        preprocessing_from({"do_resize": False, "image_mean": [0.5] * 3, "image_std": [0.5] * 4})


def test_tensorrt_builder_refuses_without_a_gpu(parser_model: Path, tmp_path: Path, capsys) -> None:
    assert tensorrt_plan.main(["--onnx", str(parser_model), "--out", str(tmp_path / "m.plan")]) == 3
    assert "cannot build a TensorRT plan here" in capsys.readouterr().err
    assert not (tmp_path / "m.plan").exists()
