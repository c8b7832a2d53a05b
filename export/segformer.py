"""SegFormer face parsers: random-initialised checkpoints built from configs (tests, demo, benchmarks) and the one
loader that also takes a hub id such as jonathandinu/face-parsing or a local directory with real weights.

A checkpoint is accepted by the names in its id2label, not by its channel order (a copy of a model with another
label order must parse the same regions), and its preprocessing is read from its preprocessor_config.json.

    python -m faceedit.export.segformer --size tiny --out models/parser-tiny
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor
from transformers.utils import logging as transformers_logging

from faceedit.core.taxonomy import CLASS_NAMES, CheckpointLabelError, canonical_order

PUBLIC_CHECKPOINT = "jonathandinu/face-parsing"  # SegFormer-B5 fine-tuned on CelebAMask-HQ
# SegformerConfig's own defaults are the B0 sizes (hidden 32/64/160/256, depths 2/2/2/2, decoder 256).
SIZES: dict[str, dict] = {
    "tiny": {
        "hidden_sizes": [8, 16, 24, 32],
        "depths": [1, 1, 1, 1],
        "num_attention_heads": [1, 1, 1, 1],
        "decoder_hidden_size": 32,
    },
    "b0": {},
    # nvidia/mit-b5, the encoder of jonathandinu/face-parsing: the real architecture and depth, random weights.
    "b5": {
        "hidden_sizes": [64, 128, 320, 512],
        "depths": [3, 6, 40, 3],
        "num_attention_heads": [1, 2, 5, 8],
        "sr_ratios": [8, 4, 2, 1],
        "decoder_hidden_size": 768,
    },
}
SERVING_SIZE = 512  # what faceedit's clients letterbox to (--parser-size), and jonathandinu/face-parsing's size


@dataclass(frozen=True)
class Preprocessing:
    """What SegformerImageProcessor does to a uint8 RGB image, as the exported graph repeats it.

    size: (height, width) the processor resizes to, None when it does not resize. Pixels become
    (pixel * rescale - mean) / std, per channel, in that order (rescale 1.0 / mean 0 / std 1 when disabled).
    """

    size: tuple[int, int] | None
    rescale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def preprocessing_from(config: Mapping) -> Preprocessing:
    """Preprocessing from an image processor's to_dict() (its preprocessor_config.json).

    Raises ValueError for what the graph cannot repeat: a size given other than as height/width, or mean/std
    that are not three channels.
    """
    size = None
    if config.get("do_resize", True):
        spec = config.get("size") or {}
        if set(spec) != {"height", "width"}:
            raise ValueError(f"the image processor resizes to {spec!r}; faceedit supports only {{height, width}}")
        size = (int(spec["height"]), int(spec["width"]))
    rescale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if config.get("do_normalize", True):
        mean = tuple(float(v) for v in _channels(config.get("image_mean"), "image_mean"))
        std = tuple(float(v) for v in _channels(config.get("image_std"), "image_std"))
    return Preprocessing(size, rescale, mean, std)  # type: ignore[arg-type]


def _channels(values: object, key: str) -> Sequence[float]:
    if isinstance(values, int | float):
        return (float(values),) * 3
    if not isinstance(values, Sequence) or len(values) != 3:
        raise ValueError(f"the image processor's {key} must be 3 values (RGB); got {values!r}")
    return values


def build_random_parser(
    size: str,
    out: Path,
    *,
    seed: int = 0,
    labels: Sequence[str] = CLASS_NAMES,
    processor: Mapping | None = None,
) -> Path:
    """Save a random-initialised 19-class SegFormer of the given size, with its image processor config.

    labels: the id2label order to declare (tests use other orders and unknown names); processor: keyword
    overrides for SegformerImageProcessor (default: ImageNet mean/std, 512x512).
    """
    if size not in SIZES:
        raise ValueError(f"unknown parser size {size!r}; choose one of {', '.join(SIZES)}")
    torch.manual_seed(seed)
    config = SegformerConfig(
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        **SIZES[size],
    )
    model = SegformerForSemanticSegmentation(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    # One shard: transformers' "Writing model shards" bar only clutters `faceedit up`'s start.
    transformers_logging.disable_progress_bar()
    model.save_pretrained(out)
    options = {"size": {"height": SERVING_SIZE, "width": SERVING_SIZE}, **(processor or {})}
    SegformerImageProcessor(**options).save_pretrained(out)
    return out


def relabel_parser(checkpoint: Path, out: Path, order: Sequence[int]) -> Path:
    """A copy of a checkpoint whose output channel i is the source's channel order[i]: the same model with its
    classifier rows and id2label permuted (such copies exist on the hub). Processor config copied unchanged."""
    model = SegformerForSemanticSegmentation.from_pretrained(str(checkpoint)).eval()
    if sorted(order) != list(range(model.config.num_labels)):
        raise ValueError(f"order must be a permutation of 0..{model.config.num_labels - 1}")
    index = torch.tensor(list(order))
    classifier = model.decode_head.classifier
    with torch.no_grad():
        classifier.weight.copy_(classifier.weight[index])
        classifier.bias.copy_(classifier.bias[index])
    names = [model.config.id2label[i] for i in order]
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    SegformerImageProcessor.from_pretrained(str(checkpoint)).save_pretrained(out)
    return out


def load_parser(id_or_dir: str | Path, *, revision: str | None = None) -> SegformerForSemanticSegmentation:
    """A SegFormer parser in eval mode, from a hub id (pinned to revision if given) or a local directory.

    Raises CheckpointLabelError when its id2label does not name the 19 CelebAMask-HQ classes (the message lists
    what is unknown, doubled or missing)."""
    model = SegformerForSemanticSegmentation.from_pretrained(str(id_or_dir), revision=revision)
    try:
        canonical_order(model.config.id2label)
    except CheckpointLabelError as exc:
        raise CheckpointLabelError(f"{id_or_dir}: {exc}") from None
    return model.eval()


def load_processor(id_or_dir: str | Path, *, revision: str | None = None) -> SegformerImageProcessor:
    return SegformerImageProcessor.from_pretrained(str(id_or_dir), revision=revision)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a random-initialised SegFormer face parser checkpoint.")
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="tiny", help="tiny for tests, b0 for benchmarks, b5 = real B5 shape"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to save_pretrained into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_random_parser(args.size, args.out, seed=args.seed))


if __name__ == "__main__":
    main()
