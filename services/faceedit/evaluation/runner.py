"""`faceedit eval`: edit every portrait for every attribute through EditFace and score the results."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from tqdm import tqdm

from faceedit.core.errors import UnknownNameError
from faceedit.core.imageio import decode_image, encode_image
from faceedit.core.taxonomy import resolve_classes
from faceedit.evaluation.metrics import frechet_distance, mask_iou, mean_sd, ssim_outside_mask
from faceedit.evaluation.report import write_plots, write_table
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2

# Thesis annexure 10.
EVAL_PROMPTS = {
    "hair": "natural brown hair, smooth and shiny",
    "lips": "natural pink lipstick, glossy finish",
    "skin": "smooth skin, even complexion",
    "eyes": "natural eye color, clear and bright",
    "eyebrows": "well-defined dark eyebrows",
}
METRICS = ("lpips", "ssim", "iou", "clip", "latency_s")
RANDOM_INIT_WARNING = (
    "WARNING: --random-init-metrics: LPIPS, CLIP and FID come from RANDOM networks; their numbers are MEANINGLESS "
    "(a smoke run of the pipeline, not an evaluation)"
)


@dataclass
class EvalConfig:
    server: str
    images: Path | None = None
    attributes: list[str] = field(default_factory=lambda: list(EVAL_PROMPTS))
    prompts: dict[str, str] = field(default_factory=dict)
    steps: int = 50
    limit: int = 100
    lpips_weights: str | None = None
    clip_model: str | None = None
    fid_model: str | None = None
    random_init: bool = False
    out: Path = Path("out/eval")


def load_images(folder: Path | None, limit: int) -> list[tuple[str, bytes]]:
    if folder is None:
        from skimage import data as samples

        return [("astronaut.png", encode_image(np.asarray(samples.astronaut())))]
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    return [(p.name, p.read_bytes()) for p in paths[:limit]]


class Scorers:
    """The metric networks that could be loaded; the rest are reported as not computed, never invented."""

    def __init__(self, config: EvalConfig) -> None:
        from faceedit.evaluation.networks import LPIPS, Clip, build_random_metric_networks, load_feature_network

        lpips, clip, fid = config.lpips_weights, config.clip_model, config.fid_model
        if config.random_init:
            built = build_random_metric_networks(Path(tempfile.mkdtemp(prefix="faceedit-metrics-")))
            lpips, clip, fid = lpips or built["lpips"], clip or built["clip"], fid or built["fid"]
        self.lpips = LPIPS.load(lpips) if lpips else None
        self.clip = Clip(clip) if clip else None
        self.fid = (self.clip if fid == clip else load_feature_network(fid)) if fid else None
        self.missing = [name for name, ok in (("lpips", self.lpips), ("clip", self.clip), ("fid", self.fid)) if not ok]

    def lpips_outside(self, original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> float | None:
        if self.lpips is None:
            return None
        import torch

        from faceedit.evaluation.networks import to_lpips_tensor

        outside = torch.from_numpy((mask == 0).astype(np.float32))[None, None]
        with torch.no_grad():
            return float(self.lpips(to_lpips_tensor(original) * outside, to_lpips_tensor(edited) * outside))


def evaluate_one(stub, scorers: Scorers, data: bytes, attribute: str, prompt: str, steps: int) -> dict:
    original = decode_image(data)
    started = time.monotonic()
    response = stub.EditFace(
        fe.EditFaceRequest(
            image=types_pb2.EncodedImage(data=data),
            return_masks=True,
            edits=[fe.Edit(attribute=attribute, prompt=prompt, num_inference_steps=steps)],
        ),
        timeout=3600,
    )
    latency = time.monotonic() - started
    (step,) = response.steps
    edited = decode_image(response.image.data)
    mask = decode_image(step.mask.data)[..., 0]
    before = decode_image(step.labels.data)[..., 0]
    after_png = stub.ParseFace(
        fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=response.image.data)), timeout=600
    ).labels.data
    after = decode_image(after_png)[..., 0]
    return {
        "attribute": attribute,
        "lpips": scorers.lpips_outside(original, edited, mask),
        "ssim": ssim_outside_mask(original, edited, mask),
        "iou": mask_iou(before, after, resolve_classes(attribute)),
        "clip": scorers.clip.score(edited, prompt) if scorers.clip else None,
        "latency_s": latency,
        "coverage": step.coverage,
        "_original": original,
        "_edited": edited,
    }


def aggregate(attribute: str, records: list[dict], scorers: Scorers) -> dict:
    row: dict = {"attribute": attribute, "n": len(records)}
    for metric in METRICS:
        values = [r[metric] for r in records if r[metric] is not None]
        row[metric] = dict(zip(("mean", "sd"), mean_sd(values), strict=True)) if values else None
    row["fid"] = None
    if scorers.fid is not None and len(records) >= 2:
        row["fid"] = frechet_distance(
            scorers.fid.features([r["_original"] for r in records]),
            scorers.fid.features([r["_edited"] for r in records]),
        )
    return row


def _edit_all(stub, scorers: Scorers, config: EvalConfig, images: list[tuple[str, bytes]], log) -> tuple:
    rows, records_out, skipped = [], [], []
    with tqdm(total=len(images) * len(config.attributes), desc="eval", unit="edit", file=sys.stderr) as bar:
        for attribute in config.attributes:
            prompt = config.prompts.get(attribute) or EVAL_PROMPTS.get(attribute) or f"natural {attribute}"
            records = []
            for name, data in images:
                bar.set_postfix_str(f"{attribute} {name}")
                try:
                    record = evaluate_one(stub, scorers, data, attribute, prompt, config.steps)
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    # The region is absent or too small in this portrait: the thesis skips such pairs too.
                    skipped.append({"image": name, "attribute": attribute, "reason": exc.details()})
                    log(f"skipped {name} / {attribute}: {exc.details()}")
                    continue
                finally:
                    bar.update()
                records.append(record)
                records_out.append({"image": name, **{k: v for k, v in record.items() if not k.startswith("_")}})
            if records:
                rows.append(aggregate(attribute, records, scorers))
    return rows, records_out, skipped


def run_evaluation(config: EvalConfig, log=print) -> int:
    """Edit, score, and write eval.json, table.txt and one bar plot per metric under config.out. Returns the exit
    status: 0, 1 when no pair could be evaluated, 2 when the server failed a request."""
    for attribute in config.attributes:
        try:
            resolve_classes(attribute)
        except UnknownNameError as exc:
            log(str(exc))
            return 2
    images = load_images(config.images, config.limit)
    if not images:
        log(f"no .png/.jpg/.jpeg/.webp portraits in {config.images}")
        return 2
    scorers = Scorers(config)
    if config.random_init:
        log(RANDOM_INIT_WARNING)
    if scorers.missing:
        log(
            f"not computed (no weights given): {', '.join(scorers.missing)} — pass --lpips-weights, --clip-model, "
            "--fid-model"
        )
    with grpc.insecure_channel(config.server, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES)) as channel:
        stub = face_editor_pb2_grpc.FaceEditorStub(channel)
        try:
            rows, records_out, skipped = _edit_all(stub, scorers, config, images, log)
        except grpc.RpcError as exc:
            log(f"EditFace on {config.server} failed: {exc.code().name}: {exc.details()}")
            return 2
    config.out.mkdir(parents=True, exist_ok=True)
    result = {
        "server": config.server,
        "steps": config.steps,
        "images": len(images),
        "random_init": config.random_init,
        "not_computed": scorers.missing,
        "attributes": rows,
        "records": records_out,
        "skipped": skipped,
    }
    (config.out / "eval.json").write_text(json.dumps(result, indent=2))
    table = write_table(rows, config.out / "table.txt", RANDOM_INIT_WARNING if config.random_init else None)
    log(table)
    plots = write_plots(rows, config.out)
    log(f"wrote {config.out}/eval.json, table.txt and {len(plots)} plots")
    return 0 if rows else 1
