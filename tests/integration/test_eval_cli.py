"""`faceedit eval` as users run it, against the session's real stack, with tiny random metric networks."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest

from faceedit.bench.targets import portrait
from faceedit.cli.main import main
from faceedit.core.imageio import encode_image
from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ServiceProcess
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.helpers import run_faceedit


def test_eval_reports_ssim_of_one_outside_every_mask(editor_stack: ServiceProcess, tmp_path: Path) -> None:
    folder = tmp_path / "portraits"
    folder.mkdir()
    present: list[set[str]] = []
    with grpc.insecure_channel(editor_stack.address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES)) as channel:
        stub = face_editor_pb2_grpc.FaceEditorStub(channel)
        for i, (h, w) in enumerate([(160, 120), (128, 128)]):
            image = np.roll(portrait(max(h, w))[:h, :w], i * 7, axis=1)  # two different, non-square portraits
            data = encode_image(np.ascontiguousarray(image))
            (folder / f"p{i}.png").write_bytes(data)
            parsed = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data)), timeout=60)
            present.append(set(parsed.attributes_present))
    chosen = sorted(present[0] & present[1] or present[0] | present[1])[:2]
    out = tmp_path / "eval"
    result = run_faceedit(
        "eval", str(folder), "--server", editor_stack.address, "--attributes", ",".join(chosen),
        "--prompt", f"{chosen[0]}=a test prompt", "--steps", "2", "--random-init-metrics", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MEANINGLESS" in result.stdout.upper()
    report = json.loads((out / "eval.json").read_text())
    assert report["random_init"] and report["not_computed"] == [] and report["images"] == 2
    assert report["records"], report["skipped"]
    assert len(report["records"]) + len(report["skipped"]) == 2 * len(chosen)
    for record in report["records"]:
        assert record["ssim"] == 1.0  # exact composite: nothing outside the mask changed
        assert record["lpips"] == 0.0 and np.isfinite(record["clip"]) and 0 <= record["iou"] <= 1
        assert record["latency_s"] > 0 and record["coverage"] > 0
    for row in report["attributes"]:
        n = sum(r["attribute"] == row["attribute"] for r in report["records"])
        assert row["n"] == n and row["ssim"] == {"mean": 1.0, "sd": 0.0}
        assert (row["fid"] is None) == (n < 2)
    table = (out / "table.txt").read_text()
    assert "SSIM" in table and "1.000 ± 0.000" in table and "MEANINGLESS" in table
    for metric in ("lpips", "ssim", "iou", "clip", "latency_s"):
        assert (out / f"{metric}.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_without_weights_says_what_it_cannot_compute(editor_stack: ServiceProcess, tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode_image(portrait(96)))
    with grpc.insecure_channel(editor_stack.address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES)) as channel:
        stub = face_editor_pb2_grpc.FaceEditorStub(channel)
        data = (folder / "a.png").read_bytes()
        parsed = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data)), timeout=60)
    attribute = sorted(parsed.attributes_present)[0]
    out = tmp_path / "eval"
    result = run_faceedit(
        "eval", str(folder), "--server", editor_stack.address, "--attributes", attribute, "--steps", "2",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not computed (no weights given): lpips, clip, fid" in result.stdout
    report = json.loads((out / "eval.json").read_text())
    (row,) = report["attributes"]
    assert report["not_computed"] == ["lpips", "clip", "fid"]
    assert row["lpips"] is None and row["clip"] is None and row["fid"] is None and row["ssim"]["mean"] == 1.0
    assert "not computed" in (out / "table.txt").read_text()


def test_eval_fails_clearly_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--attributes", "hair,tail", "--out", str(tmp_path)]) == 2
    assert "unknown attribute 'tail'" in capsys.readouterr().out
    assert main(["eval", "--server", f"127.0.0.1:{free_port()}", "--attributes", "hair", "--out", str(tmp_path)]) == 2
    assert "UNAVAILABLE" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a folder"):
        main(["eval", str(tmp_path / "nope")])
    with pytest.raises(SystemExit):
        main(["eval", "--steps", "0"])
    assert "--steps: must be a positive integer" in capsys.readouterr().err
