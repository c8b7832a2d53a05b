"""The two faceedit gRPC servers as child processes, wired the one way the stack and the tests both use: bound to
host:port, /metrics on its own port, and a plaintext health-only port that answers readiness whatever the TLS."""

from __future__ import annotations

from pathlib import Path

from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ServiceProcess
from faceedit.rpc.channels import INPAINTER_SERVICE

FACE_EDITOR = "faceedit.v1.FaceEditor"
INPAINTER_MODULE = "faceedit.inpainter.server"
ORCHESTRATOR_MODULE = "faceedit.orchestrator.server"


def faceedit_server(
    name: str,
    module: str,
    service: str,
    args: list[str],
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    metrics_port: int = 0,
    health_port: int = 0,
    env: dict[str, str] | None = None,
) -> ServiceProcess:
    """`python -m module args` (not started yet), logging to workdir/name.log; ports 0: free ones."""
    port, metrics_port, health_port = (p or free_port(host) for p in (port, metrics_port, health_port))
    where = [
        "--host",
        host,
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        "--health-port",
        str(health_port),
    ]
    return ServiceProcess(
        name,
        module,
        [*args, *where],
        f"{host}:{port}",
        service,
        workdir / f"{name}.log",
        env=dict(env or {}),
        metrics_port=metrics_port,
        health_address=f"{host}:{health_port}",
    )


def inpainter(model: str | Path, workdir: Path, *args: str, name: str = "inpainter", **where) -> ServiceProcess:
    """An inpainter serving model (a diffusers directory or hub id); args are its further flags."""
    return faceedit_server(name, INPAINTER_MODULE, INPAINTER_SERVICE, ["--model", str(model), *args], workdir, **where)


def orchestrator(
    parser_url: str, inpainter_address: str, workdir: Path, *args: str, name: str = "orchestrator", **where
) -> ServiceProcess:
    """An orchestrator dialling the parser (Triton) at parser_url and the inpainter(s) at inpainter_address."""
    targets = ["--parser-url", parser_url, "--inpainter-address", inpainter_address]
    return faceedit_server(name, ORCHESTRATOR_MODULE, FACE_EDITOR, [*targets, *args], workdir, **where)
