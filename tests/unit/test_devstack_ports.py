"""Port planning of the local stack: replicas never take a port another server of the stack asked for."""

from __future__ import annotations

import socket
from collections import Counter

import pytest

from faceedit.devstack.ports import PortPlan, port_is_free
from faceedit.devstack.stack import LocalStack, StackConfig

UP_DEFAULTS = dict(port=50051, metrics_port=9101, triton_grpc_port=8001, inpainter_port=50052)


def _plan(**config) -> dict[str, list[int]]:
    return LocalStack(StackConfig(**config)).plan_ports()


def _all(planned: dict[str, list[int]]) -> list[int]:
    return [port for ports in planned.values() for port in ports]


def test_inpainter_metrics_replicas_step_over_the_orchestrators_default() -> None:
    planned = _plan(**UP_DEFAULTS, inpainter_metrics_port=9100, inpainter_replicas=3)
    assert planned["orchestrator metrics"] == [9101]
    assert planned["inpainter metrics"][0] == 9100 and 9101 not in planned["inpainter metrics"]
    assert len(set(_all(planned))) == len(_all(planned)), Counter(_all(planned))


def test_triton_keeps_its_documented_ports_and_its_replicas_skip_them() -> None:
    if not all(port_is_free(p) for p in (8000, 8002)):
        pytest.fail("ports 8000 and 8002 must be free on this machine for this test")
    planned = _plan(**UP_DEFAULTS, inpainter_metrics_port=9100, parser_replicas=2)
    assert planned["triton gRPC"][0] == 8001
    assert planned["triton HTTP"][0] == 8000 and planned["triton metrics"][0] == 8002
    assert planned["triton gRPC"][1] not in (8000, 8001, 8002)
    assert len(set(_all(planned))) == len(_all(planned))


def test_a_busy_default_port_beside_triton_gives_way_to_a_free_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        grpc_port = busy.getsockname()[1] + 1  # Triton's HTTP default (gRPC - 1) is the busy one
        if not port_is_free(grpc_port):
            pytest.fail(f"port {grpc_port} should be free")
        planned = _plan(triton_grpc_port=grpc_port)
    assert planned["triton HTTP"][0] != grpc_port - 1


def test_zero_means_free_ports_for_every_replica() -> None:
    planned = _plan(port=0, inpainter_replicas=3, parser_replicas=2)
    ports = _all(planned)
    assert 0 not in ports and len(set(ports)) == len(ports)


def test_a_port_asked_for_twice_names_both_owners() -> None:
    with pytest.raises(ValueError, match="port 9100 is asked for by both orchestrator metrics and inpainter metrics"):
        _plan(port=0, metrics_port=9100, inpainter_metrics_port=9100)


def test_replicas_skip_a_port_something_else_listens_on() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        plan = PortPlan()
        first = plan.exact(taken - 1, "inpainter 1")
        assert plan.after(first, "inpainter 2") > taken


def test_reserved_ports_are_left_alone() -> None:
    planned = _plan(port=0, inpainter_port=50060, inpainter_replicas=3, reserved_ports=(50061,))
    assert 50061 not in planned["inpainter"] and planned["inpainter"][0] == 50060
