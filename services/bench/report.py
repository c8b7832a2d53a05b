"""Benchmark output: a terminal table, JSON, CSV and PNG plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STAGE_ORDER = ("decode", "parse", "mask", "queue", "denoise", "composite", "encode")


def table(levels: list[dict]) -> str:
    header = (
        f"{'conc':>5} {'rate':>6} {'sent':>5} {'ok':>5} {'err':>4} {'rps':>7} {'p50':>8} {'p95':>8} "
        f"{'p99':>8} {'max':>8} {'ovh p50':>8}  errors"
    )
    lines = [header, "-" * len(header)]
    for lv in levels:
        lat = lv["latency_ms"]
        overhead = lv["overhead_ms"]["p50"] if lv["overhead_ms"] else float("nan")
        errors = ", ".join(f"{k}:{v}" for k, v in lv["errors"].items()) or "-"
        rate = f"{lv['rate']:.1f}" if lv["rate"] else "-"
        lines.append(
            f"{lv['concurrency']:>5} {rate:>6} {lv['sent']:>5} {lv['ok']:>5} {sum(lv['errors'].values()):>4} "
            f"{lv['throughput_rps']:>7.2f} {lat['p50']:>8.1f} {lat['p95']:>8.1f} {lat['p99']:>8.1f} "
            f"{lat['max']:>8.1f} {overhead:>8.1f}  {errors}"
        )
    lines.append("latencies in ms; ovh = end-to-end minus (parse + denoise + composite) reported by the servers")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> Path:
    path.write_text(json.dumps(result, indent=2))
    return path


def write_csv(levels: list[dict], path: Path) -> Path:
    stages = sorted({k for lv in levels for k in lv["stages_ms"]})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "concurrency",
                "mode",
                "rate",
                "sent",
                "ok",
                "errors",
                "throughput_rps",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "max_ms",
                "mean_ms",
                "overhead_p50_ms",
                *[f"{s}_ms" for s in stages],
            ]
        )
        for lv in levels:
            lat = lv["latency_ms"]
            writer.writerow(
                [
                    lv["concurrency"],
                    lv["mode"],
                    lv["rate"] or "",
                    lv["sent"],
                    lv["ok"],
                    sum(lv["errors"].values()),
                    f"{lv['throughput_rps']:.4f}",
                    *(f"{lat[k]:.3f}" for k in ("p50", "p95", "p99", "max", "mean")),
                    f"{lv['overhead_ms']['p50']:.3f}" if lv["overhead_ms"] else "",
                    *(f"{lv['stages_ms'].get(s, 0.0):.3f}" for s in stages),
                ]
            )
    return path


def write_plots(levels: list[dict], out_dir: Path, title: str) -> list[Path]:
    xs = [lv["concurrency"] or lv["rate"] for lv in levels]
    xlabel = "concurrency" if levels and levels[0]["mode"] == "closed" else "target rate (req/s)"
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("p50", "p95", "p99"):
        ax.plot(xs, [lv["latency_ms"][key] for lv in levels], marker="o", label=key)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{title}: latency")
    ax.legend()
    fig.tight_layout()
    latency = out_dir / "latency_vs_concurrency.png"
    fig.savefig(latency, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bottom = [0.0] * len(levels)
    for stage in STAGE_ORDER:
        values = [lv["stages_ms"].get(stage, 0.0) for lv in levels]
        if any(values):
            ax.bar([str(x) for x in xs], values, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean ms per request (server timings)")
    ax.set_title(f"{title}: stage breakdown")
    if any(bottom):
        ax.legend(fontsize=8)
    fig.tight_layout()
    stages = out_dir / "stage_breakdown.png"
    fig.savefig(stages, dpi=100)
    plt.close(fig)
    return [latency, stages]
