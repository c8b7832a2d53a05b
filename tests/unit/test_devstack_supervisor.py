"""The restart policy of `faceedit up` and the line a failed child's log gives as its reason."""

from __future__ import annotations

import pytest

from faceedit.devstack.process import exception_line
from faceedit.devstack.prometheus import LocalPrometheus
from faceedit.devstack.supervisor import RestartPolicy
from faceedit.devstack.triton import triton_error

# Abridged from a real inpainter log: the cause, then asyncio's and grpc's noise from objects freed after it.
BIND_FAILURE_LOG = """\
2026-12-02 04:18:39,040 transformers.utils.import_utils WARNING `SiglipImageProcessor` requires torchvision
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/srv/faceedit/rpc/serving.py", line 309, in serve_metrics
    server, _ = start_http_server(port, addr=host, registry=registry)
  File "/usr/lib/python3.11/socketserver.py", line 472, in server_bind
    self.socket.bind(self.server_address)
OSError: [Errno 98] Address already in use
Exception ignored in: <function Server.__del__ at 0x7f43a6182a20>
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/grpc/aio/_server.py", line 219, in __del__
  File "/usr/lib/python3.11/asyncio/base_events.py", line 519, in _check_closed
RuntimeError: Event loop is closed
Exception ignored in: <function BaseEventLoop.__del__ at 0x7f43a6182b60>
Traceback (most recent call last):
  File "/usr/lib/python3.11/asyncio/base_events.py", line 690, in __del__
RuntimeError: Event loop is closed
sys:1: RuntimeWarning: coroutine 'AioServer.shutdown' was never awaited
"""


def test_the_reason_is_the_real_exception_not_the_del_noise_after_it() -> None:
    assert exception_line(BIND_FAILURE_LOG) == "OSError: [Errno 98] Address already in use"


def test_a_chained_exception_gives_the_last_one() -> None:
    log = (
        "Traceback (most recent call last):\n  File 'a'\nKeyError: 'x'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n  File 'b'\nValueError: no model at /m\n"
    )
    assert exception_line(log) == "ValueError: no model at /m"


def test_a_log_without_a_traceback_has_no_reason() -> None:
    assert exception_line("starting\nloading weights\n") is None
    assert exception_line("Exception ignored in: <function X.__del__>\nTraceback (most recent call last):\n"
                          "  File 'x'\nRuntimeError: Event loop is closed\n") is None  # fmt: skip


def test_a_refused_flag_gives_argparse_error_line() -> None:
    log = (
        "usage: faceedit-orchestrator [-h]\n"
        "faceedit-orchestrator: error: argument --reflection: expected one argument\n"
    )
    assert exception_line(log) == "faceedit-orchestrator: error: argument --reflection: expected one argument"


def test_triton_reasons_its_load_failure_then_its_error_lines() -> None:
    load = "E1202 model_lifecycle.cc:654] failed to load 'face_parser' version 1: Internal: boom\\nmore\"\n"
    assert triton_error(load) == "Internal: boom"
    bind = "I1202 grpc_server.cc:2495] Started\nE1202 04:18:39.79 123 main.cc:245] failed to start HTTP service: Unavailable - Socket '127.0.0.1:8000' already in use\n"  # noqa: E501
    assert triton_error(bind) == "failed to start HTTP service: Unavailable - Socket '127.0.0.1:8000' already in use"


def test_prometheus_reasons_its_last_error_line() -> None:
    log = 'ts=1 level=warn msg="x"\nts=2 level=error msg="Error loading config" err="parse error"\n'
    assert LocalPrometheus({}).reason_in_log(log) == 'ts=2 level=error msg="Error loading config" err="parse error"'


@pytest.mark.parametrize(
    ("failures", "delay"),
    [([100.0], 1.0), ([90.0, 100.0], 2.0), ([10.0, 20.0, 100.0], 1.0), ([50.0, 90.0, 100.0], None)],
)
def test_backoff_doubles_within_the_window_and_gives_up_at_the_limit(failures: list[float], delay) -> None:
    policy = RestartPolicy(limit=3, window_s=60, backoff_s=1)
    assert policy.delay(failures, now=100.0) == delay


def test_backoff_is_capped() -> None:
    assert RestartPolicy(limit=10, window_s=60, backoff_s=4, max_backoff_s=10).delay([1, 2, 3, 4], now=4) == 10


@pytest.mark.parametrize("bad", [dict(limit=0), dict(window_s=0), dict(backoff_s=-1)])
def test_a_nonsense_policy_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="restart limit"):
        RestartPolicy(**bad)
