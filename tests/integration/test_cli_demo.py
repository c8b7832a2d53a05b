"""`faceedit demo` (what `make demo` runs) as a subprocess: its own stack with the palette parser, a generated
group portrait, hair and lips of face 0 then every face's eyebrows, files under --out. The palette parser's output
is the portrait's true label map, so the test knows which pixels each edit may change."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from faceedit.cli.demo import GROUP_FACES, group_portrait
from faceedit.core.imageio import decode_image
from faceedit.devstack.process import health_status
from tests.helpers import run_faceedit

HAIR, LIPS, BROWS = (13,), (11, 12), (6, 7)
# A feathered mask reaches past its region by the grow and the blur's tail: about 4% of the face's width at the
# face-relative defaults (grow 3 px, sigma 7 at a 1024 px frame; a frame is ~1.6 face widths).
MARGIN = 0.06


def _grown(region: np.ndarray, px: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(region.astype(np.uint8), kernel) > 0


def test_demo_edits_the_chosen_regions_of_the_chosen_faces_and_stops_its_stack(
    models_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["demo", "--out", str(out), "--models-dir", str(models_dir), "--steps", "2", "--working-size", "128"]
    result = run_faceedit(*argv, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (models_dir / "parser-palette.onnx").is_file()  # the palette parser was built into the models dir
    assert "REAL in this run" in result.stdout and "TINY RANDOM inpainter" in result.stdout  # says what is what
    assert len(re.findall(r"^face \d: box", result.stdout, re.M)) == len(GROUP_FACES)

    truth = group_portrait()
    original = decode_image((out / "original.png").read_bytes())
    assert np.array_equal(original, truth.image)
    edited = decode_image((out / "result.png").read_bytes())
    assert edited.shape == original.shape
    changed = (edited != original).any(axis=-1)
    # Face 0 is the largest: the first spec. Its hair and lips, and every face's brows, may change, no more.
    allowed = np.zeros(changed.shape, bool)
    for spec, (_, _, width, _) in enumerate(GROUP_FACES):
        regions = BROWS + (HAIR + LIPS if spec == 0 else ())
        allowed |= _grown(truth.region(spec, regions), round(MARGIN * width))
    assert changed.any() and not (changed & ~allowed).any()
    for spec in range(len(GROUP_FACES)):
        brows = truth.region(spec, BROWS)
        assert changed[brows].mean() > 0.9  # every face's brows were rendered
    assert changed[truth.region(0, HAIR)].mean() > 0.9 and changed[truth.region(0, LIPS)].mean() > 0.9
    brow_mask = decode_image(next(out.glob("step3_eyebrows_mask.png")).read_bytes())[..., 0] > 0
    for spec in (1, 2):  # the other faces' hair and lips: the input, bit for bit (beyond their brows' seam)
        others = truth.region(spec, HAIR + LIPS) & ~brow_mask
        assert others.any() and np.array_equal(edited[others], original[others])

    for name in (
        "grid.png",
        "parse_map.png",
        "step1_hair_mask.png",
        "step2_lips_mask.png",
        "step3_eyebrows_result.png",
    ):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    addresses = re.findall(r"^(?:inpainter|orchestrator): +(\S+)", result.stdout, re.M)
    assert len(addresses) == 2 and all(health_status(a) is None for a in addresses)  # the stack is gone
