"""The orchestrator's image installs only the base dependencies (pyproject.toml): its server must not import, even
transitively, anything that lives in an optional group. Checked in a fresh interpreter, so no other test's imports
count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Top-level packages of the optional groups (cli, inpainter, export) that the orchestrator must never load.
OPTIONAL = {"torch", "torchvision", "diffusers", "transformers", "accelerate", "matplotlib", "skimage", "tqdm", "onnx"}


def loaded_top_level(module: str) -> set[str]:
    """The top-level packages in sys.modules after `import module` in a fresh interpreter."""
    code = f"import json, sys, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module", ["faceedit.orchestrator.server"])
def test_orchestrator_imports_no_optional_dependency(module: str) -> None:
    loaded = loaded_top_level(module)
    assert "faceedit" in loaded and "grpc" in loaded  # the probe itself works
    assert not loaded & OPTIONAL, f"{module} imports {sorted(loaded & OPTIONAL)}"


@pytest.mark.slow  # imports torch
def test_the_probe_sees_an_optional_import() -> None:
    # The inpainter's server imports torch at start-up: the same probe must report it.
    assert "torch" in loaded_top_level("faceedit.inpainter.server")
