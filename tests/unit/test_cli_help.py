"""The help a new user reads: plain default paths, DIR where a directory is meant, on/off flags shown as such,
and every spelling of an on/off flag still accepted (flag alone, a value, the env var)."""

from __future__ import annotations

import pytest

from faceedit.cli.main import build_parser
from faceedit.orchestrator.config import parse_args as orchestrator_args


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_up_help_shows_plain_paths_dirs_and_switches(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["up"], capsys)
    assert "PosixPath" not in text and "default models)" in text
    assert "--secure DIR" in text and "--models-dir DIR" in text and "--secure SECURE" not in text
    assert "--prometheus [on|off]" in text and "--tracing [on|off]" in text
    assert "[PROMETHEUS]" not in text and "[TRACING]" not in text and "default off" in text


@pytest.mark.parametrize("command", ["edit", "parse", "attributes", "bench"])
def test_client_commands_take_secure_dir(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--secure DIR" in _help([command], capsys)


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [([], None, False), (["--tracing"], None, True), (["--tracing", "off"], None, False), ([], "1", True)],
)
def test_switch_spellings(argv: list[str], env: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is not None:
        monkeypatch.setenv("FACEEDIT_TRACING", env)
    assert build_parser().parse_args(["up", *argv]).tracing is expected
    server = ["--parser-url", "127.0.0.1:1", "--inpainter-address", "127.0.0.1:2"]
    assert orchestrator_args([*server, *argv]).tracing is expected
