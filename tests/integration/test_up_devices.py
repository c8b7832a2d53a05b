"""`faceedit up --device cuda` puts the parser on the GPU too, or says in one line why it cannot."""

from __future__ import annotations

from pathlib import Path

from faceedit.devstack.ports import free_port
from tests.helpers import run_faceedit


def test_up_with_cuda_and_no_onnxruntime_gpu_fails_in_one_line_naming_what_to_install(
    models_dir: Path, tmp_path: Path
) -> None:
    result = run_faceedit(
        "up", "--device", "cuda", "--models-dir", str(models_dir), "--port", str(free_port()), timeout=120
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the libraries' own warnings
    assert line.startswith("faceedit up: triton exited")
    assert "execution_provider 'cuda' needs CUDAExecutionProvider" in line and "onnxruntime-gpu" in line
