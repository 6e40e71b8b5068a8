"""PyTorch 2 entry points with the fused scan: torch.compile, torch.export, torch.func, ONNX, meta.

Two models: a time-first MLP ``Linear -> LIF -> Linear -> LI`` and ``digits_convnet``. Every
test runs the fused backend (numba on CPU) and checks that ``spikekit::fused_scan`` really
ran or is in the graph (one op per neuron, never an unrolled time loop), except ONNX, which
has no such op and gets the reference scan unrolled for the traced T.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import spikekit as spk
import spikekit.kernels.ops  # registers spikekit::fused_scan
from spikekit import kernels
from spikekit.neurons import LIF, Neuron, lif_step

pytest.importorskip("numba")

FUSED = "spikekit.fused_scan"
RTOL, ATOL = 1e-4, 1e-5


# ----------------------------------------------------------------------------- models
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), spk.LIF(learn=("beta", "v_th")), nn.Linear(16, 4), spk.LI())


def convnet() -> nn.Module:
    torch.manual_seed(0)
    return spk.create_model("digits_convnet", dropout=0.0, channels=(4, 8))


def mlp_input(T: int, B: int = 3) -> torch.Tensor:
    return torch.randn(T, B, 8, generator=torch.Generator().manual_seed(T))


def conv_input(T: int, B: int = 2) -> torch.Tensor:
    return torch.randn(T, B, 1, 8, 8, generator=torch.Generator().manual_seed(T))


MODELS = {"mlp": (mlp, mlp_input), "convnet": (convnet, conv_input)}


def n_neurons(model: nn.Module) -> int:
    return sum(isinstance(m, Neuron) for m in model.modules())


def fused_nodes(gm: torch.fx.GraphModule, name: str = FUSED) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and name in str(n.target))


def assert_not_unrolled(gm: torch.fx.GraphModule) -> None:
    targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
    assert not any("unbind" in t or "stack" in t for t in targets), sorted(targets)


class _CountFused(TorchDispatchMode):
    """Counts calls of the fused op that reach the kernels (below vmap/grad, on plain tensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.spikekit.fused_scan.default:
            self.calls += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def count_fused() -> Iterator[_CountFused]:
    with _CountFused() as c:
        yield c


def assert_grads_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=ATOL, msg=lambda m, k=k: f"{k}: {m}")


