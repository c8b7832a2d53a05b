"""gpu-check's output: the machine it ran on, the JSON written after every case, and the markdown table."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

LIBRARIES = ("torch", "diffusers", "transformers", "onnxruntime", "onnxruntime-gpu", "onnx", "grpcio", "tritonclient")
# The targets (benchmark figures to report against, not tests).
TARGETS = {
    "engine_vs_bare_ratio_max": 1.05,
    "sdxl_1024_30_steps_eager_p50_s_max": 2.0,
    "sdxl_compiled_p50_below_eager": True,
    "segformer_b5_batch8_ms_per_image_max": 5.0,
    "editface_overhead_fraction_max": 0.02,
}


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def environment(device: str) -> dict:
    """The machine and the libraries: the header of the JSON and of the table."""
    cuda = device.startswith("cuda")
    index = torch.device(device).index or 0 if cuda else None
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(index) if cuda else f"CPU ({platform.processor() or 'unknown'})",
        "cpu_count": os.cpu_count(),
        "driver": _driver() if cuda else None,
        "cuda": torch.version.cuda,
        "gpu_memory_gb": torch.cuda.get_device_properties(index).total_memory / 2**30 if cuda else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in LIBRARIES},
    }


def write(result: dict, out: Path) -> None:
    """gpu-check.json and gpu-check.md under out, replaced whole (a reader never sees half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("gpu-check.json", json.dumps(result, indent=2, default=str)), ("gpu-check.md", table(result))):
        staged = out / f".{name}.tmp"
        staged.write_text(text)
        staged.replace(out / name)


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _rows(name: str, case: dict) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows of one case."""
    if case.get("status") != "ok":
        return [("status", f"{case.get('status')}: {case.get('reason') or case.get('error') or ''}".strip(), "")]
    rows: list[tuple[str, str, str]] = []
    vram = _fmt(case.get("peak_vram_mb"), " MB", 0)
    if name == "engine_vs_bare":
        first = case["first_output"]
        rows += [
            ("engine p50", _fmt(case["engine"]["p50_ms"], " ms", 0), "<= 2000 ms (H200)"),
            ("bare diffusers p50", _fmt(case["bare"]["p50_ms"], " ms", 0), ""),
            ("ratio engine/bare", _fmt(case["ratio"], "", 3), "<= 1.05"),
            ("first output NaN / black", f"{_fmt(first['nan'])} / {_fmt(first['black'])}", "no / no"),
        ]
    elif name == "crop":
        for side, row in case["sides"].items():
            value = f"{row['p50_ms']:.0f} ms, detail x{row['detail_gain']:.1f}"
            rows.append((f"{side} ({row['canvas']} px)", value, ""))
    elif name == "compile":
        rows += [
            ("compile warm-up", _fmt(case["warm_up_s"], " s"), ""),
            ("compiled p50", _fmt(case["p50_ms"], " ms", 0), "below eager"),
            ("speed-up vs eager", _fmt(case.get("speedup_vs_eager"), "x", 2), "> 1"),
        ]
    elif name == "parser":
        for row in case["runs"]:
            label = f"{row['backend']} {row['dtype']} batch {row['batch']}" + (
                f" ({row['provider']})" if row.get("provider") else ""
            )
            target = "<= 5 ms/image" if row["batch"] == 8 else ""
            rows.append((label, f"{row['images_per_s']:.1f} img/s, {row['ms_per_image']:.2f} ms/img", target))
    elif name == "editface":
        rows += [
            (f"end to end p50 ({case['width']}x{case['height']})", _fmt(case["e2e_p50_ms"], " ms", 0), ""),
            ("overhead p50", f"{case['overhead_p50_ms']:.1f} ms = {case['overhead_fraction']:.2%}", "<= 2%"),
            ("parser", case["parser_server"], ""),
        ]
    rows.append(("peak VRAM (this process)", vram, ""))
    return rows


def table(result: dict) -> str:
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines = [
        f"# faceedit gpu-check ({result['mode']})",
        "",
        f"- device: {env['device_name']} ({env['device']}), driver {env['driver'] or 'n/a'}, "
        f"CUDA {env['cuda'] or 'n/a'}",
        f"- python {env['python']}; {versions}",
        f"- command: `{result['command']}`",
        "- models: random weights in the published architectures (latency and memory do not depend on weights)",
        *[f"- note: {note}" for note in result["notes"]],
        "",
        "| case | measure | value | target |",
        "| --- | --- | --- | --- |",
    ]
    for name, case in result["cases"].items():
        for measure, value, target in _rows(name, case):
            lines.append(f"| {name} | {measure} | {value} | {target} |")
    return "\n".join(lines) + "\n"
