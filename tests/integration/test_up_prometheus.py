"""`faceedit up --prometheus` without the prometheus binary: one line naming the package, exit 2, before any model
is prepared. (With the binary, the replicas test in test_scale_out.py runs it.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from faceedit.devstack.ports import free_port
from tests.helpers import FACEEDIT


def test_up_with_prometheus_missing_fails_in_one_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH holding python alone: no prometheus
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    models = tmp_path / "models"
    result = subprocess.run(
        [*FACEEDIT, "up", "--prometheus", "--models-dir", str(models), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "faceedit up: --prometheus: `prometheus` is not on PATH: install Debian's `prometheus` package "
        "(apt-get install --no-install-recommends prometheus; `make setup` does it when run as root)"
    ]
    assert not models.exists()  # it stopped before preparing models
