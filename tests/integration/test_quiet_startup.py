"""Start-up prints nothing that does not concern the user: no transformers warnings about torchvision (not a
dependency; its PIL processors are the ones faceedit uses), no per-shard progress bars or tracer warnings from the
model builds and the parser export that `faceedit up` and `faceedit demo` run, none in the inpainter's start-up
log. Warnings that concern the user stay: each filter matches one message only."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from faceedit.devstack.process import ServiceProcess

NOISE = ("requires torchvision", "falling back to", "Writing model shards", "TracerWarning")


def _noise(text: str) -> list[str]:
    return [line for line in text.replace("\r", "\n").splitlines() if any(n in line for n in NOISE)]


@pytest.mark.parametrize("module", ["faceedit.export.tiny_sdxl", "faceedit.export.segformer"])
def test_model_builds_are_quiet(module: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--out", str(tmp_path / "model")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert _noise(result.stderr) == [], result.stderr


def test_parser_export_is_quiet(parser_checkpoint: Path, tmp_path: Path) -> None:
    # What `faceedit up` runs first on a fresh --models-dir (in its own process there).
    out = tmp_path / "model.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "faceedit.export.onnx_export", "--model", str(parser_checkpoint), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists() and _noise(result.stderr) == [], result.stderr


def test_inpainter_start_up_log_is_quiet(inpainter_server: ServiceProcess) -> None:
    log = inpainter_server.log_path.read_text(errors="replace")
    assert log.strip(), "the inpainter wrote no start-up lines"
    assert _noise(log) == [], log


def test_other_transformers_warnings_still_show(caplog: pytest.LogCaptureFixture) -> None:
    import faceedit  # noqa: F401  (installs the filter)

    logger = logging.getLogger("transformers.utils.import_utils")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("`CLIPImageProcessor` requires torchvision (not installed); falling back to `...Pil`")
        logger.warning("something else the user should know")
    assert [r.getMessage() for r in caplog.records] == ["something else the user should know"]
