"""Benchmark output: a terminal table, JSON, CSV and PNG plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from faceedit.bench.stats import TRITON_STAGES
from faceedit.rpc.messages import STAGES

# Every stage the servers time: StageTimings's, then Triton's (a parser benchmark reports Triton's queue as
# "queue", the same key as the inpainter's). The bars stack the disjoint ones, and the rest of the mean end-to-end
# latency shows as "other": inpaint contains the inpainter's queue and denoise, so it is left out of the bars.
TABLE_STAGES = (*STAGES, *TRITON_STAGES[1:])
STAGE_ORDER = tuple(s for s in TABLE_STAGES if s != "inpaint")


def _x(level: dict) -> str:
    return f"{level['rate']:g}/s" if level["mode"] == "open" else str(level["concurrency"])


def stage_table(levels: list[dict]) -> str:
    """Mean ms per request of each stage the servers reported, one row per level."""
    shown = [s for s in TABLE_STAGES if any(s in lv["stages_ms"] for lv in levels)]
    if not shown:
        return "no per-stage timings reported by the server"
    header = f"{'level':>7} " + " ".join(f"{s:>14}" for s in shown)
    lines = [header, "-" * len(header)]
    for lv in levels:
        cells = (f"{lv['stages_ms'][s]:>14.1f}" if s in lv["stages_ms"] else f"{'-':>14}" for s in shown)
        lines.append(f"{_x(lv):>7} " + " ".join(cells))
    lines.append("mean ms per successful request, from the servers' own timings")
    return "\n".join(lines)


def table(levels: list[dict]) -> str:
    header = (
        f"{'conc':>5} {'rate':>6} {'inflt':>5} {'sent':>5} {'ok':>5} {'err':>4} {'rps':>7} {'p50':>8} {'p95':>8} "
        f"{'p99':>8} {'max':>8} {'ovh p50':>8}  errors"
    )
    lines = [header, "-" * len(header)]
    for lv in levels:
        lat = lv["latency_ms"]
        overhead = f"{lv['overhead_ms']['p50']:.1f}" if lv["overhead_ms"] else "-"
        errors = ", ".join(f"{k}:{v}" for k, v in lv["errors"].items()) or "-"
        rate = f"{lv['rate']:g}" if lv["mode"] == "open" else "-"
        concurrency = lv["concurrency"] if lv["mode"] == "closed" else "-"
        lines.append(
            f"{concurrency:>5} {rate:>6} {lv['max_in_flight']:>5} {lv['sent']:>5} {lv['ok']:>5} "
            f"{sum(lv['errors'].values()):>4} "
            f"{lv['throughput_rps']:>7.2f} {lat['p50']:>8.1f} {lat['p95']:>8.1f} {lat['p99']:>8.1f} "
            f"{lat['max']:>8.1f} {overhead:>8}  {errors}"
        )
    lines.append(
        "inflt = most requests in flight at once; latencies in ms (open loop: from each scheduled send time); "
        "ovh = end to end minus (parse + inpainter queue wait + denoise + composite) as the "
        "servers report them"
    )
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
    """latency_vs_concurrency.png (percentiles, and throughput on a second axis) and stage_breakdown.png."""
    xs = [lv["concurrency"] if lv["mode"] == "closed" else lv["rate"] for lv in levels]
    xlabel = "concurrency" if levels and levels[0]["mode"] == "closed" else "target rate (req/s)"
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("p50", "p95", "p99", "max"):
        ax.plot(xs, [lv["latency_ms"][key] for lv in levels], marker="o", label=f"{key} latency")
    if len(set(xs)) > 2 and min(xs) > 0 and max(xs) / min(xs) >= 8:
        ax.set_xscale("log", base=2)  # sweeps double the concurrency
    ax.set_xticks(xs, [_x(lv) for lv in levels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    throughput = ax.twinx()
    throughput.plot(xs, [lv["throughput_rps"] for lv in levels], "k--", marker="s", label="throughput")
    throughput.set_ylabel("throughput (req/s)")
    throughput.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = throughput.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower right")
    ax.set_title(f"{title}: latency and throughput")
    fig.tight_layout()
    latency = out_dir / "latency_vs_concurrency.png"
    fig.savefig(latency, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [_x(lv) for lv in levels]
    bottom = [0.0] * len(levels)
    for stage in STAGE_ORDER:
        values = [lv["stages_ms"].get(stage, 0.0) for lv in levels]
        if any(values):
            ax.bar(labels, values, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    other = [max(0.0, lv["latency_ms"]["mean"] - b) for lv, b in zip(levels, bottom, strict=True)]
    ax.bar(labels, other, bottom=bottom, label="other (transfer,\nframing, client)", color="lightgrey")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean ms per request")
    ax.set_title(f"{title}: stage breakdown (bar = mean end to end)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    stages = out_dir / "stage_breakdown.png"
    fig.savefig(stages, dpi=100)
    plt.close(fig)
    return [latency, stages]
