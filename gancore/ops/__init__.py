"""Ops with pluggable implementations: pure-PyTorch references that kernel plugins can replace."""

from gancore.ops.bias_act import ACTIVATIONS
from gancore.ops.dispatch import OpUnavailableError
from gancore.ops.functions import bias_act, downsample2d, filter2d, upfirdn2d, upsample2d
from gancore.ops.modulated_conv import conv2d_resample, modulated_conv2d
from gancore.ops.registry import REGISTRY, OpImplementation, OpsRegistry
from gancore.ops.upfirdn2d import setup_filter

__all__ = [
    "ACTIVATIONS",
    "REGISTRY",
    "OpImplementation",
    "OpUnavailableError",
    "OpsRegistry",
    "bias_act",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "modulated_conv2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
