"""`faceedit demo` (what `make demo` runs) as a subprocess: its own stack, a three-edit cascade, files under --out."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from skimage import data as samples

from faceedit.core.imageio import decode_image
from faceedit.devstack.process import health_status
from tests.helpers import run_faceedit


def test_demo_runs_the_cascade_on_the_astronaut_and_stops_its_stack(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["demo", "--out", str(out), "--models-dir", str(models_dir), "--steps", "2"]
    result = run_faceedit(*argv, "--working-size", "128", "--parser-size", "128")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TINY RANDOM models" in result.stdout and "--inpaint-model" in result.stdout  # says what it is
    cascade = next(line for line in result.stdout.splitlines() if line.startswith("cascade:"))
    steps = sorted(out.glob("step*_mask.png"))
    assert len(steps) == cascade.count("(strength") >= 1
    original = np.asarray(samples.astronaut())
    assert np.array_equal(decode_image((out / "original.png").read_bytes()), original)
    result_image = decode_image((out / "result.png").read_bytes())
    assert result_image.shape == original.shape
    untouched = np.ones(original.shape[:2], bool)
    for mask_file in steps:
        untouched &= decode_image(mask_file.read_bytes())[..., 0] == 0
    assert np.array_equal(result_image[untouched], original[untouched])  # outside every mask: the input
    assert (out / "grid.png").read_bytes()[:4] == b"\x89PNG" and (out / "parse_map.png").exists()
    addresses = re.findall(r"^(?:inpainter|orchestrator): +(\S+)", result.stdout, re.M)
    assert len(addresses) == 2 and all(health_status(a) is None for a in addresses)  # the stack is gone
