"""The local stack for gpu-check's EditFace case: with Triton where its tritonserver is installed, else with the
KServe v2 stand-in (faceedit.bench.kserve_parser) in Triton's place, which the result then says."""

from __future__ import annotations

import re
from pathlib import Path

from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.stack import LocalStack
from faceedit.devstack.triton import TritonStartError, _site_packages, default_triton_venv, free_port

STANDIN_MODULE = "faceedit.bench.kserve_parser"
PROVIDER_LINE = re.compile(r"face_parser stand-in execution provider: (\S+)")


def triton_missing() -> str | None:
    """Why the local tritonserver cannot run here, or None when it can."""
    try:
        _site_packages(default_triton_venv())
    except TritonStartError as exc:
        return str(exc)
    return None


class StandInParser(ServiceProcess):
    """The stand-in as a stack child: LocalStack reads grpc_url from its parsers."""

    @property
    def grpc_url(self) -> str:
        return self.address

    @property
    def provider(self) -> str | None:
        found = PROVIDER_LINE.search(self.log_path.read_text(errors="replace")) if self.log_path.exists() else None
        return found[1] if found else None


class StandInParserStack(LocalStack):
    """LocalStack with the stand-in parser instead of tritonserver (plaintext, one replica)."""

    def _start_tritons(self, onnx: Path, workdir: Path, log) -> None:
        c = self.config
        port, health = free_port(c.host), free_port(c.host)
        provider = "cpu" if c.device == "cpu" else "auto"
        parser = StandInParser(
            "parser",
            STANDIN_MODULE,
            [
                "--onnx",
                str(onnx),
                "--host",
                c.host,
                "--port",
                str(port),
                "--health-port",
                str(health),
                "--provider",
                provider,
            ],
            f"{c.host}:{port}",
            "inference.GRPCInferenceService",
            workdir / "parser.log",
            health_address=f"{c.host}:{health}",
        ).start()
        self.tritons.append(parser)  # type: ignore[arg-type]  # the same calls: grpc_url, stop, exit_code, log_tail
        parser.wait_serving(c.ready_timeout_s)
        log(f"parser:       KServe v2 stand-in (no Triton) {parser.grpc_url} (onnxruntime {parser.provider})")
