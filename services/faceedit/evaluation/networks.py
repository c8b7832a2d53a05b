"""Metric networks, loaded from paths or hub ids. No torchvision here, so LPIPS's AlexNet trunk is written out.

LPIPS weights: a directory with `alexnet.pth` (torchvision's AlexNet state dict, keys features.N.*) and
`lpips_alex.pth` (the lpips package's linear heads, keys linN.model.1.weight), as those projects publish them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

ALEX_TAPS = (1, 4, 7, 9, 11)  # ReLU outputs of AlexNet's five conv layers
ALEX_CHANNELS = (64, 192, 384, 256, 256)


def _alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    )


class LPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet): unit-normalised features, squared differences, learned 1x1 weights, spatial mean."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ALEX_TAPS:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: [N,3,H,W] in [-1, 1]."""
        fa, fb = self._taps((a - self.shift) / self.scale), self._taps((b - self.shift) / self.scale)
        return sum(lin((x - y).pow(2)).mean((2, 3)) for lin, x, y in zip(self.lins, fa, fb, strict=True))

    @classmethod
    def load(cls, directory: str | Path) -> LPIPS:
        directory = Path(directory)
        model = cls()
        trunk = torch.load(directory / "alexnet.pth", map_location="cpu", weights_only=True)
        model.features.load_state_dict(
            {k.removeprefix("features."): v for k, v in trunk.items() if k.startswith("features.")}
        )
        heads = torch.load(directory / "lpips_alex.pth", map_location="cpu", weights_only=True)
        for i, lin in enumerate(model.lins):
            lin.weight.data.copy_(heads[f"lin{i}.model.1.weight"])
        return model.eval()

    def save_in_published_layout(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save({f"features.{k}": v for k, v in self.features.state_dict().items()}, directory / "alexnet.pth")
        torch.save(
            {f"lin{i}.model.1.weight": lin.weight.data for i, lin in enumerate(self.lins)}, directory / "lpips_alex.pth"
        )
        return directory


def to_lpips_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0


class Clip:
    """CLIP faithfulness (logits_per_image, as annexure 9) and image features (for FID), from a hub id or dir."""

    def __init__(self, id_or_dir: str | Path) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.model = CLIPModel.from_pretrained(str(id_or_dir)).eval()
        self.processor = CLIPProcessor.from_pretrained(str(id_or_dir))

    def score(self, image: np.ndarray, prompt: str) -> float:
        inputs = self.processor(text=[prompt], images=[image], return_tensors="pt", padding=True, truncation=True)
        with torch.no_grad():
            return float(self.model(**inputs).logits_per_image[0, 0])

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        inputs = self.processor(images=images, return_tensors="pt")
        with torch.no_grad():
            output = self.model.get_image_features(**inputs)
        output = output if isinstance(output, torch.Tensor) else output.pooler_output
        return output.numpy().astype(np.float64)


class VisionFeatures:
    """Image features for FID from any transformers vision backbone (ViT, DINOv2, ...): its pooled output, or the
    mean of its last hidden state where it has no pooler. Inception (the FID standard) needs torchvision, which
    cannot be installed beside this torch, so FID here is comparable only between runs using the same network."""

    def __init__(self, id_or_dir: str | Path) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.model = AutoModel.from_pretrained(str(id_or_dir)).eval()
        self.processor = AutoImageProcessor.from_pretrained(str(id_or_dir))

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        inputs = self.processor(images=images, return_tensors="pt")
        with torch.no_grad():
            output = self.model(**inputs)
        pooled = getattr(output, "pooler_output", None)
        if pooled is None:
            pooled = output.last_hidden_state.mean(1)
        return pooled.reshape(len(images), -1).numpy().astype(np.float64)


def load_feature_network(id_or_dir: str | Path) -> Clip | VisionFeatures:
    """A CLIP checkpoint gives its projected image embeddings; any other vision model its pooled features."""
    from transformers import AutoConfig

    if AutoConfig.from_pretrained(str(id_or_dir)).model_type == "clip":
        return Clip(id_or_dir)
    return VisionFeatures(id_or_dir)


def build_random_metric_networks(directory: Path, seed: int = 0) -> dict[str, Path]:
    """Random-initialised LPIPS and CLIP saved like published weights: smoke runs and tests load them through the
    same path-loading code as real ones. Their scores mean nothing."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from faceedit.export.tiny_sdxl import byte_level_tokenizer

    torch.manual_seed(seed)
    lpips_dir = LPIPS().save_in_published_layout(directory / "lpips")
    tokenizer = byte_level_tokenizer(directory / "clip-tokenizer")
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "image_size": 32,
        "patch_size": 8,
    }
    clip_dir = directory / "clip"
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(clip_dir)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(clip_dir)
    return {"lpips": lpips_dir, "clip": clip_dir, "fid": build_random_vit(directory / "vit")}


def build_random_vit(directory: Path) -> Path:
    """A tiny random ViT saved with its image processor: the FID feature path for a non-CLIP backbone."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32, patch_size=8
    )
    ViTModel(config).save_pretrained(directory)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory
