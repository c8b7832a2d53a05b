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
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from faceedit.devstack.devpki import DevPki, write_dev_pki
from faceedit.devstack.parser_contract import check_parser_onnx
from faceedit.devstack.ports import PortPlan
from faceedit.devstack.process import ChildProcess, ServiceProcess
from faceedit.devstack.services import inpainter, orchestrator
from faceedit.devstack.triton import (
    TritonServer,
    otlp_http_traces_url,
    provider_for_device,
    supports_opentelemetry,
)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def ensure_parser_onnx(parser_model: str | None, models_dir: Path, revision: str | None = None) -> Path:
    """The parser as ONNX: the tiny random one by default; a `.onnx` file served as it is, once its I/O is checked
    against face_parser's; else the given hub id or dir (at revision), exported once."""
    from faceedit.export.onnx_export import export_parser
    from faceedit.export.segformer import build_random_parser

    if parser_model is not None and parser_model.endswith(".onnx"):
        path = Path(parser_model)
        if not path.is_file():
            raise ValueError(f"parser model {path} does not exist")
        check_parser_onnx(path)
        return path
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
    # Ports (see faceedit.devstack.ports). The first replica's are exact (0: free ones); the other replicas take
    # the next ports that no server of the stack claims and nothing else listens on.
    triton_grpc_port: int = 0
    inpainter_port: int = 0
    metrics_port: int = 0
    inpainter_metrics_port: int = 0
    # None: Triton's own defaults beside its gRPC port (8000 and 8002 beside 8001) when free, else free ones;
    # free ones when triton_grpc_port is 0.
    triton_http_port: int | None = None
    triton_metrics_port: int | None = None
    reserved_ports: tuple[int, ...] = ()  # ports the stack must leave alone (e.g. `up --prometheus`'s)
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


def wait_all_ready(children: Mapping[str, ChildProcess], timeout_s: float, log=print) -> None:
    """Until every child is ready, logging each as it gets there; the first that exits (or the timeout) raises
    its ChildStartError at once, so a child that cannot start is reported in seconds, not after the others."""
    waiting = dict(children)
    deadline = time.monotonic() + timeout_s
    while waiting:
        for name, child in list(waiting.items()):
            if child.check_ready():
                del waiting[name]
                log(name)
        if waiting and time.monotonic() > deadline:
            name, child = next(iter(waiting.items()))
            child.wait_ready(0)  # raises its own "did not ... within" error with the log's tail
        time.sleep(0.1)


