"""The channel builder every hop uses: per-call balancing, safe retries, keepalive both ends accept, and targets
faceedit can dial. (test_scale_out shows the same settings spreading and retrying real calls.)"""

from __future__ import annotations

import json

import pytest

from faceedit.devstack.triton import TritonServer, grpc_flags
from faceedit.rpc.channels import (
    INPAINTER_SERVICE,
    KEEPALIVE_TIME_MS,
    RETRY_BUFFER_BYTES,
    SERVER_MIN_PING_INTERVAL_MS,
    TRITON_SERVICE,
    client_options,
    server_options,
    service_config,
    target_problem,
)


def _config(options: list) -> dict:
    return json.loads(dict(options)["grpc.service_config"])


def test_every_channel_balances_per_call_with_round_robin() -> None:
    assert _config(client_options())["loadBalancingConfig"] == [{"round_robin": {}}]
    assert "methodConfig" not in _config(client_options())  # the CLI's channels retry nothing


def test_only_unavailable_is_retried_throttled_and_bounded() -> None:
    config = service_config(retry_services=(INPAINTER_SERVICE,), retries=9)
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": INPAINTER_SERVICE}]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 5  # gRPC's cap, whatever was asked
    assert config["retryThrottling"] == {"maxTokens": 10, "tokenRatio": 0.1}
    assert "methodConfig" not in service_config(retry_services=(TRITON_SERVICE,), retries=0)


def test_a_retried_inpaint_request_fits_the_retry_buffer() -> None:
    options = dict(client_options(retry_services=(INPAINTER_SERVICE,)))
    assert options["grpc.enable_retries"] == 1
    # A region at the 1024 canvas travels as raw RGB plus its mask: ~4 MiB; gRPC drops retries above the buffer.
    assert options["grpc.per_rpc_retry_buffer_size"] == RETRY_BUFFER_BYTES >= 4 * 1024 * 1024 * 4


def test_health_checked_backends_only_when_asked() -> None:
    assert service_config(health_service=INPAINTER_SERVICE)["healthCheckConfig"] == {"serviceName": INPAINTER_SERVICE}
    assert "healthCheckConfig" not in service_config()


@pytest.mark.parametrize("age, grace", [(300, 600), (0.5, 5)])
def test_servers_age_connections_and_accept_the_clients_pings(age: float, grace: float) -> None:
    server = dict(server_options(max_connection_age_s=age, max_connection_age_grace_s=grace))
    assert server["grpc.max_connection_age_ms"] == int(age * 1000)
    assert server["grpc.max_connection_age_grace_ms"] == int(grace * 1000)
    client = dict(client_options())
    assert (
        client["grpc.keepalive_time_ms"] == KEEPALIVE_TIME_MS >= server["grpc.http2.min_ping_interval_without_data_ms"]
    )
    assert "grpc.max_connection_age_ms" not in dict(server_options())


def test_triton_is_configured_like_our_servers(tmp_path) -> None:
    triton = TritonServer(tmp_path / "m.onnx", max_connection_age_s=300, max_connection_age_grace_s=600)
    flags = grpc_flags(triton)
    assert f"--grpc-http2-min-recv-ping-interval-without-data={SERVER_MIN_PING_INTERVAL_MS}" in flags
    assert "--grpc-max-connection-age=300000" in flags and "--grpc-max-connection-age-grace=600000" in flags
    assert SERVER_MIN_PING_INTERVAL_MS <= KEEPALIVE_TIME_MS


@pytest.mark.parametrize(
    "target",
    ["inpainter:50052", "dns:///inpainter.faceedit.svc.cluster.local:50052", "ipv4:127.0.0.1:1,127.0.0.1:2",
     "unix:/tmp/s", "[::1]:50052"],
)  # fmt: skip
def test_targets_faceedit_dials(target: str) -> None:
    assert target_problem(target) is None


@pytest.mark.parametrize("target", ["inpainter", "dns:///inpainter", "ipv4:127.0.0.1", "http://x:1", "unix:"])
def test_targets_refused_with_the_expected_form(target: str) -> None:
    assert "expected" in target_problem(target) or "socket" in target_problem(target)
