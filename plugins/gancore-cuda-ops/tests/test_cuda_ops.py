"""gancore-cuda-ops: registration and dispatch on the CPU; kernel parity in Triton's CPU interpreter;
the same parity on a GPU (marked ``gpu``)."""

import warnings

import pytest
import torch

from gancore import ops
from gancore.ops.bias_act import bias_act_ref
from gancore.ops.upfirdn2d import upfirdn2d_ref
from gancore.plugins import PluginManager
from gancore_cuda_ops import bias_act as bias_act_module
from gancore_cuda_ops import upfirdn2d as upfirdn2d_module
from gancore_cuda_ops.availability import unavailable_reason
from gancore_cuda_ops.bias_act import bias_act_triton
from gancore_cuda_ops.upfirdn2d import upfirdn2d_triton

triton = pytest.importorskip("triton")

CUDA = torch.cuda.is_available()


def _clear_kernels() -> None:
    bias_act_module._kernels.cache_clear()
    upfirdn2d_module._kernel.cache_clear()


@pytest.fixture
def interpreter(monkeypatch):
    """Run the Triton kernels in Triton's CPU interpreter for one test."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    _clear_kernels()
    yield torch.device("cpu")
    monkeypatch.delenv("TRITON_INTERPRET")
    _clear_kernels()


# -- registration and dispatch (CPU) --------------------------------------------------------------


def test_kernels_are_registered_above_the_reference():
    manager = PluginManager()
    for op in ("bias_act", "upfirdn2d"):
        best = manager.ops.implementations(op)[0]
        assert (best.name, best.owner, best.priority) == ("triton", "cuda_ops", 10)


def test_cpu_tensors_take_the_reference(monkeypatch):
    PluginManager()
    calls = []
    monkeypatch.setattr(bias_act_module, "bias_act_triton", lambda *a, **k: calls.append(1))
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(ops.bias_act(x, torch.zeros(3), act="lrelu"), bias_act_ref(x, torch.zeros(3), act="lrelu"))
    assert torch.equal(ops.bias_act(x, impl="triton"), bias_act_ref(x))
    assert not calls


@pytest.mark.skipif(CUDA, reason="checks the reason given where CUDA is missing")
def test_unavailable_without_cuda_says_why(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert unavailable_reason() == "no CUDA device"
    manager = PluginManager()
    from gancore.ops.dispatch import _available

    ok, why = _available("bias_act", "triton", manager.ops)
    assert not ok and "no CUDA device" in why


# -- parity in the interpreter (CPU) ---------------------------------------------------------------

BIAS_ACT_CASES = [
    dict(act="linear"),
    dict(act="relu"),
    dict(act="lrelu"),
    dict(act="lrelu", alpha=0.1, gain=0.5),
    dict(act="lrelu", clamp=0.7),
    dict(act="linear", gain=3.0, clamp=2.0),
]


@pytest.mark.parametrize("settings", BIAS_ACT_CASES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("shape, dim", [((3, 5, 7, 6), 1), ((4, 9), 1), ((2, 3, 11), 2), ((1, 1, 1, 1), 1)])
def test_bias_act_matches_the_reference(interpreter, settings, shape, dim):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    b = torch.randn(shape[dim], requires_grad=True)
    y = bias_act_triton(x, b, dim=dim, **settings)
    expected = bias_act_ref(x, b, dim=dim, **settings)
    assert torch.allclose(y, expected, atol=1e-6)
    g = torch.randn_like(y)
    gx, gb = torch.autograd.grad((y * g).sum(), [x, b], create_graph=True)
    ex, eb = torch.autograd.grad((expected * g).sum(), [x, b], create_graph=True)
    assert torch.allclose(gx, ex, atol=1e-5) and torch.allclose(gb, eb, atol=1e-4)


def test_bias_act_second_order_as_in_r1(interpreter):
    """R1 differentiates a gradient: d/dw ||d out / d x||² through the fused op must match the reference."""
    torch.manual_seed(1)
    w = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)

    def penalty(op):
        x = torch.randn(6, 3, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
        out = op(x @ w.t(), b, act="lrelu", clamp=3.0).sum()
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
        return torch.autograd.grad(grad.square().sum(), [w, b], allow_unused=True)

    for got, want in zip(penalty(bias_act_triton), penalty(bias_act_ref)):
        assert (got is None and want is None) or torch.allclose(got, want if want is not None else torch.zeros_like(got),
                                                                atol=1e-5)


def test_bias_act_falls_back_where_the_kernel_does_not_reach(interpreter):
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(bias_act_triton(x, act="tanh"), bias_act_ref(x, act="tanh"))
    assert torch.allclose(bias_act_triton(x.double(), act="relu"), bias_act_ref(x.double(), act="relu"))


UPFIRDN_CASES = [
    dict(),
    dict(up=2, padding=[2, 1, 2, 1]),
    dict(down=2, padding=1),
    dict(up=2, down=2, padding=[1, 2, 0, 3]),
    dict(padding=[-1, 2, 1, -2], flip_filter=True, gain=3.0),
    dict(up=(2, 1), down=(1, 2), padding=[1, 1, 2, 2]),
]


@pytest.mark.parametrize("settings", UPFIRDN_CASES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "plain")
@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 3, 4, 4, 3, 2, 1], [2.0]], ids=["4tap", "8tap-separable", "1tap"])
def test_upfirdn2d_matches_the_reference(interpreter, settings, taps):
    f = ops.setup_filter(taps)
    x = torch.randn(2, 3, 9, 11, requires_grad=True)
    try:
        expected = upfirdn2d_ref(x, f, **settings)
    except RuntimeError:
        pytest.skip("the reference cannot take a filter larger than the padded input")
    y = upfirdn2d_triton(x, f, **settings)
    assert y.shape == expected.shape and torch.allclose(y, expected, atol=1e-5)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad((y * g).sum(), x, create_graph=True)
    (ex,) = torch.autograd.grad((expected * g).sum(), x, create_graph=True)
    assert torch.allclose(gx, ex, atol=1e-5)


def test_upfirdn2d_double_backward_matches_the_reference(interpreter):
    f = ops.setup_filter([1, 3, 3, 1])
    w = torch.randn(3, 3, 1, 1, requires_grad=True)

    def penalty(op):
        x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
        feature = torch.nn.functional.conv2d(op(x, f, down=2, padding=1), w)
        out = op(feature.tanh(), f, up=2, padding=[2, 1, 2, 1]).square().sum()
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
        return torch.autograd.grad(grad.square().sum(), w)[0]

    assert torch.allclose(penalty(upfirdn2d_triton), penalty(upfirdn2d_ref), rtol=1e-4, atol=1e-5)


# -- parity on the GPU ------------------------------------------------------------------------------

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("settings", BIAS_ACT_CASES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_gpu_bias_act_parity(dtype, settings):
    torch.manual_seed(0)
    x = torch.randn(8, 64, 33, 31, device="cuda", dtype=dtype, requires_grad=True)
    b = torch.randn(64, device="cuda", dtype=dtype, requires_grad=True)
    y = ops.bias_act(x, b, impl="triton", **settings)
    expected = bias_act_ref(x.float(), b.float(), **settings)
    tol = TOLERANCE[dtype]
    assert torch.allclose(y.float(), expected, rtol=tol, atol=tol)
    g = torch.randn_like(expected)
    gx = torch.autograd.grad((y.float() * g).sum(), x)[0]
    ex = torch.autograd.grad((expected * g).sum(), x)[0]
    assert torch.allclose(gx.float(), ex, rtol=tol, atol=tol * 10)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("settings", UPFIRDN_CASES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "plain")
def test_gpu_upfirdn2d_parity(dtype, settings):
    f = ops.setup_filter([1, 3, 3, 1], device="cuda")
    x = torch.randn(4, 32, 33, 17, device="cuda", dtype=dtype, requires_grad=True)
    y = ops.upfirdn2d(x, f, impl="triton", **settings)
    expected = upfirdn2d_ref(x.float(), f, **settings)
    tol = TOLERANCE[dtype]
    assert torch.allclose(y.float(), expected, rtol=tol, atol=tol * 10)
    g = torch.randn_like(expected)
    gx = torch.autograd.grad((y.float() * g).sum(), x)[0]
    ex = torch.autograd.grad((expected * g).sum(), x)[0]
    assert torch.allclose(gx.float(), ex, rtol=tol, atol=tol * 10)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_gpu_double_backward_matches_the_reference():
    f = ops.setup_filter([1, 3, 3, 1], device="cuda")
    w = torch.randn(3, 3, 1, 1, device="cuda", requires_grad=True)

    def penalty(bias_act, upfirdn2d):
        x = torch.randn(2, 3, 17, 15, device="cuda", generator=torch.Generator("cuda").manual_seed(3)).requires_grad_(True)
        feature = torch.nn.functional.conv2d(upfirdn2d(x, f, down=2, padding=1), w)
        b = torch.zeros(3, device="cuda")
        out = upfirdn2d(bias_act(feature, b, act="lrelu"), f, up=2, padding=[2, 1, 2, 1]).square().sum()
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
        return torch.autograd.grad(grad.square().sum(), w)[0]

    expected = penalty(bias_act_ref, upfirdn2d_ref)
    assert torch.allclose(penalty(bias_act_triton, upfirdn2d_triton), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("precision,compile_", [("fp32", False), ("bf16", False), ("bf16", True)])
def test_gpu_training_with_the_kernels(precision, compile_):
    from gancore.run import Run
    from gancore.testing import make_tiny_config

    PluginManager()
    raw = make_tiny_config("stylegan2", steps=4, device="cuda", precision=precision, compile=compile_, d_reg_interval=2,
                           g_reg_interval=2, pl_weight=2.0)
    run = Run.build(raw).train()
    assert run.device.type == "cuda" and run.step == 4
    assert all(torch.isfinite(torch.tensor(v)) for k, v in run.last_stats.items() if k.startswith("Loss/"))


def test_no_warnings_on_import():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import importlib

        importlib.reload(bias_act_module)