class LocalStack:
    """The stack's children, planned (ports, arguments) by plan() and started by start(); supervise them with
    faceedit.devstack.supervisor."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.tritons: list[TritonServer] = []
        self.inpainters: list[ServiceProcess] = []
        self.orchestrator: ServiceProcess | None = None
        self.pki: DevPki | None = None
        self.workdir: Path | None = None
        self.ports = PortPlan(config.host)
        self._inpaint_model = ""

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

    def _replicas(self, asked: int, count: int, owner: str) -> list[int]:
        """The first replica's port as asked, the others the next unclaimed free ones (asked 0: free ones)."""
        ports = [self.ports.exact(asked, f"{owner} 1")]
        for index in range(2, count + 1):
            ports.append(self.ports.after(ports[-1], f"{owner} {index}") if asked else self.ports.free(owner))
        return ports

    def _beside_triton(self, asked: int | None, offset: int, owner: str) -> int:
        """Triton's HTTP or metrics port: as asked, else Triton's own default beside its gRPC port when free."""
        if asked is not None:
            return self.ports.exact(asked, owner)
        grpc = self.config.triton_grpc_port
        return self.ports.preferred(grpc + offset if grpc else 0, owner)

    def plan_ports(self) -> dict[str, list[int]]:
        """Every port of the stack by role, one per replica. Ports asked for are claimed first, so no derived
        port (a replica's, a Triton default) can take one; a port asked for twice is a ValueError."""
        c, plan = self.config, self.ports
        for port in c.reserved_ports:
            plan.exact(port, "a reserved port")
        fixed = {
            "orchestrator": [plan.exact(c.port, "orchestrator")],
            "orchestrator metrics": [plan.exact(c.metrics_port, "orchestrator metrics")],
        }
        firsts = {
            "triton gRPC": plan.exact(c.triton_grpc_port, "triton gRPC"),
            "inpainter": plan.exact(c.inpainter_port, "inpainter"),
            "inpainter metrics": plan.exact(c.inpainter_metrics_port, "inpainter metrics"),
        }
        asked = {"triton gRPC": c.triton_grpc_port, "inpainter": c.inpainter_port}
        asked["inpainter metrics"] = c.inpainter_metrics_port
        sides = {
            "triton HTTP": self._beside_triton(c.triton_http_port, -1, "triton HTTP"),
            "triton metrics": self._beside_triton(c.triton_metrics_port, +1, "triton metrics"),
        }
        counts = {"triton gRPC": c.parser_replicas, "inpainter": c.inpainter_replicas}
        counts["inpainter metrics"] = c.inpainter_replicas
        planned = dict(fixed)
        for role, first in firsts.items():
            ports = [first]
            for index in range(2, counts[role] + 1):
                owner = f"{role} {index}"
                ports.append(plan.after(ports[-1], owner) if asked[role] else plan.free(owner))
            planned[role] = ports
        for role, first in sides.items():
            planned[role] = [first] + [plan.free(f"{role} {i}") for i in range(2, c.parser_replicas + 1)]
        return planned

    def plan(self, onnx: Path, inpaint_model: str, workdir: Path, log=print) -> None:
        """The children, not yet started: every port chosen, every argument written."""
        c = self.config
        ports = self.plan_ports()
        provider, device_id = provider_for_device(c.device)
        trace_url = None
        if c.tracing:
            if supports_opentelemetry():
                trace_url = otlp_http_traces_url(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
                log(f"tracing:      services over OTLP/gRPC per OTEL_EXPORTER_OTLP_ENDPOINT; Triton to {trace_url}")
            else:
                log("tracing:      services only: this tritonserver build has no OpenTelemetry tracing")
        pki = self.pki
        for index in range(c.parser_replicas):
            self.tritons.append(
                TritonServer(
                    onnx,
                    name="triton" if index == 0 else f"triton-{index + 1}",
                    host=c.host,
                    grpc_port=ports["triton gRPC"][index],
                    http_port=ports["triton HTTP"][index],
                    metrics_port=ports["triton metrics"][index],
                    workdir=workdir / f"triton-{index + 1}",
                    provider=provider,
                    device_id=device_id,
                    input_size=c.parser_size,
                    tls_cert=pki.server_cert if pki else None,
                    tls_key=pki.server_key if pki else None,
                    tls_client_ca=pki.ca_cert if pki else None,
                    trace_url=trace_url,
                    ready_timeout_s=c.ready_timeout_s,
                )
            )
        args = ["--device", c.device, "--working-size", str(self.working_size)]
        if c.min_crop_size:
            args += ["--min-crop-size", str(c.min_crop_size)]
        if c.inpaint_revision:
            args += ["--revision", c.inpaint_revision]
        args += [*self._tls_args(mutual=True), *(["--tracing"] if c.tracing else []), *c.inpainter_args]
        for index in range(c.inpainter_replicas):
            process = inpainter(
                inpaint_model,
                workdir,
                *args,
                name="inpainter" if index == 0 else f"inpainter-{index + 1}",
                host=c.host,
                port=ports["inpainter"][index],
                metrics_port=ports["inpainter metrics"][index],
                health_port=self.ports.free("inpainter health"),
            )
            process.ready_timeout_s = c.ready_timeout_s
            self.inpainters.append(process)
        self.orchestrator = orchestrator(
            target([t.grpc_url for t in self.tritons]),
            target([p.address for p in self.inpainters]),
            workdir,
            *self._orchestrator_args(),
            host=c.host,
            port=ports["orchestrator"][0],
            metrics_port=ports["orchestrator metrics"][0],
            health_port=self.ports.free("orchestrator health"),
        )
        self.orchestrator.ready_timeout_s = c.ready_timeout_s

    def _orchestrator_args(self) -> list[str]:
        c = self.config
        args = ["--parser-size", str(c.parser_size), "--working-size", str(self.working_size)]
        if self.pki is not None:
            pki = self.pki
            args += self._tls_args(mutual=False)  # callers: TLS and a token
            args += ["--downstream-ca", str(pki.ca_cert), "--downstream-cert", str(pki.client_cert)]
            args += ["--downstream-key", str(pki.client_key), "--auth-tokens", str(pki.token_hashes)]
        if c.tracing:
            args.append("--tracing")
        return [*args, *c.orchestrator_args]

    def describe(self, name: str) -> str:
        """The line `up` prints for a child once it is ready: where to reach it and its metrics."""
        child = self.children()[name]
        if isinstance(child, TritonServer):
            return (
                f"parser:       triton gRPC {child.grpc_url}  HTTP {child.http_url}  metrics {child.metrics_url}  "
                f"(onnxruntime {child.provider}, --device {self.config.device}{', mTLS' if self.pki else ''})"
            )
        assert isinstance(child, ServiceProcess)
        if child is self.orchestrator:
            return f"orchestrator: {child.address}  metrics {child.metrics_url}   <- EditFace here"
        return f"inpainter:    {child.address}  metrics {child.metrics_url}  ({self._inpaint_model})"

    def start(self, log=print) -> LocalStack:
        """Models prepared, every child spawned at once and waited for; a child that fails stops the rest and
        raises its ChildStartError (first line: the child and why)."""
        c = self.config
        workdir = self.workdir = Path(c.workdir or tempfile.mkdtemp(prefix="faceedit-stack-"))
        c.models_dir.mkdir(parents=True, exist_ok=True)
        log(f"models: preparing in {c.models_dir}/ ...")
        onnx = ensure_parser_onnx(c.parser_model, c.models_dir, c.parser_revision)
        self._inpaint_model = ensure_inpaint_model(c.inpaint_model, c.models_dir)
        if c.secure_dir is not None:
            self.pki = write_dev_pki(c.secure_dir)
            log(f"secure:       TLS on every hop, mTLS inside, token required; CA, client certificate and token in "
                f"{c.secure_dir}/ (clients: --secure {c.secure_dir})")  # fmt: skip
        try:
            self.plan(onnx, self._inpaint_model, workdir, log)
            for child in self.children().values():
                child.spawn()
            wait_all_ready(self.children(), c.ready_timeout_s, log=lambda name: log(self.describe(name)))
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

    def children(self) -> dict[str, ChildProcess]:
        """Every server of the stack by name, in start order."""
        named: dict[str, ChildProcess] = {t.name: t for t in self.tritons}
        named |= {p.name: p for p in self.inpainters}
        if self.orchestrator is not None:
            named["orchestrator"] = self.orchestrator
        return named

    def dead(self) -> tuple[str, int, str] | None:
        """The first server that exited on its own: (name, exit code, why, in one line); None while all run."""
        for name, child in self.children().items():
            code = child.exit_code()
            if code is not None:
                return name, code, child.exit_reason()
        return None

    def pids(self) -> dict[str, int]:
        """The running servers' process ids by name (for memory measurements)."""
        return {name: c.process.pid for name, c in self.children().items() if c.process is not None}

    def stop(self) -> None:
        """The orchestrator and inpainters first (they drain), then Triton."""
        for child in reversed(list(self.children().values())):
            child.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
