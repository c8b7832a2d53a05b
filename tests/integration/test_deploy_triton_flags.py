"""The face-parser Deployment's tritonserver arguments, run by a real tritonserver of the same version as the image
(2.51, from the nvidia-pytriton wheel): Triton accepts every flag, serves gRPC only over mutual TLS with certificates
in the cert-manager layout for the names in the Certificate, and keeps the HTTP health endpoints plaintext for the
kubelet's probes."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from faceedit.devstack.ports import free_port
from faceedit.devstack.process import dies_with_parent
from faceedit.devstack.triton import default_triton_venv
from tests.fixtures.deploy import by_kind, env_of, main_container, pod_spec

# Only what a CPU-only loopback run needs on top of the manifest's arguments.
LOCAL_ONLY = [
    "--grpc-address=127.0.0.1",
    "--http-address=127.0.0.1",
    "--allow-gpu-metrics=false",
    "--pinned-memory-pool-byte-size=0",
    "--cuda-memory-pool-byte-size=0:0",
]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _issue(directory: Path, name: str, ca: Path, ca_key: Path, extensions: str) -> tuple[Path, Path]:
    key, csr, crt, ext = (directory / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text(extensions)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "1", "-extfile", str(ext), "-out", str(crt),
    )  # fmt: skip
    return crt, key


@pytest.fixture(scope="module")
def pki(rendered: dict[str, list[dict]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, Triton's certificate for the Certificate's dnsNames, and an orchestrator client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(ca_key))
    _openssl("req", "-x509", "-new", "-key", str(ca_key), "-days", "1", "-subj", "/CN=faceedit-ca", "-out", str(ca))
    certificate = {c["spec"]["secretName"]: c["spec"] for c in by_kind(rendered["gpu"], "Certificate").values()}
    names = ",".join(f"DNS:{name}" for name in certificate["faceedit-tls-face-parser"]["dnsNames"])
    server = _issue(directory, "face-parser", ca, ca_key, f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
    client = _issue(directory, "orchestrator", ca, ca_key, "extendedKeyUsage=clientAuth\n")
    return {
        "ca": ca,
        "server_crt": server[0],
        "server_key": server[1],
        "client_crt": client[0],
        "client_key": client[1],
    }


@pytest.fixture(scope="module")
def triton_from_manifest(
    rendered: dict[str, list[dict]], pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    deployment = by_kind(rendered["gpu"], "Deployment")["face-parser"]
    container = main_container(deployment)
    secret_mounts = {
        m["mountPath"]
        for m in container["volumeMounts"]
        if m["name"] in {v["name"] for v in pod_spec(deployment)["volumes"] if "secret" in v}
    }
    secret_files = {"tls.crt": pki["server_crt"], "tls.key": pki["server_key"], "ca.crt": pki["ca"]}
    workdir = tmp_path_factory.mktemp("triton-manifest")
    ports = {"http-port": free_port(), "grpc-port": free_port(), "metrics-port": free_port()}
    args = []
    for arg in container["args"][1:]:
        flag, _, value = arg.removeprefix("--").partition("=")
        if flag in ports:
            value = str(ports[flag])
        elif flag == "model-repository":
            value = str(workdir / "repository")  # an empty repository: no model to load, the server still runs
            Path(value).mkdir()
        elif str(PurePosixPath(value).parent) in secret_mounts:
            value = str(secret_files[PurePosixPath(value).name])
        args.append(f"--{flag}={value}")
    site = sorted(default_triton_venv().glob("lib/python3.*/site-packages"))[0]
    binary = site / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    env = {**os.environ, "LD_LIBRARY_PATH": f"{site / 'nvidia_pytriton.libs'}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    log = workdir / "tritonserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            dies_with_parent([str(binary), *args, *LOCAL_ONLY]), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    http = f"http://127.0.0.1:{ports['http-port']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"tritonserver refused the manifest's arguments:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{http}/v2/health/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield {"http": http, "grpc": f"127.0.0.1:{ports['grpc-port']}", "process": process, "log": log}
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _client(address: str, pki: dict[str, Path], *, client_cert: bool) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(
        address,
        ssl=True,
        root_certificates=str(pki["ca"]),
        private_key=str(pki["client_key"]) if client_cert else None,
        certificate_chain=str(pki["client_crt"]) if client_cert else None,
        # The name the orchestrator dials (dns:///face-parser.faceedit.svc.cluster.local:8001) must verify.
        channel_args=[("grpc.ssl_target_name_override", "face-parser.faceedit.svc.cluster.local")],
    )


def test_the_orchestrators_target_host_is_in_the_certificate(rendered: dict[str, list[dict]]) -> None:
    target = env_of(main_container(by_kind(rendered["gpu"], "Deployment")["orchestrator"]))["FACEEDIT_PARSER_URL"]
    host = target.removeprefix("dns:///").rpartition(":")[0]
    (spec,) = [
        c["spec"]
        for c in by_kind(rendered["gpu"], "Certificate").values()
        if c["metadata"]["name"].endswith("face-parser")
    ]
    assert host in spec["dnsNames"]


def test_http_health_stays_plaintext_for_the_kubelet(triton_from_manifest: dict) -> None:
    for path in ("/v2/health/live", "/v2/health/ready"):
        with urllib.request.urlopen(triton_from_manifest["http"] + path, timeout=5) as response:
            assert response.status == 200, path


def test_grpc_needs_tls_and_a_client_certificate(triton_from_manifest: dict, pki: dict[str, Path]) -> None:
    address = triton_from_manifest["grpc"]
    with _client(address, pki, client_cert=True) as client:
        assert client.is_server_live()
    with _client(address, pki, client_cert=False) as client, pytest.raises(InferenceServerException):
        client.is_server_live()
    with triton_grpc.InferenceServerClient(address) as plaintext, pytest.raises(InferenceServerException):
        plaintext.is_server_live()


# Last in this module: it stops the module's server.
def test_sigterm_stops_triton_within_the_grace_period(
    rendered: dict[str, list[dict]], triton_from_manifest: dict
) -> None:
    """After preStop, the kubelet's SIGTERM must end Triton before terminationGracePeriodSeconds runs out."""
    deployment = by_kind(rendered["gpu"], "Deployment")["face-parser"]
    pre_stop = main_container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
    budget = pod_spec(deployment)["terminationGracePeriodSeconds"] - pre_stop
    process = triton_from_manifest["process"]
    started = time.monotonic()
    process.terminate()
    process.wait(timeout=budget)
    assert time.monotonic() - started < budget
