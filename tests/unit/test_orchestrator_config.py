"""The orchestrator's flags: env fallbacks, and a clear exit on a missing or unusable value."""

from __future__ import annotations

import pytest

from faceedit.orchestrator.config import parse_args

REQUIRED = ["--parser-url", "triton:8001", "--inpainter-address", "inpainter:50052"]


def test_defaults() -> None:
    args = parse_args(REQUIRED)
    assert (args.parser_url, args.inpainter_address, args.parser_model_name) == (
        "triton:8001",
        "inpainter:50052",
        "face_parser",
    )
    assert (args.parser_size, args.port, args.metrics_port, args.host) == (512, 50051, 9101, "127.0.0.1")
    assert args.max_message_bytes == 256 * 2**20 and args.timeout == 600.0
    assert (args.max_image_pixels, args.max_image_bytes) == (50_000_000, 128 * 2**20)  # 8064x6048 fits
    assert (args.max_in_flight, args.working_size, args.workers) == (16, 1024, 2)


def test_env_vars_fill_in_flags_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEEDIT_PARSER_URL", "10.0.0.5:8001")
    monkeypatch.setenv("FACEEDIT_INPAINTER_ADDRESS", "inpainter.faceedit.svc:50052")
    monkeypatch.setenv("FACEEDIT_PARSER_SIZE", "1024")
    monkeypatch.setenv("FACEEDIT_PORT", "6000")
    args = parse_args(["--port", "7000"])
    assert (args.parser_url, args.inpainter_address) == ("10.0.0.5:8001", "inpainter.faceedit.svc:50052")
    assert (args.parser_size, args.port) == (1024, 7000)


def test_missing_addresses_fail_fast(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        parse_args([])
    assert excinfo.value.code == 2
    assert "--parser-url" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--parser-url", "triton"], "--parser-url: expected host:port, dns:///host:port or ipv4:..., got 'triton'"),
        (["--inpainter-address", "inpainter:abc"], "--inpainter-address: expected host:port"),
        (["--inpainter-address", "dns:///inpainter"], "--inpainter-address: expected dns:///host:port"),
        (["--parser-url", "ipv4:127.0.0.1"], "--parser-url: expected ipv4:host:port[,host:port...]"),
        (["--parser-size", "0"], "--parser-size must be positive, got 0"),
        (["--timeout", "-1"], "--timeout must be positive"),
        (["--health-interval", "0"], "--health-interval must be positive"),
        (["--parser-retries", "-1"], "--parser-retries must be in [0, 4]"),
        (["--inpainter-retries", "9"], "--inpainter-retries must be in [0, 4], got 9"),
        (["--port", "70000"], "--port must be in [0, 65535]"),
        (["--health-port", "-2"], "--health-port in [-1, 65535]"),
        (["--tls-cert", "server.crt"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.crt"], "--tls-client-ca (mTLS) needs --tls-cert and --tls-key"),
        (["--downstream-cert", "c.crt", "--downstream-key", "c.key"], "--downstream-cert (mTLS) needs --downstream-ca"),
        (["--drain-grace", "-5"], "--drain-grace must be >= 0"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_unusable_values_fail_fast_naming_the_flag(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args([*REQUIRED, *extra])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "target",
    [
        "dns:///inpainter.faceedit.svc.cluster.local:50052",
        "ipv4:127.0.0.1:50052,127.0.0.1:50053",
        "[::1]:50052",
        "inpainter:50052",
    ],
)
def test_balanced_targets_are_accepted(target: str) -> None:
    assert parse_args(["--parser-url", target, "--inpainter-address", target]).inpainter_address == target


def test_a_malformed_env_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEEDIT_PARSER_SIZE", "big")
    with pytest.raises(SystemExit):
        parse_args(REQUIRED)
    assert "FACEEDIT_PARSER_SIZE='big'" in capsys.readouterr().err
