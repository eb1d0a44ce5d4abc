"""gancore-stylegan2: the `stylegan2` backbone (StyleGAN2 generator and residual discriminator)."""

__version__ = "0.1.0"
