"""Each Dockerfile's recipe, run without Docker: copy exactly what its COPY lines copy into a temporary WORKDIR,
create a fresh venv (no project site-packages), run its RUN lines there, then start its CMD with its ENV and see
it report SERVING on grpc.health.v1.

Three things differ from a real build, each asserted to apply (so a changed Dockerfile fails here rather than
being tested as something else): `useradd` is dropped (the venv needs no user), the PyTorch index URL is dropped
(torch==2.13.0 comes from this machine's disk, as pip resolves it for the project's venv), and the absolute
scratch paths /tmp/ and /out/ move into the test's temporary directory. pip skips compiling bytecode
(PIP_NO_COMPILE: the same files are installed, minutes sooner with torch). The parser image's second stage is
NVIDIA's Triton image with nothing of ours installed: only its export stage runs here; its model is checked
against the production config it is copied next to.

The three venvs are built once per session, side by side."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import pytest
from grpc_health.v1 import health_pb2

from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ChildProcess, ServiceProcess, health_status
from faceedit.devstack.triton import TritonServer
from tests.fixtures.inpainter import TEST_MIN_CROP, TEST_WORKING_SIZE

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATOR = ROOT / "services" / "faceedit" / "orchestrator" / "Dockerfile"
INPAINTER = ROOT / "services" / "faceedit" / "inpainter" / "Dockerfile"
PARSER = ROOT / "model_repository" / "Dockerfile"
# What the orchestrator image must not carry (distribution names as pip lists them).
MODEL_SIDE = {"torch", "torchvision", "diffusers", "transformers", "matplotlib", "scikit-image", "onnx", "tqdm"}
INSTALL_TIMEOUT_S = 900


@dataclass
class Stage:
    """One FROM ... stage of a Dockerfile, its instructions in order."""

    base: str
    name: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    # (kind, payload, ENV in force at that point): kind COPY (sources, destination) or RUN (shell text).
    steps: list[tuple[str, object, dict[str, str]]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not logical:
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            yield keyword.upper(), rest.strip()
        logical = ""


def parse_dockerfile(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, rest in instructions(path.read_text()):
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
            continue
        stage = stages[-1]
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            stage.args[name] = shlex.split(default)[0] if default and shlex.split(default) else ""
        elif keyword == "ENV":
            stage.env.update(item.split("=", 1) for item in shlex.split(rest))
        elif keyword == "WORKDIR":
            stage.workdir = rest
        elif keyword == "COPY":
            *sources, destination = shlex.split(rest)
            stage.steps.append(("COPY", (sources, destination), dict(stage.env)))
        elif keyword == "RUN":
            stage.steps.append(("RUN", rest, dict(stage.env)))
        elif keyword == "CMD":
            stage.cmd = json.loads(rest)
        else:
            assert keyword in {"USER", "EXPOSE"}, f"{path}: {keyword} is not understood by this test"
    return stages


def local_run(command: str, scratch: Path) -> str:
    """A RUN line as it runs here; each rewrite that applies is one the docstring names."""
    parts = [part for part in re.split(r"\s+&&\s+", command) if not part.startswith("useradd ")]
    text = " && ".join(parts)
    text = re.sub(r"--index-url https://download\.pytorch\.org/whl/\S+ ", "", text)
    return text.replace(" /tmp/", f" {scratch}/tmp/").replace(" /out/", f" {scratch}/out/")


def copy_context(sources: list[str], destination: str, workdir: Path) -> None:
    """COPY src... dest relative to WORKDIR, from the repository root (the documented build context)."""
    target = workdir / destination
    for source in sources:
        origin = ROOT / source
        if origin.is_dir():
            # COPY of a directory copies its contents to the destination (Docker's rule for one directory source).
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)


def clean_env(extra: dict[str, str], venv: Path) -> dict[str, str]:
    """This process's environment without anything that points at the project's checkout or venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "PIP_NO_COMPILE": "1", **extra}


