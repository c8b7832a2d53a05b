"""The whole faceedit stack as local child processes: Triton (parser), inpainter, orchestrator, any number of
parser and inpainter replicas, in plaintext or over TLS/mTLS with a bearer token.

Used by `faceedit up`, `faceedit demo` and the benchmarks; tiny random models unless real ones are named. N replicas
of a stage are N processes on loopback behind one multi-address target (`ipv4:127.0.0.1:p1,127.0.0.1:p2`), dialled
by the orchestrator through the same balancing code as a headless Service in Kubernetes.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from faceedit.devstack.devpki import DevPki, write_dev_pki
from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.triton import (
    TritonServer,
    free_port,
    otlp_http_traces_url,
    provider_for_device,
    supports_opentelemetry,
)
from faceedit.rpc.channels import INPAINTER_SERVICE

FACE_EDITOR = "faceedit.v1.FaceEditor"


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


def target(addresses: list[str]) -> str:
    """One gRPC target for one or several host:port addresses on IPv4 hosts (replicas on loopback)."""
    if len(addresses) == 1:
        return addresses[0]
    for address in addresses:
        try:
            ipaddress.IPv4Address(address.rpartition(":")[0])
        except ValueError:
            raise ValueError(f"replicas need an IPv4 --host (127.0.0.1 by default), got {address}") from None
    return "ipv4:" + ",".join(addresses)


def _ports(first: int, count: int, host: str) -> list[int]:
    """count ports: first, first+1, ... when first is set, else free ones."""
    return [first + i if first else free_port(host) for i in range(count)]


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
    triton_grpc_port: int = 0  # the first replica's; the others take the next ports (0: free ports)
    inpainter_port: int = 0
    metrics_port: int = 0
    inpainter_metrics_port: int = 0
    parser_size: int = 512
    working_size: int | None = None  # None: 1024 for real SDXL, 512 for the tiny pipeline
    min_crop_size: int | None = None
    parser_replicas: int = 1
    inpainter_replicas: int = 1
    secure_dir: Path | None = None  # TLS on every hop, mTLS inside, a bearer token: certificates written here
    # OpenTelemetry on every service, exported where OTEL_EXPORTER_OTLP_ENDPOINT says (Triton: the same host's
    # OTLP/HTTP port 4318, when its build can trace).
    tracing: bool = False
    inpainter_args: list[str] = field(default_factory=list)
    orchestrator_args: list[str] = field(default_factory=list)
    workdir: Path | None = None
    ready_timeout_s: float = 600.0


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.tritons: list[TritonServer] = []
        self.inpainters: list[ServiceProcess] = []
        self.orchestrator: ServiceProcess | None = None
        self.pki: DevPki | None = None
        self.workdir: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    @property
    def working_size(self) -> int:
        """The inpainter's canvas, which the orchestrator also needs to bound the region it sends: the models'
        native canvases unless set (SDXL 128 x 8 = 1024; the tiny pipeline 64 x 8 = 512)."""
        return self.config.working_size or (512 if self.config.inpaint_model is None else 1024)

    def _tls_args(self, *, mutual: bool) -> list[str]:
        if self.pki is None:
            return []
        args = ["--tls-cert", str(self.pki.server_cert), "--tls-key", str(self.pki.server_key)]
        return [*args, "--tls-client-ca", str(self.pki.ca_cert)] if mutual else args

    def _service(
        self, name: str, module: str, args: list[str], port: int, service: str, workdir: Path, metrics: int
    ) -> ServiceProcess:
        """A faceedit server; its plaintext health-only port answers readiness checks whatever its TLS."""
        health = free_port(self.config.host)
        where = ["--host", self.config.host, "--port", str(port), "--metrics-port", str(metrics)]
        return ServiceProcess(
            name,
            module,
            [*args, *where, "--health-port", str(health)],
            f"{self.config.host}:{port}",
            service,
            workdir / f"{name}.log",
            metrics_port=metrics,
            health_address=f"{self.config.host}:{health}",
        ).start()

    def _start_tritons(self, onnx: Path, workdir: Path, log) -> None:
        c = self.config
        provider, device_id = provider_for_device(c.device)
        trace_url = None
        if c.tracing:
            if supports_opentelemetry():
                trace_url = otlp_http_traces_url(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
                log(f"tracing:      services over OTLP/gRPC per OTEL_EXPORTER_OTLP_ENDPOINT; Triton to {trace_url}")
            else:
                log("tracing:      services only: this tritonserver build has no OpenTelemetry tracing")
        for index, port in enumerate(_ports(c.triton_grpc_port, c.parser_replicas, c.host)):
            pki = self.pki
            server = TritonServer(
                onnx,
                host=c.host,
                grpc_port=port,
                workdir=workdir / f"triton-{index + 1}",
                provider=provider,
                device_id=device_id,
                input_size=c.parser_size,
                tls_cert=pki.server_cert if pki else None,
                tls_key=pki.server_key if pki else None,
                tls_client_ca=pki.ca_cert if pki else None,
                trace_url=trace_url,
            )
            self.tritons.append(server)
            server.start()
            log(
                f"parser:       triton gRPC {server.grpc_url}  metrics {server.metrics_url}  "
                f"(onnxruntime {server.provider}, --device {c.device}{', mTLS' if pki else ''})"
            )

    def _start_inpainters(self, inpaint_model: str, workdir: Path) -> None:
        c = self.config
        args = ["--model", inpaint_model, "--device", c.device, "--working-size", str(self.working_size)]
        if c.min_crop_size:
            args += ["--min-crop-size", str(c.min_crop_size)]
        if c.inpaint_revision:
            args += ["--revision", c.inpaint_revision]
        ports = _ports(c.inpainter_port, c.inpainter_replicas, c.host)
        metrics = _ports(c.inpainter_metrics_port, c.inpainter_replicas, c.host)
        for index, (port, metrics_port) in enumerate(zip(ports, metrics, strict=True)):
            name = "inpainter" if index == 0 else f"inpainter-{index + 1}"
            extra = [*self._tls_args(mutual=True), *(["--tracing"] if c.tracing else []), *c.inpainter_args]
            self.inpainters.append(
                self._service(
                    name, "faceedit.inpainter.server", [*args, *extra], port, INPAINTER_SERVICE, workdir, metrics_port
                )
            )

    def _orchestrator_args(self) -> list[str]:
        c = self.config
        args = [
            "--parser-url",
            target([t.grpc_url for t in self.tritons]),
            "--inpainter-address",
            target([p.address for p in self.inpainters]),
            "--parser-size",
            str(c.parser_size),
            "--working-size",
            str(self.working_size),
        ]
        if self.pki is not None:
            pki = self.pki
            args += self._tls_args(mutual=False)  # callers: TLS and a token
            args += ["--downstream-ca", str(pki.ca_cert), "--downstream-cert", str(pki.client_cert)]
            args += ["--downstream-key", str(pki.client_key), "--auth-tokens", str(pki.token_hashes)]
        if c.tracing:
            args.append("--tracing")
        return [*args, *c.orchestrator_args]

    def start(self, log=print) -> LocalStack:
        c = self.config
        workdir = self.workdir = Path(c.workdir or tempfile.mkdtemp(prefix="faceedit-stack-"))
        c.models_dir.mkdir(parents=True, exist_ok=True)
        log(f"models: preparing in {c.models_dir}/ ...")
        onnx = ensure_parser_onnx(c.parser_model, c.models_dir, c.parser_revision)
        inpaint_model = ensure_inpaint_model(c.inpaint_model, c.models_dir)
        if c.secure_dir is not None:
            self.pki = write_dev_pki(c.secure_dir)
            log(f"secure:       TLS on every hop, mTLS inside, token required; CA, client certificate and token in "
                f"{c.secure_dir}/ (clients: --secure {c.secure_dir})")  # fmt: skip
        try:
            self._start_tritons(onnx, workdir, log)
            self._start_inpainters(inpaint_model, workdir)
            metrics = c.metrics_port or free_port(c.host)
            self.orchestrator = self._service(
                "orchestrator",
                "faceedit.orchestrator.server",
                self._orchestrator_args(),
                c.port,
                FACE_EDITOR,
                workdir,
                metrics,
            )
            for inpainter in self.inpainters:
                inpainter.wait_serving(c.ready_timeout_s)
                log(f"inpainter:    {inpainter.address}  metrics {inpainter.metrics_url}  ({inpaint_model})")
            self.orchestrator.wait_serving(c.ready_timeout_s)
            log(f"orchestrator: {self.address}  metrics {self.orchestrator.metrics_url}   <- EditFace here")
            log(f"logs:         {workdir}")
        except BaseException:
            self.stop()
            raise
        return self

    def metrics_targets(self) -> dict[str, list[str]]:
        """Every server's /metrics URL by Prometheus job, named as in Kubernetes (the rules and the dashboard
        filter on these job names)."""
        targets = {
            "orchestrator": [self.orchestrator.metrics_url] if self.orchestrator is not None else [],
            "inpainter": [p.metrics_url for p in self.inpainters],
            "face-parser": [t.metrics_url for t in self.tritons],
        }
        return {job: urls for job, urls in targets.items() if urls}

    def children(self) -> dict[str, TritonServer | ServiceProcess]:
        """Every server of the stack by name."""
        named: dict[str, TritonServer | ServiceProcess] = {
            ("triton" if i == 0 else f"triton-{i + 1}"): t for i, t in enumerate(self.tritons)
        }
        named |= {p.name: p for p in self.inpainters}
        if self.orchestrator is not None:
            named["orchestrator"] = self.orchestrator
        return named

    def dead(self) -> tuple[str, int, str] | None:
        """The first server that exited on its own: (name, exit code, its log's tail); None while all run."""
        for name, child in self.children().items():
            code = child.exit_code()
            if code is not None:
                return name, code, child.log_tail(15)
        return None

    def pids(self) -> dict[str, int]:
        """The running servers' process ids by name (for memory measurements)."""
        return {name: c.process.pid for name, c in self.children().items() if c.process is not None}

    def stop(self) -> None:
        for process in (self.orchestrator, *self.inpainters):
            if process is not None:
                process.stop()
        for server in self.tritons:
            server.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
