"""`faceedit gpu-check --tiny --device cpu`: the GPU check's dry run, as the GPU machine would run it (no Triton:
the KServe v2 stand-in parses), every case through the stack's real code and servers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_faceedit

CASES = ["engine_vs_bare", "crop", "editface", "parser", "compile"]


def _positive(*values: float) -> bool:
    return all(isinstance(v, int | float) and v > 0 for v in values)


def test_dry_run_runs_every_case_and_writes_json_and_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_faceedit(
        "gpu-check", "--tiny", "--device", "cpu", "--parser-server", "standin", "--out", str(out),
        "--workdir", str(tmp_path / "work"), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in CASES:  # progress lines, as the case runs
        assert f"{name}: running" in result.stdout and f"{name}: ok in" in result.stdout
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["mode"] == "tiny" and report["schema"] == 1
    env = report["environment"]
    assert env["device"] == "cpu" and env["driver"] is None and env["versions"]["torch"]
    assert any("dry run" in note and "640x480" in note for note in report["notes"])
    cases = report["cases"]
    assert list(cases) == CASES
    for name, case in cases.items():
        assert case["status"] == "ok", (name, case.get("error"), case.get("traceback"))
        assert case["peak_vram_mb"] is None and case["seconds"] > 0  # no CUDA: no VRAM figure, never a fake one

    a = cases["engine_vs_bare"]
    assert a["steps"] == 2 and a["canvas"] == 128 and a["scheduler"] == "DPMSolverMultistepScheduler"
    for side in ("engine", "bare"):
        assert a[side]["runs"] == 2 and _positive(a[side]["p50_ms"], *a[side]["ms"])
    assert _positive(a["ratio"]) and a["first_output"] == {**a["first_output"], "nan": False, "black": False}

    sides = cases["crop"]["sides"]
    assert sides["crop"]["cropped"] and not sides["full"]["cropped"]
    assert sides["crop"]["canvas"] == sides["full"]["canvas"] == 128 and sides["crop-fast"]["canvas"] == 64
    assert sides["crop"]["detail_gain"] > sides["crop-fast"]["detail_gain"] > sides["full"]["detail_gain"]
    assert all(_positive(s["p50_ms"], s["speedup_vs_full"]) for s in sides.values())

    f = cases["editface"]
    assert f["parser_server"].startswith("KServe v2 stand-in") and f["parser_provider"] == "CPUExecutionProvider"
    assert (f["width"], f["height"], f["region"], f["errors"]) == (640, 480, "lips", {})
    assert _positive(f["e2e_p50_ms"], f["overhead_p50_ms"], f["stack_start_s"])
    assert 0 < f["overhead_fraction"] < 1

    runs = {(r["backend"], r["batch"]): r for r in cases["parser"]["runs"]}
    assert set(runs) == {(b, n) for b in ("eager", "onnxruntime", "compile:eager") for n in (1, 2)}
    assert runs[("onnxruntime", 1)]["provider"] == "CPUExecutionProvider"
    assert all(_positive(r["images_per_s"], r["ms_per_image"]) for r in runs.values())

    c = cases["compile"]
    assert c["backend"] == "eager" and c["warm_up_shapes"] == 2  # one canvas, with and without guidance
    assert _positive(c["warm_up_s"], c["p50_ms"], c["speedup_vs_eager"])

    table = (out / "gpu-check.md").read_text()
    assert "| case | measure | value | target |" in table and "torch 2." in table and "onnxruntime" in table
    for name in CASES:
        assert f"| {name} |" in table
    assert "| engine_vs_bare | ratio engine/bare |" in table and "<= 5 ms/image" not in table  # no batch 8 here
