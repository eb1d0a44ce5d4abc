"""Reference ops against direct formulas, their first and second derivatives, and the dispatcher."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from gancore import ops
from gancore.ops import REGISTRY, OpUnavailableError, setup_filter
from gancore.ops.dispatch import choose
from gancore.ops.upfirdn2d import upfirdn2d_ref

# -- bias_act ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("act, expected", [
    ("linear", lambda y: y),
    ("relu", lambda y: torch.relu(y) * math.sqrt(2)),
    ("lrelu", lambda y: torch.where(y >= 0, y, 0.2 * y) * math.sqrt(2)),
    ("tanh", torch.tanh),
    ("sigmoid", torch.sigmoid),
])
def test_bias_act_matches_the_formula(act, expected):
    x = torch.randn(2, 5, 3, 3)
    b = torch.randn(5)
    assert torch.allclose(ops.bias_act(x, b, act=act), expected(x + b.view(1, 5, 1, 1)), atol=1e-6)


def test_bias_act_options():
    x = torch.randn(4, 6) * 10
    b = torch.randn(4)
    out = ops.bias_act(x, b, dim=0, act="lrelu", alpha=0.1, gain=3.0, clamp=5.0)
    y = x + b[:, None]
    assert torch.allclose(out, (torch.where(y >= 0, y, 0.1 * y) * 3.0).clamp(-5, 5))
    assert out.abs().max() <= 5.0
    assert torch.equal(ops.bias_act(x), x)
    with pytest.raises(ValueError, match="unknown activation 'gelu2'"):
        ops.bias_act(x, act="gelu2")
    with pytest.raises(ValueError, match=r"bias must be \[6\]"):
        ops.bias_act(x, torch.zeros(5))


def test_bias_act_first_and_second_derivatives():
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    for act in ("linear", "lrelu", "tanh"):
        fn = lambda x, b: ops.bias_act(x, b, act=act, gain=1.5, clamp=2.0)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))


# -- upfirdn2d --------------------------------------------------------------------------------------


def naive_upfirdn2d(x, f, up, down, pad, gain=1.0):
    """Pixel by pixel: zero insertion, padding, true 2-D convolution, subsampling."""
    upx, upy = up
    x0, x1, y0, y1 = pad
    n, c, h, w = x.shape
    big = torch.zeros(n, c, h * upy, w * upx, dtype=x.dtype)
    big[:, :, ::upy, ::upx] = x
    padded = torch.zeros(n, c, h * upy + y0 + y1, w * upx + x0 + x1, dtype=x.dtype)
    padded[:, :, y0 : y0 + h * upy, x0 : x0 + w * upx] = big
    f2 = f if f.ndim == 2 else torch.outer(f, f)
    f2 = f2 * gain
    fh, fw = f2.shape
    out_h, out_w = padded.shape[2] - fh + 1, padded.shape[3] - fw + 1
    out = torch.zeros(n, c, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i : i + fh, j : j + fw]
            out[:, :, i, j] = (window * f2.flip(0, 1)).sum((2, 3))  # convolution: flipped taps
    return out[:, :, :: down[1], :: down[0]]


@pytest.mark.parametrize("up, down, pad", [((1, 1), (1, 1), (1, 2, 0, 1)), ((2, 2), (1, 1), (2, 1, 2, 1)),
                                           ((1, 1), (2, 2), (1, 1, 1, 1)), ((2, 1), (1, 2), (1, 0, 2, 0))])
def test_upfirdn2d_matches_the_naive_formula(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    f = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)  # asymmetric, 2x3
    expected = naive_upfirdn2d(x, f, up, down, pad, gain=2.0)
    got = ops.upfirdn2d(x, f, up=list(up), down=list(down), padding=list(pad), gain=2.0)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected)


def test_separable_filter_equals_its_outer_product():
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    separable = ops.upfirdn2d(x, taps / taps.sum(), up=2, padding=[2, 1, 2, 1])
    full = ops.upfirdn2d(x, torch.outer(taps, taps) / taps.sum() ** 2, up=2, padding=[2, 1, 2, 1])
    assert torch.allclose(separable, full)


def test_negative_padding_crops():
    x = torch.arange(25.0).view(1, 1, 5, 5)
    assert torch.equal(ops.upfirdn2d(x, None, padding=[-1, -2, -1, 0]), x[:, :, 1:, 1:3])


def test_resampling_helpers_against_simple_cases():
    x = torch.randn(2, 3, 8, 8)
    box = setup_filter([1, 1])
    assert torch.allclose(ops.upsample2d(x, box), F.interpolate(x, scale_factor=2, mode="nearest"), atol=1e-6)
    assert torch.allclose(ops.downsample2d(x, box), F.avg_pool2d(x, 2), atol=1e-6)
    assert torch.allclose(ops.filter2d(x, setup_filter([1])), x)
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and torch.isclose(f.sum(), torch.tensor(1.0))
    assert ops.upsample2d(x, f).shape == (2, 3, 16, 16)
    assert ops.downsample2d(x, f).shape == (2, 3, 4, 4)
    assert ops.filter2d(x, f).shape == (2, 3, 8, 8)
    constant = torch.ones(1, 1, 8, 8)
    assert torch.allclose(ops.upsample2d(constant, f)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))  # DC gain 1
    assert setup_filter([1] * 8).ndim == 1  # 8 taps or more stay separable


def test_upfirdn2d_first_and_second_derivatives():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).to(torch.float64)
    for kwargs in ({"up": 2, "padding": [2, 1, 2, 1]}, {"down": 2, "padding": 1}, {"padding": [1, 2, 0, 1]}):
        fn = lambda x: ops.upfirdn2d(x, f, **kwargs)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


def test_r1_style_gradient_of_gradient_through_the_ops():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(3, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    y = ops.bias_act(ops.downsample2d(x, f), w, act="lrelu").square().sum()
    (grad,) = torch.autograd.grad(y, x, create_graph=True)
    penalty = grad.square().sum()
    penalty.backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


# -- the dispatcher ---------------------------------------------------------------------------------


@pytest.fixture
def fake_kernels():
    """Two extra implementations of bias_act: one that runs, one that cannot load."""
    calls = []

    def fast(x, b=None, **kwargs):
        calls.append("fast")
        return ops.bias_act(x, b, impl="ref", **kwargs)

    def broken_available():
        raise OSError("libcuda.so not found")

    with REGISTRY.reference_only(("bias_act",)):  # installed kernel plugins step aside for these tests
        REGISTRY.register("bias_act", "fast", fast, priority=5, owner="test-kernels")
        REGISTRY.register("bias_act", "broken", fast, priority=10, available=broken_available, owner="test-kernels")
        try:
            yield calls
        finally:
            REGISTRY._impls["bias_act"].pop("fast")
            REGISTRY._impls["bias_act"].pop("broken")


def test_cpu_tensors_always_take_the_reference(fake_kernels):
    x = torch.randn(2, 3)
    for impl in ("auto", "ref", "fast", "broken"):
        ops.bias_act(x, impl=impl)
    assert fake_kernels == []


def test_auto_skips_what_cannot_load_with_one_warning(fake_kernels):
    x = torch.empty(2, 3, device="meta")  # not a CPU tensor: the dispatcher chooses by priority
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert choose("bias_act", "auto", x).__name__ == "fast"
        assert choose("bias_act", "auto", x).__name__ == "fast"
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "implementation 'broken' (from 'test-kernels') is not available (OSError: libcuda.so not found)" in messages[0]


def test_a_named_implementation_raises_instead(fake_kernels):
    x = torch.empty(2, 3, device="meta")
    with pytest.raises(OpUnavailableError, match="op 'bias_act': implementation 'broken' cannot run here"):
        choose("bias_act", "broken", x)
    with pytest.raises(KeyError, match="op 'bias_act' has no implementation 'nope'"):
        choose("bias_act", "nope", x)
    assert choose("bias_act", "ref", x) is REGISTRY.get("bias_act", "ref").function


def test_kernel_plugins_register_through_the_hook(register_plugin):
    from gancore import hookimpl
    from gancore.plugins import PluginManager

    class Kernels:
        name = "kernels"
        kind = "ops"

        @hookimpl
        def gancore_register_ops(self, register):
            register("upfirdn2d", "fake-kernel", upfirdn2d_ref,
                     priority=70, available=lambda: True)

    register_plugin(Kernels)
    try:
        PluginManager()
        PluginManager()  # a second manager registers the same kernels again without error
        impl = REGISTRY.get("upfirdn2d", "fake-kernel")
        assert (impl.owner, impl.priority) == ("kernels", 70)
        assert choose("upfirdn2d", "auto", torch.empty(1, 1, 2, 2, device="meta"), None) is impl.function
    finally:
        REGISTRY._impls["upfirdn2d"].pop("fake-kernel", None)


def test_a_crop_larger_than_the_image_made_up_by_padding_on_the_other_side():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    f = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    for up, down, pad in (((1, 1), (1, 1), (-5, 6, 0, 2)), ((2, 2), (1, 1), (-9, 11, 1, -2)), ((1, 1), (2, 1), (2, -1, -5, 7))):
        # The naive version takes positive pads; a crop of the input crops the valid convolution's output.
        x0, x1, y0, y1 = pad
        full = naive_upfirdn2d(x, torch.outer(f, f), up, (1, 1), tuple(max(p, 0) for p in pad))
        full = full[:, :, max(-y0, 0) : full.shape[2] - max(-y1, 0), max(-x0, 0) : full.shape[3] - max(-x1, 0)]
        expected = full[:, :, :: down[1], :: down[0]]
        got = ops.upfirdn2d(x, f, up=list(up), down=list(down), padding=list(pad))
        assert got.shape == expected.shape and torch.allclose(got, expected)
