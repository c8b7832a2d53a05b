"""Runs a real `tritonserver` (from the nvidia-pytriton wheel) serving face_parser on loopback.

Local runs and CI use this; production runs NVIDIA's Triton image on model_repository/production. The model runs
with onnxruntime on the provider asked for (--provider cpu | cuda | tensorrt | auto); the one it got is read back
from the server's log (TritonServer.provider) and printed.

    python -m faceedit.devstack.triton --onnx models/parser.onnx --grpc-port 8001 [--provider cuda]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from faceedit.devstack.parser_contract import ParserContractError, check_parser_onnx
from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ChildProcess, ChildStartError, exception_line, http_ok
from faceedit.rpc.channels import SERVER_MIN_PING_INTERVAL_MS
from faceedit.rpc.config import env_flag

# Package data (a non-editable install has it too): the python-backend twin of model_repository/production/face_parser.
LOCAL_MODEL = Path(str(resources.files("faceedit.devstack") / "triton_model" / "face_parser"))
MODEL_NAME = "face_parser"
SHM = Path("/dev/shm")
PROVIDERS = ("cpu", "cuda", "tensorrt", "auto")
# The line triton_model/face_parser/1/model.py logs once its onnxruntime session exists.
PROVIDER_LOG_PREFIX = "faceedit face_parser execution provider:"


class TritonStartError(ChildStartError):
    """The server exited or did not get its model ready in time; the message carries the log's tail."""


def default_triton_venv() -> Path:
    """FACEEDIT_TRITON_VENV, else `.venv-triton` of the working directory (where `make setup` creates it)."""
    return Path(os.environ.get("FACEEDIT_TRITON_VENV", ".venv-triton")).absolute()


def provider_for_device(device: str) -> tuple[str, int]:
    """The local parser's (execution provider, GPU index) for a faceedit --device value: auto, cpu, cuda, cuda:N."""
    if device in ("auto", "cpu"):
        return device, 0
    name, _, index = device.partition(":")
    if name != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N")
    return "cuda", int(index or 0)


