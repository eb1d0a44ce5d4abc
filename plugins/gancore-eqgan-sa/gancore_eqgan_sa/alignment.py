"""EqGAN-SA's alignment loss: D's Grad-CAM on a fake, per heatmap level, against the heatmap G was given."""

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore_eqgan_sa.heatmaps import level

__all__ = ["alignment_loss", "cam", "cam_weights", "level_target", "thresholded_l1"]


def cam_weights(
    D: nn.Module, fake: Tensor, c: Tensor | None, resolutions: Sequence[int]
) -> dict[int, Tensor]:
    """Grad-CAM channel weights ``{r: [N, C, 1, 1]}``: the spatial mean of the gradient of G's
    non-saturating loss ``softplus(-D(x))`` on the detached ``fake`` with respect to D's block
    outputs, with D in eval mode (its weights get no gradient)."""
    was_training = D.training
    D.eval()
    try:
        with torch.enable_grad():
            x = fake.detach().requires_grad_(True)
            logits, features = D(x, c, features=True)
            loss = F.softplus(-logits.float()).sum()
            taps = [features[r] for r in resolutions]
            grads = torch.autograd.grad(loss, taps, allow_unused=True)
    finally:
        D.train(was_training)
    return {
        r: (torch.zeros_like(a) if g is None else g).float().mean(dim=(2, 3), keepdim=True)
        for r, a, g in zip(resolutions, taps, grads)
    }


def _min_max(x: Tensor) -> Tensor:
    """Per-sample min-max normalisation of ``[N, 1, H, W]`` with detached extremes (constant maps give 0)."""
    low = x.amin(dim=(1, 2, 3), keepdim=True).detach()
    high = x.amax(dim=(1, 2, 3), keepdim=True).detach()
    return (x - low) / (high - low).clamp_min(1e-12)


def cam(weights: Tensor, activations: Tensor, size: int) -> Tensor:
    """``[N, 1, size, size]``: Σ_c ReLU(w_c · A_c), upsampled bilinearly (align_corners), min-max per sample."""
    heat = F.relu(weights * activations.float()).sum(dim=1, keepdim=True)
    heat = F.interpolate(heat, size=(size, size), mode="bilinear", align_corners=True)
    return _min_max(heat)


def level_target(heatmap: Tensor, index: int) -> Tensor:
    """The target of level ``index``: level 1's raw map; levels 2 and 3 averaged over channels and min-max normalised."""
    maps = level(heatmap, index).float()
    if maps.shape[1] == 1:
        return maps
    return _min_max(maps.mean(dim=1, keepdim=True))


def thresholded_l1(prediction: Tensor, target: Tensor, threshold: float) -> Tensor:
    """Mean of ``|prediction - target|`` over the elements above ``threshold`` (all, if at most one is)."""
    distance = (prediction - target).abs()
    distance = distance[torch.isfinite(distance)]
    above = distance > threshold
    return distance[above].mean() if int(above.sum()) > 1 else distance.mean()


def alignment_loss(
    weights: Mapping[int, Tensor],
    activations: Mapping[int, Tensor],
    heatmap: Tensor,
    resolutions: Sequence[int],
    threshold: float,
) -> Tensor:
    """Σ over levels ``i`` (``resolutions[i - 1]`` present in ``weights``) of the thresholded L1 between cam and target."""
    size = heatmap.shape[-1]
    total = heatmap.new_zeros((), dtype=torch.float32)
    for index, res in enumerate(resolutions, start=1):
        if res in weights:
            total = total + thresholded_l1(cam(weights[res], activations[res], size), level_target(heatmap, index), threshold)
    return total
