"""Metric networks: LPIPS in plain torch and CLIP / feature networks, saved and loaded through the path code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from faceedit.evaluation.networks import (
    LPIPS,
    Clip,
    VisionFeatures,
    build_random_metric_networks,
    load_feature_network,
    to_lpips_tensor,
)
from faceedit.evaluation.runner import EvalConfig, Scorers


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_random_metric_networks(tmp_path_factory.mktemp("metrics"))


def _images(n: int, shape: tuple[int, int] = (48, 40)) -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 256, (*shape, 3), dtype=np.uint8) for i in range(n)]


def test_lpips_identical_is_zero_and_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = LPIPS().eval()
    with torch.no_grad():
        for lin in net.lins:
            lin.weight.abs_()  # published heads are non-negative, so LPIPS is a distance
    a, b = (to_lpips_tensor(x) for x in _images(2, (64, 64)))
    loaded = LPIPS.load(net.save_in_published_layout(tmp_path / "lpips"))
    with torch.no_grad():
        assert float(net(a, a)) == 0.0
        assert float(net(a, b)) > 0
        assert float(loaded(a, b)) == pytest.approx(float(net(a, b)))


def test_lpips_published_layout_keys(networks: dict[str, Path]) -> None:
    trunk = torch.load(networks["lpips"] / "alexnet.pth", weights_only=True)
    heads = torch.load(networks["lpips"] / "lpips_alex.pth", weights_only=True)
    assert "features.0.weight" in trunk and trunk["features.10.weight"].shape == (256, 256, 3, 3)
    assert sorted(heads) == [f"lin{i}.model.1.weight" for i in range(5)]
    assert heads["lin1.model.1.weight"].shape == (1, 192, 1, 1)


def test_lpips_outside_the_mask_ignores_edits_inside(networks: dict[str, Path]) -> None:
    scorers = Scorers(EvalConfig(server="unused", lpips_weights=str(networks["lpips"])))
    assert scorers.missing == ["clip", "fid"] and scorers.clip is None
    (original,) = _images(1, (64, 64))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    edited = original.copy()
    edited[mask > 0] = 255 - edited[mask > 0]
    assert scorers.lpips_outside(original, edited, mask) == 0.0
    edited[:8] = 0
    assert scorers.lpips_outside(original, edited, mask) != 0.0


def test_clip_score_and_features_from_a_saved_random_model(networks: dict[str, Path]) -> None:
    clip = Clip(networks["clip"])
    images = _images(3)
    score = clip.score(images[0], "natural brown hair, smooth and shiny")
    assert np.isfinite(score)
    assert clip.score(images[0], "natural brown hair, smooth and shiny") == score  # deterministic
    assert clip.features(images).shape == (3, 16)


def test_feature_network_for_fid_is_chosen_by_model_type(networks: dict[str, Path]) -> None:
    assert isinstance(load_feature_network(networks["clip"]), Clip)
    vit = load_feature_network(networks["fid"])
    assert isinstance(vit, VisionFeatures)
    features = vit.features(_images(3))
    assert features.shape == (3, 32) and np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])


def test_no_weights_means_nothing_but_ssim_and_iou() -> None:
    assert Scorers(EvalConfig(server="unused")).missing == ["lpips", "clip", "fid"]
