"""Benchmark output: a terminal table, JSON, CSV and PNG plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from faceedit.bench.stats import NOT_OVERHEAD, TRITON_STAGES
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
        f"ovh = overhead, end to end minus ({' + '.join(NOT_OVERHEAD)}) as the servers report them"
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


# p99 and max often coincide at a few dozen requests: distinct line styles and hollow markers keep both visible.
PERCENTILE_STYLES = {
    "p50": {"linestyle": "-", "marker": "o"},
    "p95": {"linestyle": "--", "marker": "^"},
    "p99": {"linestyle": "-.", "marker": "s", "markersize": 9, "markerfacecolor": "none"},
    "max": {"linestyle": ":", "marker": "x", "markersize": 7},
}


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def breakdown(levels: list[dict]) -> dict[str, list[float]]:
    """The stage breakdown's rows: each reported disjoint stage in request order, "other" (the rest of the mean
    end to end) and "end to end", each with one mean ms per level."""
    rows = [s for s in STAGE_ORDER if any(lv["stages_ms"].get(s, 0.0) > 0 for lv in levels)]
    values = {s: [lv["stages_ms"].get(s, 0.0) for lv in levels] for s in rows}
    values["other"] = [
        max(0.0, lv["latency_ms"]["mean"] - sum(lv["stages_ms"].get(s, 0.0) for s in rows)) for lv in levels
    ]
    values["end to end"] = [lv["latency_ms"]["mean"] for lv in levels]
    return values


def write_plots(levels: list[dict], out_dir: Path, title: str) -> list[Path]:
    """latency_vs_concurrency.png (percentiles, and throughput on a second axis) and stage_breakdown.png (each
    stage's mean per level, on a log axis so a 1 ms encode shows next to a 2 s denoise, each bar labelled)."""
    xs = [lv["concurrency"] if lv["mode"] == "closed" else lv["rate"] for lv in levels]
    xlabel = "concurrency" if levels and levels[0]["mode"] == "closed" else "target rate (req/s)"
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in PERCENTILE_STYLES.items():
        ax.plot(xs, [lv["latency_ms"][key] for lv in levels], label=f"{key} latency", **style)
    if len(set(xs)) > 2 and min(xs) > 0 and max(xs) / min(xs) >= 8:
        ax.set_xscale("log", base=2)  # sweeps double the concurrency
    ax.set_xticks(xs, [_x(lv) for lv in levels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    throughput = ax.twinx()
    throughput.plot(xs, [lv["throughput_rps"] for lv in levels], "k--", marker="D", alpha=0.6, label="throughput")
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

    values = breakdown(levels)
    names = list(values)
    height = 0.8 / max(1, len(levels))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(names) * max(1, len(levels)) ** 0.5))
    for i, lv in enumerate(levels):
        ys = [row + (i - (len(levels) - 1) / 2) * height for row in range(len(names))]
        widths = [values[name][i] for name in names]
        bars = ax.barh(ys, widths, height=height * 0.9, label=f"{xlabel} {_x(lv)}")
        ax.bar_label(bars, labels=[_ms(w) if w > 0 else "" for w in widths], padding=2, fontsize=7)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # request order, top to bottom
    positive = [v for row in values.values() for v in row if v > 0]
    if positive:
        ax.set_xscale("log")
        ax.set_xlim(min(positive) / 2, max(positive) * 8)  # room for the labels
    ax.set_xlabel("mean ms per request (log scale); other = transfer, framing, client")
    ax.set_title(f"{title}: stage breakdown")
    if len(levels) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    stages = out_dir / "stage_breakdown.png"
    fig.savefig(stages, dpi=100)
    plt.close(fig)
    return [latency, stages]
