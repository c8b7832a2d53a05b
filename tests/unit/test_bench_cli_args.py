"""How `faceedit bench` and `faceedit bench compare` read their flags (no servers involved)."""

from __future__ import annotations

import pytest

from faceedit.cli import benchmarks
from faceedit.cli.main import build_parser


def test_bench_defaults_and_sweeps() -> None:
    args = build_parser().parse_args(["bench", "--concurrency", "1,2,4,8,16", "-e", "hair=curly auburn hair"])
    assert args.handler is benchmarks.run_bench and args.target == "editface"
    assert args.concurrency == [1, 2, 4, 8, 16] and args.rate is None and args.edits == [("hair", "curly auburn hair")]
    args = build_parser().parse_args(["bench", "--rate", "0.5,2", "--fixed-interval", "--duration", "30"])
    assert args.rate == [0.5, 2.0] and args.fixed_interval and args.duration == 30.0


def test_bench_server_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEEDIT_SERVER", "10.0.0.5:50051")
    assert build_parser().parse_args(["bench"]).server == "10.0.0.5:50051"


@pytest.mark.parametrize("prefix", [["bench", "compare"], ["compare"]])
def test_compare_is_reachable_under_bench_and_on_its_own(prefix: list[str]) -> None:
    args = build_parser().parse_args([*prefix, "crop", "--steps", "8", "--working-size", "512"])
    assert args.handler is benchmarks.run_compare and args.which == "crop"
    assert (args.steps, args.working_size, args.concurrency) == (8, 512, [1, 8])
    assert (args.format, args.input_format) == ("png", "png")


def test_overhead_takes_the_request_and_response_image_formats() -> None:
    args = build_parser().parse_args(["compare", "overhead", "--input-format", "jpeg", "--format", "jpeg"])
    assert (args.which, args.input_format, args.format) == ("overhead", "jpeg", "jpeg")
    args = build_parser().parse_args(["bench", "--input-format", "jpeg"])
    assert args.input_format == "jpeg"


@pytest.mark.parametrize(
    "flags",
    [
        ["--concurrency", "0"],
        ["--concurrency", "a,b"],
        ["--rate", "-1"],
        ["--steps", "0"],
        ["--size", "x"],
        ["--duration", "0"],
        ["--warmup", "-1"],
    ],
)
def test_invalid_values_are_refused_by_argparse(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["bench", *flags])
    assert exited.value.code == 2 and flags[0] in capsys.readouterr().err
