"""Triton kernels for gancore's ops (bias_act, upfirdn2d), registered through gancore_register_ops."""
