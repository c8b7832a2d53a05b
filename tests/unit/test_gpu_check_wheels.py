"""deploy/gpu: the wheel list covers what gpu-check's processes import beyond the GPU image, and run.sh installs
only what that image lacks."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / "deploy" / "gpu"
# What runs on the GPU machine: the command, its cases' lazy imports, and the servers it starts.
ENTRY_MODULES = [
    "faceedit.cli.main", "faceedit.bench.gpu_check", "faceedit.bench.gpu_cases", "faceedit.bench.architectures",
    "faceedit.bench.gpu_stack", "faceedit.bench.kserve_parser", "faceedit.bench.compare", "faceedit.bench.targets",
    "faceedit.inpainter.server", "faceedit.inpainter.pipeline", "faceedit.orchestrator.server",
    "faceedit.export.onnx_export", "faceedit.export.tiny_sdxl", "faceedit.export.segformer",
    "faceedit.devstack.stack", "skimage.data", "skimage.transform", "cv2",
]  # fmt: skip
# Imported by grpc only if present, or by this machine's newer huggingface_hub; the image's runs without them.
OPTIONAL = {"grpcio-tools", "truststore", "httpx2", "httpcore2", "faceedit"}

IMPORTED = """
import importlib, importlib.metadata as md, json, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
owner = {}
for dist in md.distributions():
    for f in dist.files or []:
        owner[os.path.realpath(dist.locate_file(f))] = dist.metadata["Name"]
files = {os.path.realpath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
print(json.dumps(sorted({owner[f] for f in files if f in owner})))
"""


def _wheels():
    spec = importlib.util.spec_from_file_location("gpu_wheels", GPU / "wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_requirements_cover_every_distribution_the_gpu_run_imports_that_the_image_lacks() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORTED, *ENTRY_MODULES], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    imported = {_canonical(name) for name in json.loads(out.splitlines()[-1])}
    image = {_canonical(n) for line in (GPU / "image-packages.txt").read_text().splitlines()
             if not line.startswith("#") for n in line.split()}  # fmt: skip
    listed = {_canonical(r.name) for r in _wheels().requirements()}
    assert {"diffusers", "tritonclient", "grpcio-health-checking", "opentelemetry-api"} <= imported - image
    assert imported - image - OPTIONAL <= listed
    # Nothing carried that the run does not import; the floors are the image's own packages, checked there.
    floors = {_canonical(r.name) for r in _wheels().requirements() if r.specifier}
    assert floors == {"protobuf", "grpcio"} and floors <= image
    assert listed - floors <= imported


def test_pins_come_from_constraints_and_respect_the_floors(tmp_path: Path) -> None:
    wheels = _wheels()
    pins = wheels.pins(wheels.requirements())
    assert any(p.startswith("diffusers==") for p in pins)
    assert len(pins) == len(wheels.requirements()) and all("==" in p for p in pins)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("protobuf==5.29.0\n")
    with pytest.raises(SystemExit, match=r"below this list.s >=6\.33\.5"):
        wheels.pins([wheels.Requirement("protobuf>=6.33.5")], constraints)
    with pytest.raises(SystemExit, match="pins no version"):
        wheels.pins([wheels.Requirement("diffusers")], constraints)


def test_needed_installs_missing_and_too_old_packages_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = _wheels()
    for name in (
        "diffusers-0.42.1-py3-none-any",
        "grpcio_reflection-1.81.1-py3-none-any",
        "protobuf-6.33.6-cp39-abi3-manylinux2014_x86_64",
        "grpcio-1.85.1-cp312-cp312-manylinux2014_x86_64",
    ):
        (tmp_path / f"{name}.whl").write_bytes(b"")  # fmt: skip
    image = {"grpcio-reflection": "1.81.1", "protobuf": "6.31.1", "grpcio": "1.90.0"}
    monkeypatch.setattr(wheels, "installed", image.get)
    reqs = [wheels.Requirement(r) for r in ("diffusers", "grpcio-reflection", "protobuf>=6.33.5", "grpcio>=1.81.1")]
    chosen = sorted(p.name.split("-")[0] for p in wheels.needed(reqs, tmp_path))
    # diffusers: missing; grpcio_reflection: that very version there; protobuf: older than the floor; grpcio: newer.
    assert chosen == ["diffusers", "protobuf"]
    with pytest.raises(SystemExit, match="no wheel for tritonclient"):
        wheels.needed([wheels.Requirement("tritonclient")], tmp_path)
