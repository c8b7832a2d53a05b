"""The `faceedit` command's pure parts: argument parsing, request building, the cascade figure."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from faceedit.cli.benchmarks import failures
from faceedit.cli.commands import build_request, parse_edit
from faceedit.cli.grid import write_grid
from faceedit.cli.main import build_parser, main
from faceedit.core.imageio import decode_image, encode_image
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2


@pytest.mark.parametrize(
    "text,expected",
    [
        ("hair=curly auburn hair", ("hair", "curly auburn hair")),
        ("lips: matte dusty-rose lipstick", ("lips", "matte dusty-rose lipstick")),
        (" eyes = green eyes, 4k ", ("eyes", "green eyes, 4k")),
        ("hair=ratio 16:9 poster", ("hair", "ratio 16:9 poster")),  # the first separator splits
    ],
)
def test_parse_edit(text: str, expected: tuple[str, str]) -> None:
    assert parse_edit(text) == expected


@pytest.mark.parametrize("text", ["hair", "=red hair", "hair=", "  :  "])
def test_parse_edit_rejects_what_is_not_attribute_equals_prompt(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected ATTRIBUTE=PROMPT"):
        parse_edit(text)


def test_every_subcommand_is_registered() -> None:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"up", "edit", "parse", "attributes", "demo", "bench", "eval"} <= set(subparsers.choices)


def test_edit_flags_become_one_request_with_only_the_knobs_given() -> None:
    edits = ["-e", "hair=red hair", "-e", "lips:pink lipstick"]
    knobs = ["--steps", "20", "--seed", "7", "--format", "jpeg", "--quality", "80"]
    args = build_parser().parse_args(["edit", "in.png", "-o", "out.jpg", *edits, *knobs])
    request = build_request(args, b"png bytes", return_masks=True)
    assert [(e.attribute, e.prompt) for e in request.edits] == [("hair", "red hair"), ("lips", "pink lipstick")]
    for edit in request.edits:
        assert edit.num_inference_steps == 20 and edit.seed == 7
        assert not edit.HasField("strength") and not edit.HasField("guidance_scale")  # server defaults apply
    assert request.image.data == b"png bytes" and request.return_masks
    assert request.output_format == types_pb2.IMAGE_FORMAT_JPEG and request.output_quality == 80
    plain = build_request(build_parser().parse_args(["edit", "a.png", "-o", "b.png", "-e", "hair=x"]), b"", False)
    assert not plain.HasField("output_quality") and plain.output_format == types_pb2.IMAGE_FORMAT_PNG


def _png(array: np.ndarray) -> types_pb2.EncodedImage:
    return types_pb2.EncodedImage(data=encode_image(array))


def test_grid_has_one_row_of_four_panels_per_step(tmp_path: Path) -> None:
    original = np.full((60, 40, 3), 200, np.uint8)
    mask = np.zeros((60, 40), np.uint8)
    mask[10:30, 10:30] = 255
    steps = [
        fe.EditStepResult(
            index=i, attribute=a, coverage=0.1, mask=_png(mask), parse_map=_png(original), image=_png(original // 2)
        )
        for i, a in enumerate(["hair", "lips"])
    ]
    out = write_grid(original, fe.EditFaceResponse(steps=steps), ["red hair", "pink lips"], tmp_path / "g" / "grid.png")
    figure = decode_image(out.read_bytes())
    assert figure.shape[1] == 1200 and figure.shape[0] == pytest.approx(2 * 320, abs=2)  # 12 x 3.2 in per row


@pytest.mark.parametrize(
    "argv",
    [
        ["edit", "/no/such.jpg", "-e", "hair=red", "-o", "out.png"],
        ["parse", "{tmp}"],
        ["bench", "--image", "/no/such.jpg"],
        ["edit", "{tmp}/not-an-image.jpg", "-e", "hair=red", "-o", "out.png", "--server", "127.0.0.1:1"],
    ],
)
def test_bad_input_files_are_one_line_errors(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "not-an-image.jpg").write_bytes(b"")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("faceedit: ")
    assert "Traceback" not in err


def test_compare_counts_failures_at_any_depth() -> None:
    assert failures({"errors": {}, "levels": [{"errors": {"UNAVAILABLE": 2}}, {"errors": {"INTERNAL": 1}}]}) == 3
    assert failures({"comparison": "crop", "ratio": 5.0}) == 0
