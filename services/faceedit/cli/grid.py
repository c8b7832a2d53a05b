"""The cascade figure (thesis Fig. 5.1/5.5, per face): per edit, its input with every face numbered, its mask over
the input with the faces it edited boxed (their crop dashed), where the pixels changed (|result - input|), and
the result. A reader sees which regions of which faces changed and that nothing else did."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from faceedit.core.imageio import decode_image
from faceedit.core.viz import overlay
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2

Box = tuple[int, int, int, int]


def difference_map(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """|after - before|, the largest over the channels, stretched so that the smallest change is visible: 0 where
    a pixel is bit-identical, 64..255 where it changed (by 1..the largest change)."""
    diff = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=-1)
    top = int(diff.max())
    if top == 0:
        return np.zeros(diff.shape, np.uint8)
    return np.where(diff > 0, 64 + (diff.astype(np.float32) - 1) * 191 / max(1, top - 1), 0).astype(np.uint8)


def _box(b: types_pb2.BoundingBox) -> Box:
    return b.x0, b.y0, b.x1, b.y1


def _draw_box(ax, box: Box, label: str | None, colour: str, *, dashed: bool = False) -> None:
    x0, y0, x1, y1 = box
    style = "--" if dashed else "-"
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.2, linestyle=style))
    if label is not None:
        ax.text(x0, y0, label, color="white", fontsize=8, va="bottom", bbox={"facecolor": colour, "pad": 1, "lw": 0})


def step_title(step: fe.EditStepResult) -> str:
    """What a step edited: its region and its faces (their numbers), e.g. "lips, face 0 (0.7%)"."""
    region = step.attribute or "classes"
    if not step.faces:
        return f"{region}, whole photo ({step.coverage:.1%})"
    numbers = ", ".join(str(f.index) for f in step.faces)
    return f"{region}, face{'s' if len(step.faces) > 1 else ''} {numbers} ({step.coverage:.1%} of each frame, min)"


def write_grid(
    original: np.ndarray,
    response: fe.EditFaceResponse,
    prompts: list[str],
    out: Path,
    faces: Sequence[fe.FoundFace] = (),
) -> Path:
    """Needs the response of a request with return_masks (each step carries its mask, and every step but the
    last its image: the last one's is the response's). faces: the photo's faces (ParseFaceResponse.faces), boxed
    and numbered on each input."""
    rows = len(response.steps)
    fig, axes = plt.subplots(rows, 4, figsize=(12, 3.2 * rows), squeeze=False)
    current = original
    for row, step in enumerate(response.steps):
        mask = decode_image(step.mask.data)[..., 0]
        result = decode_image((step.image if step.HasField("image") else response.image).data)
        changed = difference_map(current, result)
        panels = [
            (current, "input" if row else "original"),
            (overlay(current, mask), f"mask: {step_title(step)}"),
            (changed, f"|difference|: {np.count_nonzero(changed):,} px changed"),
            (result, f"result: {prompts[row][:40]}"),
        ]
        for ax, (image, title) in zip(axes[row], panels, strict=True):
            ax.imshow(image, cmap="magma" if image.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        for face in faces:
            _draw_box(axes[row][0], _box(face.box), str(face.index), "tab:blue")
        for face in step.faces:
            for ax in axes[row][1:3]:
                _draw_box(ax, _box(face.face_box), str(face.index), "tab:green")
                _draw_box(ax, _box(face.crop_box), None, "tab:orange", dashed=True)
        current = result
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
