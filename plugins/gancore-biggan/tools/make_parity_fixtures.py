"""Parity fixtures for the biggan backbone, made with BigGAN-PyTorch's own code from a checkout you give.

    git clone https://github.com/ajbrock/BigGAN-PyTorch PATH/TO/BigGAN-PyTorch
    python tools/make_parity_fixtures.py PATH/TO/BigGAN-PyTorch tests/fixtures

For each case (small widths, so the files stay small) it builds the reference Generator and
Discriminator with a fixed seed, runs them on fixed latents, labels and images in eval mode and
once in train mode, and writes ``<case>.safetensors``: their state dicts (``G.*``, ``D.*``, their
names), the inputs, the outputs and the spectral-norm vectors after the train-mode pass. Numbers
only: none of the reference's code is copied. ``<case>.json`` holds the reference's settings.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

#: The reference's constructor settings for each case: BigGAN-PyTorch's CIFAR layout (per-class batch-norm
#: embeddings, N(0, 0.02) init) and its ImageNet layout (shared embedding, hierarchical z, attention, ortho init).
CASES = {
    "cifar32": {"G": {"G_ch": 4, "dim_z": 16, "resolution": 32, "G_attn": "0", "n_classes": 10, "G_shared": False,
                      "hier": False, "SN_eps": 1e-8, "G_init": "N02"},
                "D": {"D_ch": 4, "resolution": 32, "D_attn": "0", "n_classes": 10, "SN_eps": 1e-8, "D_init": "N02"},
                "channels": 3},
    "imagenet64": {"G": {"G_ch": 2, "dim_z": 20, "resolution": 64, "G_attn": "32", "n_classes": 5, "G_shared": True,
                         "shared_dim": 8, "hier": True, "SN_eps": 1e-6, "G_init": "ortho"},
                   "D": {"D_ch": 2, "resolution": 64, "D_attn": "8", "n_classes": 5, "SN_eps": 1e-6, "D_init": "ortho"},
                   "channels": 3},
}


def make(reference: Path, out: Path, batch: int = 4) -> None:
    """Write every case's fixture into ``out``."""
    from safetensors.torch import save_file

    sys.path.insert(0, str(reference))
    import BigGAN  # noqa: E402  (the user's checkout)

    out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        torch.manual_seed(0)
        G = BigGAN.Generator(**case["G"], no_optim=True)
        D = BigGAN.Discriminator(**case["D"])
        z = torch.randn(batch, G.dim_z)
        y = torch.arange(batch) % case["G"]["n_classes"]
        x = torch.rand(batch, case["channels"], case["G"]["resolution"], case["G"]["resolution"]) * 2 - 1
        tensors = {f"G.{k}": v.clone() for k, v in G.state_dict().items()}
        tensors.update({f"D.{k}": v.clone() for k, v in D.state_dict().items()})
        with torch.no_grad():
            G.eval(), D.eval()
            tensors["out.G_eval"] = G(z, G.shared(y))
            tensors["out.D_eval"] = D(x, y)
            G.train(), D.train()
            tensors["out.G_train"] = G(z, G.shared(y))
            tensors["out.D_train"] = D(x, y)
        tensors.update({f"after.G.{k}": v.clone() for k, v in G.state_dict().items() if k.endswith(("u0", "stored_mean"))})
        tensors.update({"in.z": z, "in.y": y, "in.x": x})
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / f"{name}.safetensors"))
        (out / f"{name}.json").write_text(json.dumps({k: v for k, v in case.items()}, indent=1) + "\n")
        print(f"wrote {out / name}.safetensors")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a checkout of ajbrock/BigGAN-PyTorch")
    parser.add_argument("out", type=Path, help="folder for the fixtures")
    args = parser.parse_args()
    make(args.reference, args.out)
