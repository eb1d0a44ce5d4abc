"""Drawing samples from a generator with fixed latents: shared by runs and loaded pretrained generators."""

import math
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

__all__ = ["BATCH_NORM_MODES", "CondSource", "batch_norm_layers", "draw_samples"]

#: How a generator's batch norms normalise when sampling: ``running`` (their running statistics, eval
#: mode), ``batch`` (each chunk's own statistics, as BigGAN samples for its CIFAR numbers) or
#: ``standing`` (statistics re-estimated over fresh batches first, BigGAN's "standing stats").
BATCH_NORM_MODES = ("running", "batch", "standing")
#: Offset of the seed of the standing-statistics batches from the sampling seed.
STANDING_SEED_OFFSET = 0x57A4

#: ``cond_source(batch_size, rng) -> {key: tensor}``: G's extra inputs drawn by plugins.
CondSource = Callable[[int, torch.Generator], Mapping[str, Tensor]]


def batch_norm_layers(module: nn.Module) -> list[nn.Module]:
    """The batch-norm layers of ``module``: every submodule that keeps ``running_mean`` and
    ``running_var`` buffers of its own (``nn.BatchNorm*`` and backbones' conditional ones, which
    read their ``momentum`` attribute)."""
    return [m for m in module.modules()
            if isinstance(getattr(m, "running_mean", None), Tensor) and isinstance(getattr(m, "running_var", None), Tensor)]


@torch.no_grad()
def draw_samples(
    generator: nn.Module,
    n: int,
    seed: int = 0,
    c: Tensor | None = None,
    cond: Mapping[str, Tensor] | None = None,
    cond_source: CondSource | None = None,
    chunk: int = 256,
    batch_norm: str = "running",
    standing_passes: int = 16,
) -> Tensor:
    """``n`` samples of ``generator`` in eval mode, on the CPU, from the latents of ``seed``.

    Per chunk of ``chunk`` samples: z ~ N(0, I) then the plugins' inputs (``cond_source``) are
    drawn from one generator seeded with ``seed``, so the same seed gives the same samples
    wherever they are drawn. ``c``: labels ``[n, c_dim]`` (default for conditional generators:
    the classes in turn). ``cond``: inputs given by the caller, ``[n, ...]`` each; they replace
    the drawn ones of the same key. ``batch_norm`` (:data:`BATCH_NORM_MODES`): ``batch`` lets the
    batch norms normalise each chunk by its own statistics (equal chunks of at most ``chunk``); ``standing`` first re-estimates their
    statistics as the average over ``standing_passes`` batches of ``chunk`` fresh samples (random
    classes). Either way the generator's buffers are as they were afterwards.
    """
    if batch_norm not in BATCH_NORM_MODES:
        raise ValueError(f"batch_norm must be one of {', '.join(BATCH_NORM_MODES)}, got {batch_norm!r}")
    given = dict(cond or {})
    for key, value in given.items():
        if not isinstance(value, Tensor) or value.ndim == 0 or value.shape[0] != n:
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"cond[{key!r}] must be a tensor with {n} rows (one per sample), got {shape}")
    first = next(generator.parameters())
    device, dtype = first.device, first.dtype
    c_dim = getattr(generator, "c_dim", 0)
    if c is None and c_dim > 0:
        c = torch.nn.functional.one_hot(torch.arange(n) % c_dim, c_dim).float()
    was_training = generator.training
    generator.eval()
    norms = batch_norm_layers(generator) if batch_norm != "running" else []
    saved = [(b, b.clone()) for m in norms for b in m.buffers()]
    momenta = [getattr(m, "momentum", None) for m in norms]

    def forward(size: int, rng: torch.Generator, labels: Tensor | None, extra: Mapping[str, Tensor]) -> Tensor:
        z = torch.randn(size, generator.z_dim, generator=rng).to(device, dtype)
        drawn = dict(cond_source(size, rng)) if cond_source is not None else {}
        drawn.update(extra)
        return generator(z, None if labels is None else labels.to(device, dtype), drawn)

    try:
        if batch_norm == "standing":
            _standing_statistics(norms, forward, chunk, standing_passes, seed, c_dim)
        for m in norms if batch_norm == "batch" else []:
            m.training = True  # the norm alone: its children (BigGAN's spectrally normalised gains) stay in eval
            # Equal chunks, so that no chunk's statistics come from a handful of samples.
            chunk = math.ceil(n / math.ceil(n / chunk))
        rng = torch.Generator().manual_seed(seed)
        outputs = []
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            extra = {k: v[start : start + size].to(device) for k, v in given.items()}
            labels = None if c is None else c[start : start + size]
            outputs.append(forward(size, rng, labels, extra).float().cpu())
    finally:
        generator.train(was_training)
        for buffer, value in saved:
            buffer.copy_(value)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return torch.cat(outputs)


def _standing_statistics(norms: list[nn.Module], forward: Callable, chunk: int, passes: int, seed: int,
                         c_dim: int) -> None:
    """Set every batch norm's running statistics to their average over ``passes`` batches of
    fresh samples (a cumulative average: momentum ``1 / k`` at the ``k``-th pass), then eval mode."""
    rng = torch.Generator().manual_seed(seed + STANDING_SEED_OFFSET)
    for m in norms:
        m.running_mean.zero_()
        m.running_var.zero_()
        m.training = True
    for k in range(1, passes + 1):
        for m in norms:
            m.momentum = 1.0 / k
        labels = None
        if c_dim > 0:
            labels = torch.nn.functional.one_hot(torch.randint(c_dim, (chunk,), generator=rng), c_dim).float()
        forward(chunk, rng, labels, {})
    for m in norms:
        m.training = False
