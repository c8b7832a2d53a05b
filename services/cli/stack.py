"""The whole faceedit stack as local child processes: Triton (parser), inpainter, orchestrator.

Used by `faceedit up`, `faceedit demo` and the benchmarks; tiny random models unless real ones are named.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from faceedit.parser.launcher import TritonServer, free_port, provider_for_device
from faceedit.process import ServiceProcess


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def ensure_parser_onnx(parser_model: str | None, models_dir: Path, revision: str | None = None) -> Path:
    """The parser as ONNX: the tiny random one by default, else the given hub id or dir (at revision) exported
    once."""
    from faceedit.export.onnx_export import export_parser
    from faceedit.export.segformer import build_random_parser

    if parser_model is None:
        checkpoint = models_dir / "parser-tiny"
        if not (checkpoint / "config.json").exists():
            build_random_parser("tiny", checkpoint)
        source: str | Path = checkpoint
        out = models_dir / "parser-tiny.onnx"
    else:
        source = parser_model
        pinned = f"@{_slug(revision)}" if revision else ""
        out = models_dir / f"parser-{_slug(parser_model)}{pinned}.onnx"
    if not out.exists():
        export_parser(source, out, revision=revision)
    return out


def ensure_inpaint_model(inpaint_model: str | None, models_dir: Path) -> str:
    if inpaint_model is not None:
        return inpaint_model
    from faceedit.export.tiny_sdxl import build_tiny_sdxl

    out = models_dir / "inpaint-tiny"
    if not (out / "model_index.json").exists():
        build_tiny_sdxl(out)
    return str(out)


@dataclass
class StackConfig:
    parser_model: str | None = None  # None: tiny random SegFormer
    inpaint_model: str | None = None  # None: tiny random SDXL
    parser_revision: str | None = None  # hub revision pins
    inpaint_revision: str | None = None
    device: str = "auto"  # the inpainter's device and the parser's onnxruntime provider
    models_dir: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = 50051
    triton_grpc_port: int = 0
    inpainter_port: int = 0
    metrics_port: int = 0
    inpainter_metrics_port: int = 0
    parser_size: int = 512
    working_size: int | None = None  # None: 1024 for real SDXL, 512 for the tiny pipeline
    min_crop_size: int | None = None
    inpainter_args: list[str] = field(default_factory=list)
    orchestrator_args: list[str] = field(default_factory=list)
    workdir: Path | None = None
    ready_timeout_s: float = 600.0


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.triton: TritonServer | None = None
        self.inpainter: ServiceProcess | None = None
        self.orchestrator: ServiceProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def start(self, log=print) -> LocalStack:
        c = self.config
        workdir = Path(c.workdir or tempfile.mkdtemp(prefix="faceedit-stack-"))
        c.models_dir.mkdir(parents=True, exist_ok=True)
        log(f"models: preparing in {c.models_dir}/ ...")
        onnx = ensure_parser_onnx(c.parser_model, c.models_dir, c.parser_revision)
        provider, device_id = provider_for_device(c.device)
        inpaint_model = ensure_inpaint_model(c.inpaint_model, c.models_dir)
        working = c.working_size or (512 if c.inpaint_model is None else 1024)
        try:
            self.triton = TritonServer(
                onnx,
                host=c.host,
                grpc_port=c.triton_grpc_port,
                workdir=workdir / "triton",
                provider=provider,
                device_id=device_id,
                input_size=c.parser_size,
            )
            self.triton.start()
            log(
                f"parser:       triton gRPC {self.triton.grpc_url}  metrics {self.triton.metrics_url}  "
                f"(onnxruntime {self.triton.provider}, --device {c.device})"
            )
            inpainter_port = c.inpainter_port or free_port(c.host)
            inpainter_metrics = c.inpainter_metrics_port or free_port(c.host)
            args = [
                "--model",
                inpaint_model,
                "--host",
                c.host,
                "--port",
                str(inpainter_port),
                "--metrics-port",
                str(inpainter_metrics),
                "--device",
                c.device,
                "--working-size",
                str(working),
            ]
            if c.min_crop_size:
                args += ["--min-crop-size", str(c.min_crop_size)]
            if c.inpaint_revision:
                args += ["--revision", c.inpaint_revision]
            self.inpainter = ServiceProcess(
                "inpainter",
                "faceedit.inpainter.server",
                [*args, *c.inpainter_args],
                f"{c.host}:{inpainter_port}",
                "faceedit.v1.Inpainter",
                workdir / "inpainter.log",
                metrics_port=inpainter_metrics,
            ).start()
            metrics = c.metrics_port or free_port(c.host)
            self.orchestrator = ServiceProcess(
                "orchestrator",
                "faceedit.orchestrator.server",
                [
                    "--parser-url",
                    self.triton.grpc_url,
                    "--inpainter-address",
                    self.inpainter.address,
                    "--parser-size",
                    str(c.parser_size),
                    "--host",
                    c.host,
                    "--port",
                    str(c.port),
                    "--metrics-port",
                    str(metrics),
                    *c.orchestrator_args,
                ],
                self.address,
                "faceedit.v1.FaceEditor",
                workdir / "orchestrator.log",
                metrics_port=metrics,
            ).start()
            self.inpainter.wait_serving(c.ready_timeout_s)
            log(f"inpainter:    {self.inpainter.address}  metrics {self.inpainter.metrics_url}  ({inpaint_model})")
            self.orchestrator.wait_serving(c.ready_timeout_s)
            log(f"orchestrator: {self.address}  metrics {self.orchestrator.metrics_url}   <- EditFace here")
            log(f"logs:         {workdir}")
        except BaseException:
            self.stop()
            raise
        return self

    def pids(self) -> dict[str, int]:
        """The running servers' process ids by name (for memory measurements)."""
        found = {"orchestrator": self.orchestrator, "inpainter": self.inpainter, "triton": self.triton}
        return {name: p.process.pid for name, p in found.items() if p is not None and p.process is not None}

    def stop(self) -> None:
        for process in (self.orchestrator, self.inpainter):
            if process is not None:
                process.stop()
        if self.triton is not None:
            self.triton.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
