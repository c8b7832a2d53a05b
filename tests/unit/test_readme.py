"""The README's configuration reference lists every flag and env var the servers accept, so it cannot drift."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from faceedit.inpainter.config import parse_args as inpainter_args
from faceedit.orchestrator.config import parse_args as orchestrator_args

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _help(parse: Callable, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        parse(["--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines, even inside names


@pytest.mark.parametrize("parse", [orchestrator_args, inpainter_args], ids=["orchestrator", "inpainter"])
def test_every_server_flag_and_env_var_is_documented(parse: Callable, capsys: pytest.CaptureFixture) -> None:
    text = _help(parse, capsys)
    flags = set(re.findall(r"(--[a-z][a-z0-9-]+)", text)) - {"--help"}
    envs = set(re.findall(r"env (FACEEDIT_\w+)", text))
    assert len(flags) > 20 and len(envs) > 20
    assert sorted(f for f in flags if f"`{f}`" not in README) == []
    assert sorted(e for e in envs if f"`{e}`" not in README) == []