@dataclass
class Built:
    """A stage built into scratch: its WORKDIR copy, its venv and what its build left in scratch."""

    stage: Stage
    workdir: Path
    venv: Path
    scratch: Path

    def python(self, code: str) -> str:
        result = subprocess.run(
            ["python", "-c", code],
            cwd=self.workdir,
            env=clean_env(self.stage.env, self.venv),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


def build(stage: Stage, scratch: Path, args: dict[str, str] | None = None) -> Built:
    """COPY and RUN the stage in order, into a fresh venv made from the base interpreter."""
    workdir = scratch / "app"
    workdir.mkdir(parents=True)
    (scratch / "tmp").mkdir()
    venv = scratch / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True, timeout=120)
    for kind, payload, env in stage.steps:
        if kind == "COPY":
            sources, destination = payload  # type: ignore[misc]
            copy_context(sources, destination, workdir)
            continue
        command = local_run(str(payload), scratch)
        result = subprocess.run(
            ["bash", "-c", f"set -e; {command}"],
            cwd=workdir,
            env=clean_env({**stage.args, **(args or {}), **env}, venv),
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        assert result.returncode == 0, f"RUN {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return Built(stage, workdir, venv, scratch)


@dataclass
class ImageCmd(ChildProcess):
    """The stage's CMD with its ENV (overridden by env), run in its WORKDIR (`env -C`, so the wrapper that ties
    the child to this process still execs the CMD itself); ready once SERVING on grpc.health.v1."""

    built: Built
    env: dict[str, str]
    address: str
    service: str
    name: str = "CMD"
    ready_timeout_s: float = 180.0
    awaited: str = "report SERVING"

    def __post_init__(self) -> None:
        self.log_path = self.built.scratch / "cmd.log"

    def command(self) -> list[str]:
        return [shutil.which("env") or "/usr/bin/env", "-C", str(self.built.workdir), *self.built.stage.cmd]

    def environment(self) -> dict[str, str]:
        return clean_env({**self.built.stage.env, **self.env}, self.built.venv)

    def is_ready(self) -> bool:
        return health_status(self.address, self.service) == health_pb2.HealthCheckResponse.SERVING


def loopback_ports() -> dict[str, str]:
    port = free_port()
    return {"FACEEDIT_HOST": "127.0.0.1", "FACEEDIT_PORT": str(port), "FACEEDIT_METRICS_PORT": str(free_port())}


def installed(built: Built) -> set[str]:
    listed = built.python(
        "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    )
    return {name.lower() for name in listed.split()}


@pytest.fixture(scope="session")
def image_builds(
    parser_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Built]]]:
    """The three recipes built side by side (mostly unpacking wheels, so the wall time is about the slowest one's,
    not the sum), each awaited by the test that needs it."""
    (orchestrator,) = parse_dockerfile(ORCHESTRATOR)
    (inpainter,) = parse_dockerfile(INPAINTER)
    export, _ = parse_dockerfile(PARSER)
    # The checkpoint as the build argument: a local directory instead of a hub id (no hub here).
    parser_args = {"PARSER_MODEL": str(parser_checkpoint), "PARSER_REVISION": ""}
    scratch = {name: tmp_path_factory.mktemp(f"{name}-image") for name in ("orchestrator", "inpainter", "parser")}
    try:
        with ThreadPoolExecutor(3) as pool:
            yield {
                "orchestrator": pool.submit(build, orchestrator, scratch["orchestrator"]),
                "inpainter": pool.submit(build, inpainter, scratch["inpainter"]),
                "parser": pool.submit(build, export, scratch["parser"], parser_args),
            }
    finally:
        for path in scratch.values():  # a few GiB of venvs
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def orchestrator_image(image_builds: dict[str, Future[Built]]) -> Built:
    return image_builds["orchestrator"].result()


@pytest.fixture(scope="session")
def inpainter_image(image_builds: dict[str, Future[Built]]) -> Built:
    return image_builds["inpainter"].result()


def test_recipe_rewrites_are_the_documented_ones(tmp_path: Path) -> None:
    stage, _ = parse_dockerfile(PARSER)
    runs = [local_run(str(payload), tmp_path) for kind, payload, _ in stage.steps if kind == "RUN"]
    assert "download.pytorch.org" not in " ".join(runs) and f"{tmp_path}/out/model.onnx" in runs[-1]
    (inpainter,) = parse_dockerfile(INPAINTER)
    assert not any("useradd" in local_run(str(p), tmp_path) for k, p, _ in inpainter.steps if k == "RUN")


