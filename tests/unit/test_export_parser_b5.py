"""The parity gate at the serving size on a SegFormer-B5-size parser (the real architecture and depth of
jonathandinu/face-parsing, random weights built offline from its config): it passes, and a broken graph fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceedit.core.taxonomy import canonical_order
from faceedit.export.onnx_export import RTOL, check_parity, export_parser
from faceedit.export.segformer import build_random_parser, load_parser, load_processor
from tests.unit.test_export_parser import perturb

pytestmark = pytest.mark.slow  # exports the full-size B5 parser


@pytest.fixture(scope="module")
def b5_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_parser("b5", tmp_path_factory.mktemp("b5") / "checkpoint")


def test_b5_export_at_512_passes_parity_and_a_perturbed_graph_fails(b5_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "b5.onnx"
    (report,) = export_parser(b5_checkpoint, out, logits=True, parity_batch=1)
    assert report.ok and report.shape == (1, 512, 512, 3), report
    assert report.relative_error < RTOL / 10 and report.decisive_pixels > 0.9 * 512 * 512, report
    assert out.stat().st_size > 300e6  # the real B5: ~85M parameters
    model = load_parser(b5_checkpoint)
    images = np.random.default_rng(3).integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    broken = perturb(out, tmp_path / "broken.onnx", "decode_head.classifier.weight", 1.01)
    failed = check_parity(model, load_processor(b5_checkpoint), canonical_order(model.config.id2label), broken, images)
    assert not failed.ok and failed.max_logit_error > failed.tolerance, failed
