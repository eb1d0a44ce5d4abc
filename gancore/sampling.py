"""Drawing samples from a generator with fixed latents: shared by runs and loaded pretrained generators."""

from typing import Callable, Mapping

import torch
from torch import Tensor, nn

__all__ = ["CondSource", "draw_samples"]

#: ``cond_source(batch_size, rng) -> {key: tensor}``: G's extra inputs drawn by plugins.
CondSource = Callable[[int, torch.Generator], Mapping[str, Tensor]]


@torch.no_grad()
def draw_samples(
    generator: nn.Module,
    n: int,
    seed: int = 0,
    c: Tensor | None = None,
    cond: Mapping[str, Tensor] | None = None,
    cond_source: CondSource | None = None,
    chunk: int = 256,
) -> Tensor:
    """``n`` samples of ``generator`` in eval mode, on the CPU, from the latents of ``seed``.

    Per chunk of ``chunk`` samples: z ~ N(0, I) then the plugins' inputs (``cond_source``) are
    drawn from one generator seeded with ``seed``, so the same seed gives the same samples
    wherever they are drawn. ``c``: labels ``[n, c_dim]`` (default for conditional generators:
    the classes in turn). ``cond``: inputs given by the caller, ``[n, ...]`` each; they replace
    the drawn ones of the same key.
    """
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
    rng = torch.Generator().manual_seed(seed)
    outputs = []
    try:
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            z = torch.randn(size, generator.z_dim, generator=rng).to(device, dtype)
            drawn = dict(cond_source(size, rng)) if cond_source is not None else {}
            drawn.update({k: v[start : start + size].to(device) for k, v in given.items()})
            labels = None if c is None else c[start : start + size].to(device, dtype)
            outputs.append(generator(z, labels, drawn).float().cpu())
    finally:
        generator.train(was_training)
    return torch.cat(outputs)
