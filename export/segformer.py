"""SegFormer face parsers: random-initialised checkpoints built from configs (tests, demo, benchmarks) and the one
loader that also takes a hub id such as jonathandinu/face-parsing or a local directory with real weights.

    python -m faceedit.export.segformer --size tiny --out models/parser-tiny
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

from faceedit.core.taxonomy import CLASS_NAMES

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
}


def build_random_parser(size: str, out: Path, *, seed: int = 0) -> Path:
    """Save a random-initialised 19-class SegFormer of the given size, with its image processor config."""
    if size not in SIZES:
        raise ValueError(f"unknown parser size {size!r}; choose one of {', '.join(SIZES)}")
    torch.manual_seed(seed)
    config = SegformerConfig(
        num_labels=len(CLASS_NAMES),
        id2label=dict(enumerate(CLASS_NAMES)),
        label2id={name: i for i, name in enumerate(CLASS_NAMES)},
        **SIZES[size],
    )
    model = SegformerForSemanticSegmentation(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    SegformerImageProcessor(size={"height": 512, "width": 512}).save_pretrained(out)
    return out


def load_parser(id_or_dir: str | Path) -> SegformerForSemanticSegmentation:
    """A SegFormer parser in eval mode, from a hub id or a local directory (the same call either way)."""
    model = SegformerForSemanticSegmentation.from_pretrained(str(id_or_dir))
    if model.config.num_labels != len(CLASS_NAMES):
        raise ValueError(
            f"{id_or_dir} predicts {model.config.num_labels} classes; faceedit needs the {len(CLASS_NAMES)} "
            "CelebAMask-HQ classes"
        )
    return model.eval()


def load_processor(id_or_dir: str | Path) -> SegformerImageProcessor:
    return SegformerImageProcessor.from_pretrained(str(id_or_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a random-initialised SegFormer face parser checkpoint.")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny", help="tiny for tests, b0 for benchmarks")
    parser.add_argument("--out", type=Path, required=True, help="directory to save_pretrained into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_random_parser(args.size, args.out, seed=args.seed))


if __name__ == "__main__":
    main()
