"""gancore-topk: top-k training (Sinha et al., NeurIPS 2020) as a gancore plugin."""

__version__ = "0.1.0"