def autograd_grads(model: nn.Module, xs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    y = model(xs)
    y.square().mean().backward()
    return y.detach(), {k.removeprefix("_orig_mod."): p.grad.clone() for k, p in model.named_parameters()}


def test_models_use_the_fused_backend() -> None:
    for make, inp in MODELS.values():
        m = make()
        with count_fused() as c:
            m(inp(5))
        assert c.calls == n_neurons(m)


# ----------------------------------------------------------------------------- torch.compile
class _Recorder:
    """A backend that keeps the Dynamo graph, then compiles it with ``inner``."""

    def __init__(self, inner: str | Callable[..., Any]) -> None:
        self.inner = inner
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        self.graphs.append(gm)
        inner = torch._dynamo.lookup_backend(self.inner) if isinstance(self.inner, str) else self.inner
        return inner(gm, example_inputs)


def _aot_recorder() -> tuple[Any, list[torch.fx.GraphModule]]:
    """aot_eager that also keeps the forward and backward graphs AOTAutograd produced."""
    from torch._dynamo.backends.common import aot_autograd

    seen: list[torch.fx.GraphModule] = []

    def keep(gm: torch.fx.GraphModule, _: Any) -> Any:
        seen.append(gm)
        return gm.forward

    return aot_autograd(fw_compiler=keep, bw_compiler=keep), seen


def _check_compiled(name: str, inner: Any) -> list[torch.fx.GraphModule]:
    make, inp = MODELS[name]
    torch._dynamo.reset()
    rec = _Recorder(inner)
    eager, compiled = make(), make()
    compiled_fn = torch.compile(compiled, backend=rec, fullgraph=True)
    xs = inp(12)
    y, g = autograd_grads(eager, xs)
    yc, gc = autograd_grads(compiled_fn, xs)
    torch.testing.assert_close(yc, y, rtol=RTOL, atol=ATOL)
    assert_grads_equal(gc, g)
    # fullgraph=True already refuses graph breaks: exactly one graph, no break
    assert len(rec.graphs) == 1
    gm = rec.graphs[0]
    assert fused_nodes(gm) == n_neurons(eager)
    assert_not_unrolled(gm)
    return rec.graphs


def test_compile_mlp_inductor() -> None:
    _check_compiled("mlp", "inductor")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_compile_aot_graphs_hold_the_fused_ops(name: str) -> None:
    backend, aot_graphs = _aot_recorder()
    _check_compiled(name, backend)
    fw, bw = aot_graphs  # one forward, one backward graph
    n = n_neurons(MODELS[name][0]())
    assert fused_nodes(fw) == n
    assert fused_nodes(bw, "spikekit.fused_scan_backward") == n
    assert_not_unrolled(fw)


def test_compile_explain_one_graph_no_break() -> None:
    m = mlp()
    torch._dynamo.reset()
    ex = torch._dynamo.explain(m)(mlp_input(6))
    assert (ex.graph_count, ex.graph_break_count) == (1, 0), ex.break_reasons


# ----------------------------------------------------------------------------- torch.export
@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_dynamic_T(name: str) -> None:
    make, inp = MODELS[name]
    m = make().eval()
    T = torch.export.Dim("T", min=2, max=512)
    ep = torch.export.export(m, (inp(10),), dynamic_shapes=({0: T},))
    assert fused_nodes(ep.graph_module) == n_neurons(m)
    assert_not_unrolled(ep.graph_module)
    for steps in (3, 23):  # T values it was not traced with
        xs = inp(steps)
        torch.testing.assert_close(ep.module()(xs), m(xs), rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- torch.func
def _func_setup(name: str) -> tuple[nn.Module, torch.Tensor, dict[str, torch.Tensor], Callable[..., Any]]:
    from torch.func import functional_call

    make, inp = MODELS[name]
    m = make().eval()  # per-sample gradients need batch norm in eval mode
    params = {k: p.detach() for k, p in m.named_parameters()}
    buffers = dict(m.named_buffers())

    def loss(p: dict[str, torch.Tensor], xs: torch.Tensor) -> torch.Tensor:
        return functional_call(m, (p, buffers), (xs,)).square().mean()

    return m, inp(9, 3), params, loss


@pytest.mark.parametrize("name", sorted(MODELS))
def test_func_functional_call_and_grad(name: str) -> None:
    from torch.func import functional_call, grad

    m, xs, params, loss = _func_setup(name)
    with count_fused() as c:
        out = functional_call(m, params, (xs,))
        g = grad(loss)(params, xs)
    assert c.calls == 2 * n_neurons(m)
    y, g_ref = autograd_grads(m, xs)
    torch.testing.assert_close(out, y, rtol=RTOL, atol=ATOL)
    assert_grads_equal(g, g_ref)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_func_per_sample_grads(name: str) -> None:
    from torch.func import grad, vmap

    m, xs, params, loss = _func_setup(name)

    def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:  # x: [T, *features]
        return loss(p, x.unsqueeze(1))

    with count_fused() as c:
        per_sample = vmap(grad(one), in_dims=(None, 1))(params, xs)
    assert c.calls == n_neurons(m)  # one batched call per neuron, not one per sample
    for b in range(xs.shape[1]):
        assert_grads_equal({k: v[b] for k, v in per_sample.items()}, grad(one)(params, xs[:, b]))


@pytest.mark.parametrize("shape", [None, (16,)], ids=["scalar", "per-neuron"])
def test_func_vmap_over_an_ensemble_of_parameters(shape: tuple[int, ...] | None) -> None:
    """Batched neuron parameters (scalar and per-neuron) go to the kernel as per-column ones."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = []
    for i in range(3):
        torch.manual_seed(i)
        lif = spk.LIF(learn=("beta", "v_th"), **({"shape": shape} if shape else {}))
        models.append(nn.Sequential(nn.Linear(8, 16), lif, nn.Linear(16, 4), spk.LI(learn="beta")))
        with torch.no_grad():
            lif.beta_logit.add_(0.3 * i)
            lif.v_th.add_(0.1 * i)
    params, buffers = stack_module_state(models)
    base = models[0]
    xs = mlp_input(7, 5)

    def loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,)).square().mean()

    with count_fused() as c:
        out = vmap(lambda p, b: functional_call(base, (p, b), (xs,)))(params, buffers)
        g = vmap(grad(loss), in_dims=(0, 0, None))(params, buffers, xs)
    assert c.calls == 2 * 2  # two neurons, one batched call each, forward and grad
    for i, m in enumerate(models):
        y, g_ref = autograd_grads(m, xs)
        torch.testing.assert_close(out[i], y, rtol=RTOL, atol=ATOL)
        assert_grads_equal({k: v[i] for k, v in g.items()}, g_ref)


def test_func_first_trace_of_a_step_inside_grad() -> None:
    """A step traced for the first time under torch.func.grad traces as at top level."""
    from torch.func import functional_call, grad

    def fresh_step(x: Any, state: Any, params: Any, options: Any) -> Any:
        return lif_step(x, state, params, options)

    class FreshLIF(LIF):
        step_fn = staticmethod(fresh_step)

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 16), FreshLIF(learn="beta"))
    xs = mlp_input(5)
    params = {k: p.detach() for k, p in m.named_parameters()}
    with count_fused() as c:
        g = grad(lambda p: functional_call(m, p, (xs,)).sum())(params)
    assert c.calls == 1
    m.zero_grad()
    m(xs).sum().backward()
    assert_grads_equal(g, {k: p.grad for k, p in m.named_parameters()})


def test_func_spike_function() -> None:
    from torch.func import grad, vmap

    s = spk.surrogate.ATan()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(vmap(lambda r: spk.surrogate.spike(r, s))(x), (x >= 0).to(x.dtype))
    torch.testing.assert_close(grad(lambda r: spk.surrogate.spike(r, s).sum())(x[0]), s.grad(x[0]))
    per_row = vmap(grad(lambda r: (spk.surrogate.spike(r, s) * r).sum()))(x)
    xr = x.clone().requires_grad_()
    (spk.surrogate.spike(xr, s) * xr).sum().backward()
    torch.testing.assert_close(per_row, xr.grad)


# ----------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_onnx_export_unrolls_the_reference_scan(tmp_path: Any, dynamo: bool) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    m = mlp().eval()
    xs = mlp_input(6)
    path = tmp_path / "mlp.onnx"
    with count_fused() as c, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (xs,), str(path), dynamo=dynamo)
    assert c.calls == 0
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert not any("spikekit" in n.domain or "fused" in n.op_type for n in model.graph.node)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: xs.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), m(xs).detach(), rtol=RTOL, atol=ATOL)
    # outside the export the fused kernel is back
    lif = m[1]
    x1 = torch.zeros(3, 16)
    assert kernels.select(lif.step_fn, x1[None], lif.initial_state(x1), lif.params(), lif.options) == "numba"


def test_onnx_dynamic_T_raises_clearly(tmp_path: Any) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    path = tmp_path / "mlp.onnx"
    with pytest.raises(Exception, match=r"(?s)dynamic number of time steps.*spikekit::fused_scan"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                mlp(), (mlp_input(6),), str(path), dynamic_shapes=({0: torch.export.Dim("T")},), dynamo=True
            )
    assert not path.exists()


# ----------------------------------------------------------------------------- meta device
@pytest.mark.parametrize("name", sorted(MODELS))
def test_meta_device_then_to_empty_and_reset(name: str) -> None:
    make, inp = MODELS[name]
    with torch.device("meta"):
        m = make()
    assert all(t.is_meta for t in (*m.parameters(), *m.buffers()))
    m.to_empty(device="cpu")
    for sub in m.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
    ref = make()
    for (n_m, a), (n_r, b) in zip(m.named_modules(), ref.named_modules(), strict=True):
        assert n_m == n_r
        if isinstance(a, Neuron):
            ta = dict(a.named_parameters(recurse=False)) | dict(a.named_buffers(recurse=False))
            tb = dict(b.named_parameters(recurse=False)) | dict(b.named_buffers(recurse=False))
            assert ta.keys() == tb.keys() and ta
            for k in ta:
                assert torch.equal(ta[k], tb[k]), (n_m, k)
    xs = inp(4)
    with count_fused() as c:
        y = m(xs)
    assert c.calls == n_neurons(m)
    assert y.shape == ref(xs).shape and torch.isfinite(y).all()
