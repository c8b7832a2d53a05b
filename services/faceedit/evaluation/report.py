"""Evaluation output: a table like thesis Table 6.1 and bar plots like Figs. 5.6-5.9."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLUMNS = (("lpips", "LPIPS", 4), ("ssim", "SSIM", 3), ("iou", "IoU", 3), ("clip", "CLIP", 2), ("latency_s", "s", 2))


def _cell(value: dict | None, digits: int) -> str:
    return "not computed" if value is None else f"{value['mean']:.{digits}f} ± {value['sd']:.{digits}f}"


def write_table(rows: list[dict], path: Path, warning: str | None = None) -> str:
    header = f"{'attribute':<10} {'n':>3} " + " ".join(f"{title:>17}" for _, title, _ in COLUMNS) + f" {'FID':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = " ".join(f"{_cell(row[key], digits):>17}" for key, _, digits in COLUMNS)
        fid = "n/a" if row["fid"] is None else f"{row['fid']:.2f}"
        lines.append(f"{row['attribute']:<10} {row['n']:>3} {cells} {fid:>10}")
    lines.append(
        "LPIPS and SSIM outside the mask (mask == 0); IoU of the region parsed before vs after; "
        "CLIP = logits_per_image; FID needs >= 2 images"
    )
    if warning:
        lines.append(warning)
    text = "\n".join(lines)
    path.write_text(text + "\n")
    return text


def write_plots(rows: list[dict], out: Path) -> list[Path]:
    paths = []
    for key, title, _ in COLUMNS:
        shown = [r for r in rows if r[key] is not None]
        if not shown:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(
            [r["attribute"] for r in shown],
            [r[key]["mean"] for r in shown],
            yerr=[r[key]["sd"] for r in shown],
            capsize=4,
        )
        ax.set_title(f"{title} per attribute (mean ± sd)")
        fig.tight_layout()
        path = out / f"{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
