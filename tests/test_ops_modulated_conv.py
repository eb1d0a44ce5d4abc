"""conv2d_resample and modulated_conv2d against direct formulas, with first and second derivatives."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from gancore import ops
from gancore.ops.modulated_conv import conv2d_resample, modulated_conv2d

FIR = ops.setup_filter([1, 3, 3, 1])


def reference_resample(x, w, f, up=1, down=1, padding=0, groups=1, flip_weight=True):
    """The generic route: up-sample + pad + filter, one stride-1 conv, then filter + down-sample."""
    fw = f.shape[-1]
    p = [padding] * 4
    if up > 1:
        p = [p[0] + (fw + up - 1) // 2, p[1] + (fw - up) // 2, p[2] + (fw + up - 1) // 2, p[3] + (fw - up) // 2]
    if down > 1:
        p = [p[0] + (fw - down + 1) // 2, p[1] + (fw - down) // 2, p[2] + (fw - down + 1) // 2, p[3] + (fw - down) // 2]
    x = ops.upfirdn2d(x, f if up > 1 else None, up=up, padding=p, gain=up**2)
    x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=groups)
    return ops.upfirdn2d(x, f, down=down) if down > 1 else x


# -- conv2d_resample --------------------------------------------------------------------------------


@pytest.mark.parametrize("flip_weight", [True, False])
def test_plain_conv_matches_conv2d(flip_weight):
    x, w = torch.randn(2, 4, 7, 7), torch.randn(5, 4, 3, 3)
    out = conv2d_resample(x, w, padding=1, flip_weight=flip_weight)
    assert torch.allclose(out, F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=1), atol=1e-5)
    asym = conv2d_resample(x, w, padding=[1, 0, 2, 1])  # asymmetric padding takes the general route
    assert asym.shape == (2, 5, 8, 6)
    assert torch.allclose(asym, F.conv2d(F.pad(x, [1, 0, 2, 1]), w), atol=1e-5)


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("flip_weight", [True, False])
@pytest.mark.parametrize(("up", "down"), [(2, 1), (1, 2), (2, 2)])
def test_resampling_matches_the_generic_route(kernel, groups, flip_weight, up, down):
    torch.manual_seed(0)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(6, 4 // groups, kernel, kernel)
    padding = kernel // 2
    out = conv2d_resample(x, w, FIR, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight)
    assert out.shape == (2, 6, 8 * up // down, 8 * up // down)
    ref = reference_resample(x, w, FIR, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight)
    assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()


def test_identity_kernel_matches_upsample2d_and_downsample2d():
    x = torch.randn(2, 3, 8, 8)
    eye = torch.eye(3).reshape(3, 3, 1, 1)
    assert torch.allclose(conv2d_resample(x, eye, FIR, up=2), ops.upsample2d(x, FIR), atol=1e-5)
    assert torch.allclose(conv2d_resample(x, eye, FIR, down=2), ops.downsample2d(x, FIR), atol=1e-5)
    flat = torch.ones(1, 1, 8, 8)  # the up-sampling gain keeps the DC level in the interior
    up = conv2d_resample(flat, torch.ones(1, 1, 1, 1), FIR, up=2)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))


def test_conv2d_resample_rejects_bad_arguments():
    x, w = torch.randn(1, 2, 4, 4), torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match="up and down must be integers >= 1"):
        conv2d_resample(x, w, FIR, up=0)
    with pytest.raises(ValueError, match="4-D x and w"):
        conv2d_resample(x[0], w)


# -- modulated_conv2d -------------------------------------------------------------------------------


def per_sample_reference(x, weight, styles, demodulate, up=1, down=1, padding=1, flip_weight=True):
    """Loop over the batch: scale the weight by the sample's styles, normalise, convolve."""
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].view(1, -1, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        outs.append(conv2d_resample(x[n : n + 1], w, FIR, up=up, down=down, padding=padding, flip_weight=flip_weight))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(("up", "down"), [(1, 1), (2, 1), (1, 2)])
def test_modulated_conv_matches_per_sample_weights(demodulate, fused, up, down):
    torch.manual_seed(1)
    x, weight, styles = torch.randn(3, 4, 8, 8), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    out = modulated_conv2d(
        x, weight, styles, up=up, down=down, padding=1, resample_filter=FIR, demodulate=demodulate,
        flip_weight=up == 1, fused_modconv=fused,
    )
    assert out.shape == (3, 5, 8 * up // down, 8 * up // down)
    ref = per_sample_reference(x, weight, styles, demodulate, up=up, down=down, flip_weight=up == 1)
    assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_fused_equals_non_fused_with_noise(demodulate, up):
    torch.manual_seed(2)
    x, weight, styles = torch.randn(4, 6, 8, 8), torch.randn(3, 6, 3, 3), torch.randn(4, 6) + 1
    size = 8 * up
    for noise in (torch.randn(4, 1, size, size), torch.randn(size, size)):
        kw = dict(noise=noise, up=up, padding=1, resample_filter=FIR, demodulate=demodulate, flip_weight=up == 1)
        fused = modulated_conv2d(x, weight, styles, fused_modconv=True, **kw)
        separate = modulated_conv2d(x, weight, styles, fused_modconv=False, **kw)
        assert torch.allclose(fused, separate, atol=1e-4), (fused - separate).abs().max()
        plain = modulated_conv2d(x, weight, styles, fused_modconv=False, **{**kw, "noise": None})
        assert torch.allclose(separate - plain, noise.expand_as(plain), atol=1e-5)


def test_demodulation_gives_unit_norm_output_weights():
    """The effective per-sample weights (the Jacobian of a 1x1 output) have unit norm per output channel."""
    torch.manual_seed(3)
    n, c_in, c_out, k = 2, 3, 4, 3
    weight, styles = torch.randn(c_out, c_in, k, k), torch.rand(n, c_in) * 3
    x = torch.randn(n, c_in, k, k)
    for fused in (True, False):
        jac = torch.autograd.functional.jacobian(
            lambda inp: modulated_conv2d(inp, weight, styles, padding=0, fused_modconv=fused), x
        )  # [n, c_out, 1, 1, n, c_in, k, k]
        for i in range(n):
            w_eff = jac[i, :, 0, 0, i]  # [c_out, c_in, k, k]
            assert torch.allclose(w_eff.square().sum(dim=[1, 2, 3]), torch.ones(c_out), atol=1e-5)
            modulated = weight * styles[i].view(1, -1, 1, 1)
            expected = modulated / modulated.square().sum(dim=[1, 2, 3], keepdim=True).sqrt()
            assert torch.allclose(w_eff, expected, atol=1e-5)


def test_modulated_conv_rejects_bad_shapes():
    x, weight = torch.randn(2, 4, 8, 8), torch.randn(5, 4, 3, 3)
    with pytest.raises(ValueError, match=r"styles must be \[2, 4\], got \[2, 3\]"):
        modulated_conv2d(x, weight, torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"x must be \[N, 4, H, W\], got \[2, 3, 8, 8\]"):
        modulated_conv2d(torch.randn(2, 3, 8, 8), weight, torch.randn(2, 4))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(("up", "down"), [(1, 1), (2, 1), (1, 2)])
def test_gradcheck_and_double_backward(fused, up, down):
    """First and second derivatives (R1 and path length differentiate through gradients)."""
    torch.manual_seed(4)
    f = FIR.double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    styles = (torch.rand(2, 2, dtype=torch.float64) + 0.5).requires_grad_(True)
    noise = torch.randn(2, 1, 4 * up // down, 4 * up // down, dtype=torch.float64)

    def fn(x, weight, styles):
        return modulated_conv2d(
            x, weight, styles, noise=noise, up=up, down=down, padding=1, resample_filter=f,
            flip_weight=up == 1, fused_modconv=fused,
        )

    assert gradcheck(fn, (x, weight, styles))
    assert gradgradcheck(fn, (x, weight, styles))


def test_gradcheck_conv2d_resample_grouped_transposed():
    torch.manual_seed(5)
    f = FIR.double()
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: conv2d_resample(x, w, f, up=2, padding=1, groups=2, flip_weight=False)  # noqa: E731
    assert gradcheck(fn, (x, w))
    assert gradgradcheck(fn, (x, w))
