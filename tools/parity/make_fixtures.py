"""Write StyleGAN2 parity fixtures by running a user-given checkout of NVIDIA's official code.

Run it with a Python that can import that checkout (torch, numpy, and the checkout's own
requirements), outside this repository's environment if you like; it needs nothing of gancore:

    python tools/parity/make_fixtures.py --official ~/src/stylegan2-ada-pytorch --out tests/parity/fixtures

For each small network it writes ``<name>.safetensors`` (the networks' tensors under NVIDIA's own
names, prefixed ``G.``, ``G_ema.``, ``D.``; the inputs; the official outputs) and ``<name>.json``
(each network's module tree: class names, plain attributes, ``init_kwargs`` and tensor names, as
a pickle would carry them, without the source code). Numbers only: no official code and no
pickle goes into the fixtures. Everything runs on the CPU in float32 (``force_fp32``): NVIDIA's
float16 layers are a GPU-only path that gancore does not copy (it offers bf16 autocast instead).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

#: The networks: small widths so the fixtures stay small, each a shape of an official config.
#: ``G`` and ``D`` are keyword arguments of NVIDIA's ``training.networks`` classes.
NETWORKS: dict[str, dict[str, Any]] = {
    # paper256: fmaps 0.5, mbstd group 8, 8 mapping layers, conv_clamp 256, 4 fp16 resolutions.
    "paper256-tiny": dict(
        batch=8, psi=0.7, cutoff=None,
        G=dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3,
               mapping_kwargs=dict(num_layers=8),
               synthesis_kwargs=dict(channel_base=256, channel_max=32, num_fp16_res=4, conv_clamp=256)),
        D=dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=256, channel_max=32, num_fp16_res=4,
               conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=8)),
    ),
    # config-f (stylegan2): fmaps 1, mbstd group 4, widths capped, truncation with a cutoff.
    "configf-tiny": dict(
        batch=8, psi=0.5, cutoff=4,
        loss=dict(style_mixing_prob=0.9, r1_gamma=10.0, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2.0),
        opt=dict(lr=0.002, betas=(0.0, 0.99), G_reg_interval=4, D_reg_interval=16, ema_kimg=0.01),
        G=dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3,
               mapping_kwargs=dict(num_layers=8),
               synthesis_kwargs=dict(channel_base=512, channel_max=32, num_fp16_res=4, conv_clamp=256)),
        D=dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=512, channel_max=32, num_fp16_res=4,
               conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=4)),
    ),
    # cifar: conditional, 2 mapping layers, D architecture 'orig', mbstd group 32 (the whole batch here).
    "cifar-cond-tiny": dict(
        batch=8, psi=0.7, cutoff=None,
        loss=dict(style_mixing_prob=0.5, r1_gamma=0.01, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2.0),
        opt=dict(lr=0.0025, betas=(0.0, 0.99), G_reg_interval=4, D_reg_interval=16, ema_kimg=0.05),
        G=dict(z_dim=32, c_dim=10, w_dim=32, img_resolution=32, img_channels=3,
               mapping_kwargs=dict(num_layers=2),
               synthesis_kwargs=dict(channel_base=512, channel_max=32, num_fp16_res=4, conv_clamp=256)),
        D=dict(c_dim=10, img_resolution=32, img_channels=3, architecture="orig", channel_base=512, channel_max=32,
               num_fp16_res=4, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=32)),
    ),
    # NVIDIA's other D options: 'skip' blocks, a whole-batch mbstd group (None), a label mapping of
    # 0 layers with its own lr multiplier; and a G without conv_clamp.
    "skip-d-tiny": dict(
        batch=6, psi=0.8, cutoff=2,
        G=dict(z_dim=16, c_dim=5, w_dim=24, img_resolution=16, img_channels=1,
               mapping_kwargs=dict(num_layers=3, lr_multiplier=0.1),
               synthesis_kwargs=dict(channel_base=128, channel_max=24)),
        D=dict(c_dim=5, img_resolution=16, img_channels=1, architecture="skip", channel_base=128, channel_max=24,
               cmap_dim=12, mapping_kwargs=dict(num_layers=0), epilogue_kwargs=dict(mbstd_group_size=None)),
    ),
}


#: Networks of the StyleGAN3 repository's StyleGAN2 (training/networks_stylegan2.py), made with
#: ``--official`` pointing at a checkout of NVlabs/stylegan3: its own defaults (w_avg_beta 0.998,
#: conv_clamp 256, 4 fp16 resolutions) and ``fused_modconv_default = 'inference_only'`` as its
#: train.py sets for ``--cfg=stylegan2``.
STYLEGAN3_NETWORKS: dict[str, dict[str, Any]] = {
    "sg3-stylegan2-tiny": dict(
        batch=4, psi=0.6, cutoff=None,
        G=dict(z_dim=24, c_dim=0, w_dim=24, img_resolution=16, img_channels=3,
               mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=24,
               fused_modconv_default="inference_only"),
        D=dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=24,
               epilogue_kwargs=dict(mbstd_group_size=4)),
    ),
}


#: GLeaD's networks (EzioBy/glead, training/networks_glead.py), made with ``--official`` pointing at a
#: checkout of it: paper256's shape at tiny widths; the ws head is 512 wide in the official code,
#: so w_dim is 512; decoder to 16 px, G's state at 8 px, 1x1 decoder kernels as in its scripts.
GLEAD_NETWORKS: dict[str, dict[str, Any]] = {
    "glead-tiny": dict(
        batch=4, psi=0.7, cutoff=None, glead=True,
        G=dict(z_dim=8, c_dim=0, w_dim=512, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=1),
               synthesis_kwargs=dict(channel_base=128, channel_max=32, num_fp16_res=0, conv_clamp=None)),
        D=dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=128, channel_max=32, num_fp16_res=0,
               conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=2), decoder_res=[16], glead_res_g=8,
               decoder_out_channel=512, decoder_conv_kernel_size=1),
    ),
}


#: EqGAN-SA's networks (genforce/eqgan-sa, its training/networks.py), made with ``--official``
#: pointing at a checkout of it: SEL on, tiny widths, no fp16, no clamp; its loss's Gmain with the
#: alignment loss (style mixing and path length off, as in its cat recipe).
EQGAN_NETWORKS: dict[str, dict[str, Any]] = {
    "eqgan-sa-tiny": dict(
        batch=4, psi=0.7, cutoff=None, eqgan=True,
        G=dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, use_sel=True, mapping_kwargs=dict(num_layers=2),
               synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None)),
        D=dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=128, channel_max=16, num_fp16_res=0,
               conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=4)),
    ),
}


def eqgan_outputs(networks: Any, G: Any, G_ema: Any, D: Any, z: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """EqGAN-SA's heat maps, G_ema's images from them, and its loss's Gmain (adversarial term,
    alignment loss, D's Grad-CAM weights, every G gradient) with those heat maps and G's noise off."""
    import types

    sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))  # loss.py imports it, unused
    sys.modules.setdefault("torchvision.models", types.ModuleType("torchvision.models"))
    from training import loss as loss_module

    torch.manual_seed(seed)
    n, res = z.shape[0], G.img_resolution
    heat = networks.generate_heatmap_multi(n, res)
    out = {f"in.heatmap.{k}": v for k, v in heat.items()}
    with torch.no_grad():
        out["out.images"] = G_ema.eval()(z, None, heatmap={k: v.clone() for k, v in heat.items()}, noise_mode="const")
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()  # random noise cannot be replayed across implementations
    original = networks.generate_heatmap_multi
    networks.generate_heatmap_multi = lambda *args, **kwargs: {k: v.clone() for k, v in heat.items()}
    reports: dict[str, torch.Tensor] = {}
    report = loss_module.training_stats.report
    loss_module.training_stats.report = lambda name, value: reports.setdefault(name, torch.as_tensor(value).detach().float().clone()) if isinstance(value, torch.Tensor) else value
    try:
        G.train().requires_grad_(True)
        D.requires_grad_(False)
        loss = loss_module.StyleGAN2Loss(torch.device("cpu"), G.mapping, G.synthesis, D, style_mixing_prob=0,
                                         pl_weight=0, r1_gamma=1, align_loss=True)
        cams = {}
        compute = loss.compute_GradCam_multi
        loss.compute_GradCam_multi = lambda *a, **k: cams.update(compute(*a, **k)) or dict(cams)
        c = torch.zeros([n, 0])
        loss.accumulate_gradients(phase="Gmain", real_img=torch.zeros([n, 3, res, res]), real_c=c, gen_z=z, gen_c=c,
                                  sync=True, gain=1)
    finally:
        networks.generate_heatmap_multi = original
        loss_module.training_stats.report = report
    out["out.loss_adv"] = reports["Loss/G/loss"].mean().reshape(1)
    out["out.loss_align"] = reports["Loss/G/align_loss"].reshape(1)
    out |= {f"out.cam.{k}": v for k, v in cams.items()}
    out |= {f"grad.{k}": p.grad.detach().clone() for k, p in G.named_parameters() if p.grad is not None}
    return out


def glead_outputs(G: Any, D: Any, reals: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
    """D's logits and GLeaD predictions for ``reals``, and G's reconstruction from them, as the
    official loss computes them (loss_glead.py: heads resized to glead_res_g, ws repeated)."""
    import torch.nn.functional as F

    r = D.glead_res_g
    with torch.no_grad():
        logits, _, (feat, inter), ws = D(reals, c)
        feat_r = F.interpolate(feat, (r, r), mode="bilinear", align_corners=False) if feat.shape[-1] != r else feat
        inter_r = F.interpolate(inter, (r, r), mode="bilinear", align_corners=False) if inter.shape[-1] != r else inter
        repeats = int(np.log2(G.img_resolution // r)) * 2 + 1
        recon = G.synthesis(get_feat=False, feat2img=True, ws=ws.repeat(1, repeats, 1), feature_map=feat_r,
                            inter_image=inter_r, noise_mode="const", force_fp32=True)
    lpips, distance = _official_lpips(recon, reals)
    return {"out.logits_real": logits.squeeze(1), "out.glead_x": feat_r, "out.glead_img": inter_r,
            "out.glead_ws": ws.repeat(1, repeats, 1), "out.glead_recon": recon,
            "out.glead_mse": F.mse_loss(recon, reals).reshape(1), "out.glead_lpips": distance.reshape(1),
            **{f"lpips.{k}": v for k, v in lpips.items()}}


def _official_lpips(a: torch.Tensor, b: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """GLeaD's own LPIPS copy (training/lpips) on ``a`` and ``b``, with seeded random weights: its
    AlexNet comes from torchvision and its linear heads from a download, neither here, so both are
    stand-ins of the right shapes; the weights are returned under gancore-glead's LPIPS names."""
    import types

    from torch import nn

    def alexnet(pretrained: bool = True) -> Any:
        f = nn.Sequential(nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                          nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                          nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(384, 256, 3, 1, 1),
                          nn.ReLU(inplace=True), nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        return types.SimpleNamespace(features=f)

    torchvision = types.ModuleType("torchvision")
    torchvision.models = types.SimpleNamespace(alexnet=alexnet)
    sys.modules["torchvision"] = torchvision
    from training.lpips import lpips as lp, networks as lpn

    def cpu_init(self: Any, net_type: str = "alex", version: str = "0.1") -> None:  # theirs moves to CUDA, downloads
        nn.Module.__init__(self)
        self.net = lpn.get_network(net_type)
        self.lin = lpn.LinLayers(self.net.n_channels_list)
        for layer in self.lin:
            nn.init.uniform_(layer[1].weight, 0, 0.1)

    lp.LPIPS.__init__ = cpu_init
    model = lp.LPIPS().eval()
    names = {}
    for key in model.state_dict():
        if key.startswith("net.layers."):
            names[key] = "features." + key.removeprefix("net.layers.")
        elif key.startswith("lin."):
            names[key] = f"lins.{key.split('.')[1]}.weight"
    with torch.no_grad():
        for key, value in model.state_dict().items():  # AlexNet is 10 MB: weights from a formula instead
            if key in names:  # (the input scaling buffers keep their values)
                value.copy_(lpips_pattern(names[key], tuple(value.shape)))
        distance = model(a, b)
    return {}, distance


def lpips_pattern(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Deterministic stand-in weights for LPIPS tensor ``name`` (gancore-glead's names), so the
    fixture need not carry AlexNet's 10 MB: tests/parity/test_glead_parity.py computes the same."""
    seed = sum(ord(ch) for ch in name)
    x = torch.arange(int(np.prod(shape)), dtype=torch.float64)
    scale = 0.05 if name.startswith("lins") else 1 / np.sqrt(np.prod(shape[1:]))
    values = torch.sin(x * 0.618 + seed) * scale
    if name.startswith("lins"):
        values = values.abs()  # LPIPS's linear heads are non-negative
    return values.reshape(shape).to(torch.float32)


def _plain(value: Any) -> Any:
    """A pickled attribute as JSON (numpy scalars to numbers, tuples to lists); None if not plain."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if all(i is not None or v is None for i, v in zip(items, value)) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return None


def module_tree(module: torch.nn.Module) -> dict[str, Any]:
    """What NVIDIA's pickle of ``module`` carries besides code: class, attributes, tensors, children."""
    attributes = {}
    for name, value in vars(module).items():
        plain = _plain(value)
        if not name.startswith("_") and (plain is not None or value is None):
            attributes[name] = plain
    return {
        "class_name": getattr(module, "_orig_class_name", type(module).__name__),
        "attributes": attributes,
        "init_args": _plain(list(getattr(module, "_init_args", ()))),
        "init_kwargs": _plain(dict(getattr(module, "_init_kwargs", {}))),
        "parameters": [name for name, p in module._parameters.items() if p is not None],
        "buffers": [name for name, b in module._buffers.items() if b is not None],
        "children": {name: module_tree(child) for name, child in module._modules.items() if child is not None},
    }


def _perturbed_copy(G: torch.nn.Module, seed: int) -> torch.nn.Module:
    """G_ema: a copy of G with every parameter nudged, so the two are told apart."""
    import copy

    G_ema = copy.deepcopy(G).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in G_ema.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return G_ema


def make_fixture(networks: Any, name: str, spec: dict[str, Any], seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the JSON of one fixture."""
    torch.manual_seed(seed)
    G = networks.Generator(**spec["G"]).train()
    D = networks.Discriminator(**spec["D"]).train()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial biases, noise strengths and w_avg (all start at zero)
        for module in (G, D):
            for key, p in module.named_parameters():
                if key.endswith(("bias", "noise_strength")):
                    p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=gen) * 0.3)
    G_ema = _perturbed_copy(G, seed + 2)
    n, c_dim = spec["batch"], spec["G"]["c_dim"]
    res, channels = spec["G"]["img_resolution"], spec["G"]["img_channels"]
    z = torch.randn([n, spec["G"]["z_dim"]], generator=gen)
    c = torch.nn.functional.one_hot(torch.randint(0, c_dim, [n], generator=gen), c_dim).float() if c_dim else torch.zeros([n, 0])
    reals = torch.randn([n, channels, res, res], generator=gen).clamp(-1, 1)
    if spec.get("eqgan"):  # G takes heat maps; its loss adds the alignment term
        tensors = {"in.z": z, **eqgan_outputs(networks, G, G_ema, D, z, seed + 3)}
        tensors |= {f"{net}.{k}": v for net, m in (("G", G), ("G_ema", G_ema), ("D", D)) for k, v in m.state_dict().items()}
        meta = {"name": name, "official": networks.__name__.replace(".", "/") + ".py",
                "networks": {"G": module_tree(G), "G_ema": module_tree(G_ema), "D": module_tree(D)}}
        return {k: v.detach().contiguous().clone() for k, v in tensors.items()}, meta
    if spec.get("glead"):  # D returns its decoder's predictions too
        G_ema.eval(), D.eval()
        with torch.no_grad():
            images = G_ema(z, c, noise_mode="const", force_fp32=True)
        tensors = {"in.z": z, "in.c": c, "in.reals": reals, "out.images": images,
                   **glead_outputs(G.eval(), D, reals, c)}
        tensors |= {f"{net}.{k}": v for net, m in (("G", G), ("G_ema", G_ema), ("D", D)) for k, v in m.state_dict().items()}
        meta = {"name": name, "official": networks.__name__.replace(".", "/") + ".py",
                "truncation": {"psi": spec["psi"], "cutoff": spec["cutoff"]},
                "networks": {"G": module_tree(G), "G_ema": module_tree(G_ema), "D": module_tree(D)}}
        return {k: v.detach().contiguous().clone() for k, v in tensors.items()}, meta
    with torch.no_grad():
        G_ema.eval(), D.eval()
        images = G_ema(z, c, noise_mode="const", force_fp32=True)
        images_psi = G_ema(z, c, truncation_psi=spec["psi"], truncation_cutoff=spec["cutoff"], noise_mode="const", force_fp32=True)
        images_g = G.eval()(z, c, noise_mode="const", force_fp32=True)
        ws = G_ema.mapping(z, c)
        logits_real = D(reals, c, force_fp32=True).squeeze(1)
        logits_fake = D(images, c, force_fp32=True).squeeze(1)
    tensors = {}
    if "loss" in spec:
        from training import loss as loss_module  # the official loss, from the given checkout

        phase_tensors, meta_phases = make_phase_fixture(networks, loss_module, G, D, G_ema, {
            "in.z": z, "in.c": c, "in.reals": reals}, spec, seed=1000 + seed)
        tensors |= {f"phase.{k}": v for k, v in phase_tensors.items()}
    tensors |= {f"G.{k}": v for k, v in G.state_dict().items()}
    tensors |= {f"G_ema.{k}": v for k, v in G_ema.state_dict().items()}
    tensors |= {f"D.{k}": v for k, v in D.state_dict().items()}
    tensors |= {
        "in.z": z, "in.c": c, "in.reals": reals, "out.images": images, "out.images_psi": images_psi,
        "out.images_G": images_g, "out.ws": ws, "out.logits_real": logits_real, "out.logits_fake": logits_fake,
    }
    meta = {
        "name": name,
        **({"training": meta_phases} if "loss" in spec else {}),
        "official": networks.__name__.replace(".", "/") + ".py",
        "truncation": {"psi": spec["psi"], "cutoff": spec["cutoff"]},
        "networks": {"G": module_tree(G), "G_ema": module_tree(G_ema), "D": module_tree(D)},
    }
    return {k: v.detach().contiguous().clone() for k, v in tensors.items()}, meta


class _Recorder:
    """Records what NVIDIA's loss reports (``training_stats.report``) and draws with ``randn_like``."""

    def __init__(self, loss_module: Any):
        self.loss_module = loss_module
        self.reports: dict[str, torch.Tensor] = {}
        self.randn_like: list[torch.Tensor] = []

    def __enter__(self) -> "_Recorder":
        stats = self.loss_module.training_stats
        self._report, self._randn_like = stats.report, torch.randn_like

        def report(name: str, value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                self.reports[name] = value.detach().clone()
            return value

        def randn_like(tensor: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            out = self._randn_like(tensor, **kwargs)
            self.randn_like.append(out.detach().clone())
            return out

        stats.report, torch.randn_like = report, randn_like
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loss_module.training_stats.report, torch.randn_like = self._report, self._randn_like


#: The phases in NVIDIA's order (training_loop.py: G's phases, then D's), with their network.
PHASES = (("Gmain", "G"), ("Greg", "G"), ("Dmain", "D"), ("Dreg", "D"))


def _fp32_copy(module: Any) -> Any:
    """A copy whose blocks run in float32: NVIDIA's loss calls the networks without ``force_fp32``,
    so its float16 blocks (a GPU path gancore does not copy) would otherwise run in half precision."""
    import copy

    module = copy.deepcopy(module)
    for block in module.modules():
        if hasattr(block, "use_fp16"):
            block.use_fp16 = False
    return module


def make_phase_fixture(networks: Any, loss_module: Any, G: Any, D: Any, G_ema: Any, fx: dict[str, torch.Tensor],
                       spec: dict[str, Any], seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Each phase's losses and gradients from the same weights and draws (``torch.manual_seed(seed + i)``
    before phase i), then one whole iteration as NVIDIA's training loop runs it (lazy-scaled
    Adam, every phase, EMA of G)."""
    import copy

    tensors: dict[str, torch.Tensor] = {}
    reals, c, n = fx["in.reals"], fx["in.c"], spec["batch"]
    for index, (phase, net_name) in enumerate(PHASES):
        G_, D_ = _fp32_copy(G).train(), _fp32_copy(D).train()
        G_.requires_grad_(net_name == "G")
        D_.requires_grad_(net_name == "D")
        loss = loss_module.StyleGAN2Loss(torch.device("cpu"), G_.mapping, G_.synthesis, D_, **spec["loss"])
        interval = {"Gmain": 1, "Dmain": 1, "Greg": spec["opt"]["G_reg_interval"], "Dreg": spec["opt"]["D_reg_interval"]}[phase]
        torch.manual_seed(seed + index)
        with _Recorder(loss_module) as rec:
            loss.accumulate_gradients(phase=phase, real_img=reals, real_c=c, gen_z=fx["in.z"], gen_c=c, sync=True, gain=interval)
        net = G_ if net_name == "G" else D_
        for key, p in net.named_parameters():
            tensors[f"{phase}.grad.{key}"] = p.grad if p.grad is not None else torch.zeros_like(p)
        for key, value in rec.reports.items():
            tensors[f"{phase}.report.{key}"] = value.reshape(-1)
        if phase == "Greg":
            tensors["Greg.pl_noise"] = rec.randn_like[-1]
            tensors["Greg.pl_mean"] = loss.pl_mean.reshape(1)
            tensors["Greg.w_avg"] = G_.mapping.w_avg
    tensors.update(_iteration(loss_module, G, D, G_ema, fx, spec, seed + len(PHASES)))
    return tensors, {"phase_seed": seed, "loss": spec["loss"], "opt": dict(spec["opt"], betas=list(spec["opt"]["betas"])),
                     "phases": [p for p, _ in PHASES]}


def _iteration(loss_module: Any, G: Any, D: Any, G_ema: Any, fx: dict[str, torch.Tensor], spec: dict[str, Any],
               seed: int) -> dict[str, torch.Tensor]:
    """One iteration of NVIDIA's training loop at batch_idx 0, from copies of G, D and G_ema."""
    G, D = _fp32_copy(G).train().requires_grad_(False), _fp32_copy(D).train().requires_grad_(False)
    G_ema = _fp32_copy(G_ema).eval()
    o = spec["opt"]
    loss = loss_module.StyleGAN2Loss(torch.device("cpu"), G.mapping, G.synthesis, D, **spec["loss"])
    phases = []
    for name, module, interval in (("G", G, o["G_reg_interval"]), ("D", D, o["D_reg_interval"])):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=o["lr"] * ratio, betas=[b ** ratio for b in o["betas"]], eps=1e-8)
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    batch = spec["batch"]
    torch.manual_seed(seed)
    all_z = torch.randn([len(phases) * batch, G.z_dim]).split(batch)
    reals, c = fx["in.reals"], fx["in.c"]
    for (name, module, opt, interval), z in zip(phases, all_z):
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        loss.accumulate_gradients(phase=name, real_img=reals, real_c=c, gen_z=z, gen_c=c, sync=True, gain=interval)
        module.requires_grad_(False)
        for param in module.parameters():
            if param.grad is not None:
                torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
        opt.step()
    with torch.no_grad():
        beta = 0.5 ** (batch / max(o["ema_kimg"] * 1000, 1e-8))
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)
    out = {f"iter.G.{k}": v for k, v in G.state_dict().items()}
    out |= {f"iter.D.{k}": v for k, v in D.state_dict().items()}
    out |= {f"iter.G_ema.{k}": v for k, v in G_ema.state_dict().items()}
    out["iter.pl_mean"] = loss.pl_mean.reshape(1)
    return out


#: ADA's ops (NVIDIA's AugmentPipe arguments), each alone and all at once (the ``bgc`` preset).
AUGMENT_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
               "brightness", "contrast", "lumaflip", "hue", "saturation")
#: NVIDIA's deterministic mode: every op applied, every random number replaced by this percentile.
AUGMENT_PERCENTILES = (0.1, 0.35, 0.6, 0.85)


def make_augment_fixture(augment_module: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """NVIDIA's AugmentPipe outputs with ``debug_percentile``, per op and for all of them at once."""
    gen = torch.Generator().manual_seed(7)
    tensors: dict[str, torch.Tensor] = {}
    cases = []
    for channels in (1, 3):
        images = (torch.rand([2, channels, 16, 16], generator=gen) * 2 - 1)
        tensors[f"in.images.{channels}"] = images
        for ops in [(op,) for op in AUGMENT_OPS] + [AUGMENT_OPS]:
            pipe = augment_module.AugmentPipe(**{op: 1 for op in ops})
            for percentile in AUGMENT_PERCENTILES:
                name = f"{'+'.join(ops) if len(ops) == 1 else 'bgc'}.{channels}.{percentile}"
                with torch.no_grad():
                    tensors[f"out.{name}"] = pipe(images.clone(), debug_percentile=percentile)
                cases.append({"name": name, "ops": list(ops), "channels": channels, "percentile": percentile})
    return tensors, {"official": augment_module.__name__.replace(".", "/") + ".py", "cases": cases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True,
                        help="checkout of NVlabs/stylegan2-ada-pytorch, NVlabs/stylegan3, EzioBy/glead or genforce/eqgan-sa "
                             "(outside this repo)")
    parser.add_argument("--out", default="tests/parity/fixtures", help="folder to write (default tests/parity/fixtures)")
    parser.add_argument("--only", nargs="*", help="names to write (default all)")
    args = parser.parse_args()
    official = Path(args.official).resolve()
    sys.path.insert(0, str(official))
    if "generate_heatmap_multi" in (official / "training" / "networks.py").read_text():  # EqGAN-SA's fork
        from training import networks
        specs = EQGAN_NETWORKS
    elif (official / "training" / "networks_glead.py").is_file():  # GLeaD's fork of stylegan2-ada-pytorch
        from training import networks_glead as networks
        specs = GLEAD_NETWORKS
    elif (official / "training" / "networks_stylegan2.py").is_file():  # the StyleGAN3 repository
        from training import networks_stylegan2 as networks
        specs = STYLEGAN3_NETWORKS
    else:  # stylegan2-ada-pytorch
        from training import networks  # the official code, from the given checkout
        specs = NETWORKS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, spec) in enumerate(specs.items()):
        if args.only and name not in args.only:
            continue
        tensors, meta = make_fixture(networks, name, spec, seed=100 + seed)
        save_file(tensors, str(out / f"{name}.safetensors"))
        (out / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        size = (out / f"{name}.safetensors").stat().st_size
        print(f"{name}: {len(tensors)} tensors, {size / 1e6:.2f} MB")
    if specs is NETWORKS and (not args.only or "ada-augmentpipe" in args.only):
        from training import augment  # NVIDIA's ADA pipeline, from the given checkout

        tensors, meta = make_augment_fixture(augment)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "ada-augmentpipe.safetensors"))
        (out / "ada-augmentpipe.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        print(f"ada-augmentpipe: {len(meta['cases'])} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