def local_config(
    text: str,
    *,
    instance_count: int | None = None,
    provider: str = "cpu",
    device_id: int = 0,
    input_size: int = 512,
) -> str:
    """The local config.pbtxt with the launcher's choices written in. On a GPU provider onnxruntime takes Triton's
    whole batch at once and uses every core it needs (the CPU settings would throttle it)."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    if instance_count is not None:
        config.instance_group[0].count = instance_count
    values = {"execution_provider": provider, "device_id": str(device_id), "input_size": str(input_size)}
    if provider in ("cuda", "tensorrt"):
        values |= {"max_onnx_batch": str(config.max_batch_size), "intra_op_threads": "0"}
    for key, value in values.items():
        config.parameters[key].string_value = value
    return text_format.MessageToString(config)


def grpc_flags(server: TritonServer) -> list[str]:
    """tritonserver's gRPC flags for connection ageing, the keepalive faceedit's clients use (their 30 s pings
    must be accepted, or Triton answers too_many_pings: its own default minimum is 5 minutes), and TLS."""
    flags = [
        "--grpc-keepalive-permit-without-calls=1",
        f"--grpc-http2-min-recv-ping-interval-without-data={SERVER_MIN_PING_INTERVAL_MS}",
        "--grpc-http2-max-pings-without-data=0",
    ]
    if server.max_connection_age_s > 0:
        flags += [
            f"--grpc-max-connection-age={int(server.max_connection_age_s * 1000)}",
            f"--grpc-max-connection-age-grace={int(server.max_connection_age_grace_s * 1000)}",
        ]
    if server.tls_cert is not None:
        flags += ["--grpc-use-ssl=1", f"--grpc-server-cert={server.tls_cert}", f"--grpc-server-key={server.tls_key}"]
        if server.tls_client_ca is not None:
            flags += ["--grpc-use-ssl-mutual=1", f"--grpc-root-cert={server.tls_client_ca}"]
    return flags


def trace_flags(url: str | None, service_name: str = "face-parser") -> list[str]:
    """tritonserver's OpenTelemetry flags: every request traced (rate 1; the caller's sampling decided already)
    with its timestamps, exported over OTLP/HTTP (Triton's exporter speaks no OTLP/gRPC) to url. Its batch
    processor follows OTEL_BSP_* from the environment. None: no flags, tracing off."""
    if url is None:
        return []
    return [
        "--trace-config=mode=opentelemetry",
        "--trace-config=rate=1",
        "--trace-config=level=TIMESTAMPS",
        f"--trace-config=opentelemetry,url={url}",
        f"--trace-config=opentelemetry,resource=service.name={service_name}",
    ]


def otlp_http_traces_url(grpc_endpoint: str | None) -> str:
    """Where Triton should send spans, given the OTLP/gRPC endpoint the services use (OTEL_EXPORTER_OTLP_ENDPOINT,
    default localhost:4317): the same collector's OTLP/HTTP port, 4318, path /v1/traces (collectors and Jaeger
    listen on both by default)."""
    endpoint = grpc_endpoint or "http://localhost:4317"
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if parts.scheme == "https" else "http"
    return f"{scheme}://{host}:4318/v1/traces"


def supports_opentelemetry(triton_venv: Path | None = None) -> bool:
    """Whether the tritonserver in triton_venv (default: FACEEDIT_TRITON_VENV) was built with OpenTelemetry
    tracing: its --help then offers the "opentelemetry" trace mode."""
    site = _site_packages(triton_venv or default_triton_venv())
    env = {**os.environ, "LD_LIBRARY_PATH": f"{site / 'nvidia_pytriton.libs'}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    binary = site / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, env=env, timeout=60)
    return '"opentelemetry" mode' in result.stdout + result.stderr


def provider_from_log(log: str) -> str | None:
    """The onnxruntime provider model.py reported (first instance), or None if it has not said yet."""
    for line in log.splitlines():
        _, found, rest = line.partition(PROVIDER_LOG_PREFIX)
        if found:
            return rest.split()[0] if rest.split() else None
    return None


def load_error(log: str) -> str | None:
    """Why Triton could not load the model, from its log (the first line of the model's own message)."""
    found = re.search(r"failed to load '[^']+' version \d+: (.*)", log)
    if not found:
        return None
    return found.group(1).split("\\n")[0].rstrip('"')


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages/pytriton/tritonserver"))
    if not found:
        raise TritonStartError(
            f"no tritonserver in {venv}: create it with `make setup` (pip install -r "
            "services/faceedit/devstack/triton-requirements.txt into that venv) or set FACEEDIT_TRITON_VENV"
        )
    return found[0].parents[1]


def triton_error(log: str) -> str | None:
    """The line of tritonserver's log that says why it stopped: a model that failed to load, else its last error
    line (`E1202 ... failed to start GRPC service: ... already in use`), else a Python exception of the stub."""
    reason = load_error(log)
    if reason is not None:
        return reason
    errors = [line for line in log.splitlines() if re.match(r"E\d{4} ", line)]
    return errors[-1].split("] ", 1)[-1] if errors else exception_line(log)


@dataclass
class TritonServer(ChildProcess):
    """A tritonserver process with the local face_parser model; use as a context manager or start()/stop()."""

    onnx_path: Path
    name: str = "tritonserver"
    triton_venv: Path = field(default_factory=default_triton_venv)
    # The venv whose python runs the python-backend stub; default the Triton venv (numpy<2).
    python_env: Path | None = None
    host: str = "127.0.0.1"
    grpc_port: int = 0
    http_port: int = 0
    metrics_port: int = 0
    ready_timeout_s: float = 60.0
    instance_count: int | None = None  # None: the local config's own instance count
    provider: str = "cpu"  # cpu | cuda | tensorrt | auto; after start(): what onnxruntime actually gave
    device_id: int = 0
    input_size: int = 512  # the serving size clients letterbox to (TensorRT's optimisation profile)
    # Clients re-resolve and reach new replicas when their connection ages out (0: never).
    max_connection_age_s: float = 300.0
    max_connection_age_grace_s: float = 60.0
    # gRPC over TLS (cert and key); with client_ca, clients must present a certificate it signed (mTLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # OpenTelemetry: export every inference's spans over OTLP/HTTP to this URL (http://host:4318/v1/traces),
    # continuing the caller's trace from its traceparent metadata. None: no tracing.
    trace_url: str | None = None
    trace_service_name: str = "face-parser"
    workdir: Path | None = None
    start_error = TritonStartError
    hang_hint = " (a python-backend stub that cannot start hangs in 'loading')"
    awaited = f"get {MODEL_NAME} ready"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def _site(self) -> Path:
        return _site_packages(self.triton_venv)

    def prepare(self) -> None:
        """The model repository and backend links in workdir, the ports (0: free ones), an shm prefix; refuses a
        model that is missing or lacks face_parser's I/O before anything starts."""
        if not Path(self.onnx_path).is_file():
            raise TritonStartError(f"parser model {self.onnx_path} does not exist; export it first")
        try:
            check_parser_onnx(Path(self.onnx_path))
        except ParserContractError as exc:
            raise TritonStartError(str(exc)) from None
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="faceedit-triton-"))
        self.log_path = self.workdir / "tritonserver.log"
        site = self._site()
        triton = site / "pytriton" / "tritonserver"
        python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
        backend = self.workdir / "backends" / "python"
        backend.mkdir(parents=True, exist_ok=True)
        for src in (
            triton / "backends" / "python" / "libtriton_python.so",
            triton / "backends" / "python" / "triton_python_backend_utils.py",
            triton / "python_backend_stubs" / python_version / "triton_python_backend_stub",
        ):
            link = backend / src.name
            if not link.exists():
                link.symlink_to(src)
        model = self.workdir / "repository" / MODEL_NAME
        (model / "1").mkdir(parents=True, exist_ok=True)
        config = local_config(
            (LOCAL_MODEL / "config.pbtxt").read_text(),
            instance_count=self.instance_count,
            provider=self.provider,
            device_id=self.device_id,
            input_size=self.input_size,
        )
        (model / "config.pbtxt").write_text(config)
        for name, src in (("model.py", LOCAL_MODEL / "1" / "model.py"), ("model.onnx", Path(self.onnx_path))):
            link = model / "1" / name
            link.unlink(missing_ok=True)
            link.symlink_to(src.resolve())
        for attr in ("grpc_port", "http_port", "metrics_port"):
            if not getattr(self, attr):
                setattr(self, attr, free_port(self.host))
        # A per-server shm prefix, so cleaning up after a hung server never touches another server's regions.
        self._shm_prefix = f"triton_python_backend_shm_region_fe{uuid.uuid4().hex[:12]}_"

    def environment(self) -> dict[str, str]:
        site = self._site()
        python_env = Path(self.python_env or self.triton_venv)
        env = dict(os.environ)
        env["PATH"] = f"{python_env / 'bin'}:{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = f"{site / 'nvidia_pytriton.libs'}:{env.get('LD_LIBRARY_PATH', '')}"
        env.pop("PYTHONPATH", None)
        return env

    def command(self) -> list[str]:
        assert self.workdir is not None
        return [
            str(self._site() / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.workdir / 'repository'}",
            f"--backend-directory={self.workdir / 'backends'}",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
            f"--grpc-address={self.host}",
            f"--http-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--http-port={self.http_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            "--cuda-memory-pool-byte-size=0:0",
            "--exit-on-error=true",
            "--exit-timeout-secs=5",
            "--strict-readiness=true",
            *grpc_flags(self),
            *trace_flags(self.trace_url, self.trace_service_name),
        ]

    def check_ready(self) -> bool:
        """Ready once face_parser is, and its model has reported the provider onnxruntime gave (read back)."""
        if not super().check_ready():
            return False
        got = provider_from_log(self.log_text())
        if got is None:
            raise TritonStartError(f"{MODEL_NAME} is ready but did not report its execution provider")
        self.provider = got
        return True

    def is_ready(self) -> bool:
        return http_ok(f"{self.http_url}/v2/models/{MODEL_NAME}/ready")

    def reason_in_log(self, log: str) -> str | None:
        return triton_error(log)

    def shm_regions(self) -> list[Path]:
        prefix = getattr(self, "_shm_prefix", None)
        return sorted(SHM.glob(f"{prefix}*")) if prefix else []

    def cleanup(self) -> None:
        """Removes its shared-memory regions (a killed server leaves them behind)."""
        for region in self.shm_regions():
            region.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the face parser ONNX with a local tritonserver (CPU).")
    env_flag(
        parser,
        "--onnx",
        env="FACEEDIT_PARSER_ONNX",
        type=Path,
        required=True,
        help="model.onnx to serve, with face_parser's I/O (input image UINT8 [N,H,W,3], output labels UINT8 [N,H,W])",
    )
    env_flag(parser, "--host", env="FACEEDIT_TRITON_HOST", default="127.0.0.1", help="address to bind")
    env_flag(parser, "--grpc-port", env="FACEEDIT_TRITON_GRPC_PORT", default=8001, type=int, help="gRPC port")
    env_flag(parser, "--http-port", env="FACEEDIT_TRITON_HTTP_PORT", default=8000, type=int, help="HTTP port")
    env_flag(parser, "--metrics-port", env="FACEEDIT_TRITON_METRICS_PORT", default=8002, type=int, help="metrics port")
    env_flag(
        parser,
        "--instances",
        env="FACEEDIT_TRITON_INSTANCES",
        default=None,
        type=int,
        help="model instances (default: the local config's, 2)",
    )
    env_flag(
        parser,
        "--provider",
        env="FACEEDIT_TRITON_PROVIDER",
        default="cpu",
        choices=PROVIDERS,
        help="onnxruntime execution provider: cpu, cuda, tensorrt, auto (cuda if usable, else cpu)",
    )
    env_flag(parser, "--device-id", env="FACEEDIT_TRITON_DEVICE_ID", default=0, type=int, help="GPU index")
    env_flag(
        parser,
        "--triton-venv",
        env="FACEEDIT_TRITON_VENV",
        default=default_triton_venv(),
        type=Path,
        help="virtualenv holding nvidia-pytriton and onnxruntime",
    )
    env_flag(
        parser,
        "--ready-timeout",
        env="FACEEDIT_TRITON_READY_TIMEOUT",
        default=60.0,
        type=float,
        help="seconds to wait for the model to load",
    )
    args = parser.parse_args(argv)
    server = TritonServer(
        args.onnx,
        triton_venv=args.triton_venv,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        ready_timeout_s=args.ready_timeout,
        instance_count=args.instances,
        provider=args.provider,
        device_id=args.device_id,
    )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.start()
    except TritonStartError as exc:  # a refused model, a server that exits: one line, its log's tail below
        print(f"faceedit.devstack.triton: {exc}", file=sys.stderr)
        return 1
    try:
        print(
            f"face_parser on triton: grpc {server.grpc_url}  metrics {server.metrics_url}  "
            f"onnxruntime provider {server.provider}",
            flush=True,
        )
        while not stop and server.process is not None:
            try:
                server.process.wait(timeout=0.5)
                print(f"tritonserver exited with {server.process.returncode}", file=sys.stderr)
                return 1
            except subprocess.TimeoutExpired:
                continue
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
