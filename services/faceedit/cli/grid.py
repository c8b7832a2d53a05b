"""The cascade figure of the thesis (Fig. 5.1/5.5): per edit, its input, parse map, mask and result."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from faceedit.core.imageio import decode_image
from faceedit.core.viz import overlay
from faceedit.v1 import face_editor_pb2 as fe


def write_grid(original: np.ndarray, response: fe.EditFaceResponse, prompts: list[str], out: Path) -> Path:
    """Needs the response of a request with return_masks (each step carries its mask and parse map, and every step
    but the last its image: the last one's is the response's)."""
    rows = len(response.steps)
    fig, axes = plt.subplots(rows, 4, figsize=(12, 3.2 * rows), squeeze=False)
    current = original
    for row, step in enumerate(response.steps):
        mask = decode_image(step.mask.data)[..., 0]
        result = decode_image((step.image if step.HasField("image") else response.image).data)
        panels = [
            (current, "input" if row else "original"),
            (decode_image(step.parse_map.data), "parse map"),
            (overlay(current, mask), f"mask {step.attribute or 'classes'} ({step.coverage:.1%})"),
            (result, f"result: {prompts[row][:40]}"),
        ]
        for ax, (image, title) in zip(axes[row], panels, strict=True):
            ax.imshow(image)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        current = result
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