def test_orchestrator_image_carries_no_model_side_package(orchestrator_image: Built) -> None:
    packages = installed(orchestrator_image)
    assert {"faceedit", "grpcio", "tritonclient"} <= packages
    assert not packages & MODEL_SIDE, sorted(packages & MODEL_SIDE)
    where = orchestrator_image.python("import faceedit.orchestrator.server as s; print(s.__file__)")
    assert Path(where.strip()).is_relative_to(orchestrator_image.venv), where  # non-editable, not the checkout


def test_orchestrator_image_serves(
    orchestrator_image: Built, triton_server: TritonServer, inpainter_server: ServiceProcess
) -> None:
    env = {
        **loopback_ports(),
        "FACEEDIT_PARSER_URL": triton_server.grpc_url,
        "FACEEDIT_INPAINTER_ADDRESS": inpainter_server.address,
        "FACEEDIT_PARSER_SIZE": "128",
        "FACEEDIT_HEALTH_INTERVAL": "0.2",
    }
    address = f"127.0.0.1:{env['FACEEDIT_PORT']}"
    process = ImageCmd(orchestrator_image, env, address, "faceedit.v1.FaceEditor").start()
    try:
        # A ParseFace end to end: the parse map's colours, the parser round trip, all from the image's venv.
        answer = subprocess.run(
            [sys.executable, "-c", PARSE_PROBE, address], capture_output=True, text=True, timeout=120
        )
        assert answer.returncode == 0, answer.stderr
        assert "attributes present" in answer.stdout
    finally:
        process.stop()
    assert process.exit_code() is not None


# ParseFace on the bundled portrait through the `faceedit parse` command (project venv: a client, not the image).
PARSE_PROBE = """
import sys, tempfile, pathlib
from skimage import data
from faceedit.core.imageio import encode_image
from faceedit.cli.main import main
path = pathlib.Path(tempfile.mkdtemp()) / "face.png"
path.write_bytes(encode_image(data.astronaut()[:256, 128:384]))
sys.exit(main(["parse", str(path), "--server", sys.argv[1]]))
"""


def test_inpainter_image_serves_the_tiny_pipeline(inpainter_image: Built, tiny_inpaint_model: Path) -> None:
    packages = installed(inpainter_image)
    assert {"torch", "diffusers", "transformers"} <= packages
    assert not packages & {"matplotlib", "scikit-image", "onnx", "onnxruntime"}, packages
    env = {
        **loopback_ports(),
        "FACEEDIT_INPAINT_MODEL": str(tiny_inpaint_model),
        "FACEEDIT_DEVICE": "cpu",  # the image's cuda: no GPU here
        "FACEEDIT_WORKING_SIZE": str(TEST_WORKING_SIZE),
        "FACEEDIT_MIN_CROP_SIZE": str(TEST_MIN_CROP),
    }
    process = ImageCmd(inpainter_image, env, f"127.0.0.1:{env['FACEEDIT_PORT']}", "faceedit.v1.Inpainter").start()
    process.stop()
    assert process.exit_code() is not None
    log = process.log_text()
    assert "requires torchvision" not in log, log  # quiet start-up, from the installed package too


def test_parser_image_export_stage(image_builds: dict[str, Future[Built]]) -> None:
    _, triton = parse_dockerfile(PARSER)
    assert triton.base.startswith("nvcr.io/nvidia/tritonserver:")
    built = image_builds["parser"].result()
    scratch = built.scratch
    packages = installed(built)
    assert {"torch", "onnx", "onnxruntime", "transformers"} <= packages
    assert not packages & {"diffusers", "matplotlib", "scikit-image"}, packages
    model = onnx.load(scratch / "out" / "model.onnx")
    # Stage 2 copies it next to model_repository/production/face_parser/config.pbtxt: its tensors are those.
    config = (ROOT / "model_repository" / "production" / "face_parser" / "config.pbtxt").read_text()
    inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert inputs == {"image": onnx.TensorProto.UINT8} and outputs == {"labels": onnx.TensorProto.UINT8}
    assert 'name: "image"' in config and 'name: "labels"' in config
    copied = [payload for kind, payload, _ in triton.steps if kind == "COPY"]
    assert (["model_repository/production/face_parser"], "/models/face_parser") in copied
