"""Parity of the fused kernels with the reference scan, driven by the neuron registry.

Every registered neuron, with every option variant of ``neuron_registry.CASES``, in float32
and float64, with shared and per-neuron parameters, learnt or not, runs through the reference
scan and through every fused backend: spikes equal, final state and every gradient (input,
initial state, each learnt parameter) close.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from neuron_registry import CASES, NeuronCase

import spikekit as spk
from spikekit import kernels

pytest.importorskip("numba")

FUSED = [b for b in kernels.backends() if b != "reference" and b != "triton"]
FEAT = 3
DTYPES = (torch.float32, torch.float64)


def _perturb(neuron: spk.Neuron, gen: torch.Generator) -> None:
    """Make per-neuron values differ (they start as copies of the scalar)."""
    with torch.no_grad():
        for t in (*neuron.parameters(), *neuron.buffers()):
            if t.ndim > 0:
                t.add_(0.03 * torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype))


def run(
    neuron: spk.Neuron, backend: str, xs: torch.Tensor, state0: Any, w_out: torch.Tensor, w_state: list[Any]
) -> tuple[torch.Tensor, list[torch.Tensor], tuple[Any, ...]]:
    params = list(neuron.parameters())
    with kernels.use(backend):  # the backward too: a backend's forward and backward are checked together
        out, state = neuron.scan(xs, state0)
        loss = (out * w_out).sum() + sum((s * w).sum() for s, w in zip(state, w_state, strict=True))
        grads = torch.autograd.grad(loss, [xs, *state0, *params], allow_unused=True)
    return out.detach(), [s.detach() for s in state], grads


def assert_parity(
    neuron: spk.Neuron,
    dtype: torch.dtype,
    backend: str,
    T: int = 37,
    B: int = 2,
    strided: bool = False,
    spikes_exact: bool = True,
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    feat = neuron.shape or (FEAT,)

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        if strided:  # every other element of the last dim: a non-contiguous view
            t = torch.randn(*shape[:-1], 2 * shape[-1], generator=gen, dtype=torch.float64)[..., ::2]
        else:
            t = torch.randn(*shape, generator=gen, dtype=torch.float64)
        return (t * scale).to(dtype)

    neuron = neuron.to(dtype)
    xs = (rnd(T, B, *feat) * 0.8 + 0.4).requires_grad_()
    fresh = neuron.initial_state(xs[0].detach())
    state0 = type(fresh)(*((f + rnd(B, *feat, scale=0.3)).detach().requires_grad_() for f in fresh))
    w_out = rnd(T, B, *feat)
    w_state = [rnd(B, *feat) for _ in state0]
    ref = run(neuron, "reference", xs, state0, w_out, w_state)
    got = run(neuron, backend, xs, state0, w_out, w_state)
    tol = {"rtol": 2e-4, "atol": 2e-5} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-10}
    o = neuron.options
    binary = o.surrogate is not None and o.binary and o.spiking
    if binary and spikes_exact:
        assert torch.equal(got[0], ref[0]), "spikes differ"
    else:
        torch.testing.assert_close(got[0], ref[0], **tol)
    for a, b in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, **tol)
    names = ["xs", *(f"state0.{f}" for f in fresh._fields), *(n for n, _ in neuron.named_parameters())]
    for name, a, b in zip(names, got[2], ref[2], strict=True):
        if b is None:
            assert a is None or not a.any(), f"d/d{name}: the reference has none, the fused kernel does"
            continue
        assert a is not None, f"d/d{name}: missing from the fused backward"
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"d/d{name}: {m}")
    return got[0]


def _merged_cases() -> list[NeuronCase]:
    """The registry's option variants of each neuron, merged where they do not conflict.

    Each registry case changes one or two options of a neuron's base; a kernel case takes
    several such changes at once (e.g. ``reset="soft", detach_reset=True`` with
    ``binary=False``), so every option value of every neuron is still run, in fewer kernels
    to compile (each new combination is a new kernel: 1-2 s of numba per dtype, cold).
    """
    by_cls: dict[type, list[NeuronCase]] = {}
    for c in CASES:
        by_cls.setdefault(c.cls, []).append(c)
    out = []
    for cases in by_cls.values():
        base = {k: v for k, v in cases[0].kwargs.items() if all(c.kwargs.get(k) == v for c in cases)}
        merged: list[dict[str, Any]] = []
        learnable: list[tuple[str, ...]] = []
        for c in cases:
            change = {k: v for k, v in c.kwargs.items() if base.get(k, object()) != v}
            fits = [
                i
                for i, m in enumerate(merged)
                if all(m.get(k, v) == v for k, v in change.items()) and set(learnable[i]) == set(c.learnable)
            ]
            if fits:
                i = min(fits, key=lambda i: len(merged[i]))
                merged[i].update(change)
            else:
                merged.append(dict(change))
                learnable.append(c.learnable)
        out += [
            NeuronCase(cases[0].cls, {**base, **m}, lrn) for m, lrn in zip(merged, learnable, strict=True)
        ]
    return out


KERNEL_CASES = _merged_cases()


def test_merged_cases_keep_every_option_value_of_every_neuron() -> None:
    for c in CASES:
        assert any(
            k.cls is c.cls and all(k.kwargs.get(a) == v for a, v in c.kwargs.items()) for k in KERNEL_CASES
        ) or all(
            any(k.cls is c.cls and k.kwargs.get(a) == v for k in KERNEL_CASES) for a, v in c.kwargs.items()
        ), c.id


def _grid() -> list[Any]:
    """Every (merged) registry case; dtype x shared/per-neuron x learnt covered per neuron.

    The full product would compile every case's kernels in both dtypes (numba compiles each
    dtype separately, 2-8 s per kernel on a cold cache), which alone took ~20 minutes of the
    CI budget; with ``SPIKEKIT_FULL_PARITY=1`` the full product runs.
    """
    import os

    full = os.environ.get("SPIKEKIT_FULL_PARITY") == "1"
    out = []
    seen: dict[type, int] = {}
    for case in KERNEL_CASES:
        i = seen[case.cls] = seen.get(case.cls, -1) + 1
        combos = [(d, pn) for d in DTYPES for pn in (False, True)]
        if not full:  # one (dtype, layout) per case: any 2 cases cover both dtypes and layouts
            combos = [(DTYPES[i % 2], (False, True, True, False)[i % 4])]
        for dtype, per_neuron in combos:
            learn = per_neuron == (dtype == torch.float64)  # both learnt and fixed in each dtype
            tag = f"{str(dtype)[6:]}-{'pn' if per_neuron else 'sh'}{'-learn' if learn else ''}"
            out.append(pytest.param(case, dtype, per_neuron, learn, id=f"{case.id}-{tag}"))
    return out


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize(("case", "dtype", "per_neuron", "learn"), _grid())
def test_parity(case: NeuronCase, dtype: torch.dtype, per_neuron: bool, learn: bool, backend: str) -> None:
    extra: dict[str, Any] = {}
    if per_neuron:
        extra["shape"] = (FEAT,)
    if learn:
        extra["learn"] = case.learnable
    neuron = case.make(**extra)
    if per_neuron:
        _perturb(neuron, torch.Generator().manual_seed(3))
    assert_parity(neuron, dtype, backend)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", spk.list_neurons())
def test_parity_threads_strided_broadcast_and_conv_shapes(name: str, backend: str) -> None:
    """Large enough for the column split over threads (torch's OpenMP team); a strided input;
    per-channel parameters of a conv layer (``shape=(C, 1, 1)``) broadcasting over space;
    the upstream gradient both a broadcast (``out.sum()``) and a full tensor; parameters
    learnt (the backward with parameter gradients) and fixed (the one without)."""
    case = next(c for c in CASES if c.cls is spk.get_neuron(name))
    gen = torch.Generator().manual_seed(0)
    xs = (torch.randn(20, 8, 4, 64, 80, generator=gen) + 0.5).requires_grad_()  # 20 x 163840 elements
    w = torch.randn(xs.shape, generator=gen)
    for learn in (case.learnable, ()):
        neuron = case.make(shape=(4, 1, 1), learn=learn)
        _perturb(neuron, torch.Generator().manual_seed(5))
        wrt = [xs, *neuron.parameters()]
        res = {}
        for b in ("reference", backend):
            with kernels.use(b):
                out = neuron(xs)
            g_sum = torch.autograd.grad(out.sum(), wrt, retain_graph=True)  # a broadcast upstream
            res[b] = (out, g_sum, torch.autograd.grad((out * w).sum(), wrt))
        torch.testing.assert_close(res[backend][0], res["reference"][0])
        for got, ref in zip(res[backend][1:], res["reference"][1:], strict=True):
            for a, b in zip(got, ref, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert_parity(case.make(), torch.float32, backend, T=5, strided=True)


@pytest.mark.parametrize("name", ["lif", "alif"])
def test_parameters_shared_per_feature_or_per_sample_reach_every_column(name: str) -> None:
    """The kernels read parameters as ``[nP, P]`` with column ``j`` at ``j % P``: one value
    (shared), one per feature (per-neuron), or one per column when a parameter also varies
    over the batch (possible through ``kernels.scan``)."""
    neuron = spk.get_neuron(name)()
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(7, 3, 4, 5, generator=gen, dtype=torch.float64) + 0.5
    st = neuron.to(torch.float64).initial_state(xs[0])
    p = neuron.params()
    first = p._fields[0]
    variants = {
        "shared": p,
        "per feature": p._replace(
            **{first: p[0] * (1 + 0.05 * torch.rand(4, 5, generator=gen, dtype=xs.dtype))}
        ),
        "per sample": p._replace(
            **{first: p[0] * (1 + 0.05 * torch.rand(3, 1, 1, generator=gen, dtype=xs.dtype))}
        ),
        "per sample and feature": p._replace(
            **{first: p[0] * (1 + 0.05 * torch.rand(3, 4, 5, generator=gen, dtype=xs.dtype))}
        ),
    }
    for tag, params in variants.items():
        res = {}
        for b in ("reference", "numba"):
            with kernels.use(b):
                res[b] = kernels.scan(type(neuron).step_fn, xs, st, params, neuron.options)
        assert torch.equal(res["numba"][0], res["reference"][0]), tag
        for a, b in zip(res["numba"][1], res["reference"][1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=tag)


def test_threads_without_openmp_run_on_python_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where torch's OpenMP runtime is not found, the column chunks run on Python threads:
    the same results as the reference."""
    from spikekit.kernels import numba_cpu

    monkeypatch.setattr(numba_cpu, "_omp", False)
    calls = []
    real = numba_cpu._pack
    monkeypatch.setattr(numba_cpu, "_pack", lambda *a: calls.append(1) or real(*a))
    neuron = spk.ALIF(learn=("tau", "v_th"))
    xs = (torch.randn(12, 4, 8192, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_()
    res = {}
    for b in ("reference", "numba"):
        with kernels.use(b):
            out = neuron(xs)
        res[b] = (out, torch.autograd.grad(out.sum(), [xs, *neuron.parameters()]))
    assert not calls, "the OpenMP path ran although it was switched off"
    torch.testing.assert_close(res["numba"][0], res["reference"][0])
    for a, b in zip(res["numba"][1], res["reference"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_exp_is_within_one_ulp_and_keeps_special_values(dtype: torch.dtype) -> None:
    """The generated kernels' own ``exp`` (vectorisable, unlike libm's): within 1 ulp of the
    exactly rounded value over the whole range, subnormal results close, inf/nan kept."""
    import numba
    import numpy as np

    from spikekit.kernels._numba_rt import vexp

    @numba.njit
    def apply(a, out):  # type: ignore[no-untyped-def]
        for j in range(a.shape[0]):
            out[j] = vexp(a[j])

    npdt = np.float32 if dtype == torch.float32 else np.float64
    info = np.finfo(npdt)
    hi = float(np.log(info.max))
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(-hi, hi, 200_000), rng.uniform(-4, 4, 200_000)]).astype(npdt)
    out = np.empty_like(a)
    apply(a, out)
    true = np.exp(a.astype(np.longdouble))
    normal = true > info.tiny
    ulp = np.abs(out[normal] - true[normal]) / np.spacing(true[normal].astype(npdt))
    assert ulp.max() <= 1.01, f"max error {ulp.max():.2f} ulp at x = {a[normal][ulp.argmax()]}"
    sub = np.linspace(np.log(float(info.smallest_subnormal)) + 0.5, np.log(float(info.tiny)), 1000).astype(
        npdt
    )
    got = np.empty_like(sub)
    apply(sub, got)
    np.testing.assert_allclose(got, np.exp(sub.astype(np.longdouble)).astype(npdt), rtol=1e-2)
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30, -1e30, hi + 1, -hi - 200], dtype=npdt)
    got = np.empty_like(special)
    apply(special, got)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, np.exp(special))


def test_large_outputs_reuse_memory_only_once_nothing_references_it() -> None:
    from spikekit.kernels import buffers

    shape = (64, 8192)  # 2 MB of float32, above buffers.MIN_BYTES
    a = buffers.empty(shape, torch.float32)
    a.fill_(1.0)
    ptr = a.data_ptr()
    view = a[3]
    saved = a.t()
    del a
    b = buffers.empty(shape, torch.float32)
    assert b.data_ptr() != ptr, "handed out while a view of it was alive"
    del view
    c = buffers.empty(shape, torch.float32)
    assert c.data_ptr() != ptr, "handed out while a transposed view was alive"
    del saved
    d = buffers.empty(shape, torch.float32)
    assert d.data_ptr() == ptr, "a free buffer was not reused"
    e = buffers.empty((shape[0] // 2, shape[1] * 2), torch.float32)  # same bytes, another shape
    assert e.shape == (32, 16384) and e.data_ptr() not in (ptr, b.data_ptr(), c.data_ptr())
    del b, c, d, e
    assert buffers.empty_cache() > 0
    small = buffers.empty((4, 4), torch.float64)
    assert small.shape == (4, 4) and small.dtype == torch.float64


def test_outputs_saved_for_backward_are_not_reused_before_the_backward() -> None:
    """A kernel output that autograd keeps (here the spikes, saved by the multiplication)
    must not be handed to the next call."""
    lif = spk.LIF()
    xs = (torch.randn(50, 4, 4096, generator=torch.Generator().manual_seed(0)) + 0.6).requires_grad_()
    y = lif(xs) * 2.0  # saves nothing of lif's output: the multiplier is a constant
    z = lif(xs)
    loss = (z * z).sum()  # saves z itself
    del z
    for _ in range(3):
        lif(xs + 1.0).sum().backward()  # more kernel calls that want buffers of the same size
    g = torch.autograd.grad(loss, xs)[0]
    with kernels.use("reference"):
        zr = lif(xs)
        gr = torch.autograd.grad((zr * zr).sum(), xs)[0]
    torch.testing.assert_close(g, gr, rtol=1e-4, atol=1e-4)
    assert y.shape == xs.shape


def test_plain_eager_and_the_custom_op_give_the_same_results() -> None:
    """Plain eager calls bypass the op's dispatch (``_EagerFusedScan``); everything else
    (compile, export, modes, subclasses) goes through ``spikekit::fused_scan``."""
    from spikekit.kernels import ops

    neuron = spk.CubaLIF(learn=("tau", "tau_syn"))
    xs = (torch.randn(30, 2, 5, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_()
    out = neuron(xs)
    assert type(out.grad_fn).__name__.startswith("_EagerFusedScan")
    g_eager = torch.autograd.grad((out * out).sum(), [xs, *neuron.parameters()])
    st = neuron.initial_state(xs[0])
    p = neuron.params()
    key = kernels._spec_key(type(neuron).step_fn, neuron.options, type(st), type(p))
    res = ops.fused_scan(key, xs, list(st), list(p), True)
    assert "fused_scan" in type(res[0].grad_fn).__name__ and not type(res[0].grad_fn).__name__.startswith(
        "_Eager"
    )
    torch.testing.assert_close(res[0], out, rtol=0, atol=0)
    g_op = torch.autograd.grad((res[0] * res[0]).sum(), [xs, *neuron.parameters()])
    for a, b in zip(g_eager, g_op, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class _UserSurrogate(spk.surrogate.ATan):
    """A user's surrogate: the kernel must use its ``grad``, not the parent's."""

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return super().grad(x) * (1 + 0.5 * torch.tanh(x))


@pytest.mark.parametrize("backend", FUSED)
def test_user_surrogate_gradient_comes_from_its_own_definition(backend: str) -> None:
    for dtype in DTYPES:
        assert_parity(spk.LIF(tau=3.0, v_th=0.6, surrogate=_UserSurrogate(), learn="tau"), dtype, backend)


def _lif_with_own_step() -> type[spk.LIF]:
    def doubled_step(x: Any, state: Any, params: Any, options: Any) -> Any:
        return spk.neurons.lif_step(2 * x, state, params, options)

    class MyLIF(spk.LIF):
        step_fn = staticmethod(doubled_step)

    return MyLIF


def test_a_subclass_with_its_own_step_never_runs_its_parents_kernel() -> None:
    """The issue's case: LIF's kernel for a subclass that overrides ``step_fn``."""
    MyLIF = _lif_with_own_step()
    xs = torch.full((6, 1, 1), 0.6)
    n = MyLIF(decay_input=False, beta=0.5)
    with kernels.use("reference"):
        ref = n(xs).flatten().tolist()
    fused = n(xs).flatten().tolist()
    parent = spk.LIF(decay_input=False, beta=0.5)(xs).flatten().tolist()
    assert fused == ref and fused != parent, (fused, ref, parent)
    st = n.initial_state(xs[0])
    assert kernels.select(MyLIF.step_fn, xs, st, n.params(), n.options) == "numba"


def test_a_step_the_generator_cannot_trace_runs_on_the_reference_with_the_reason() -> None:
    def cumulative_step(x: Any, state: Any, params: Any, options: Any) -> Any:
        # not elementwise: mixes the neurons of a sample
        return spk.neurons.lif_step(x.cumsum(-1), state, params, options)

    class Odd(spk.LIF):
        step_fn = staticmethod(cumulative_step)

    n = Odd()
    xs = torch.rand(4, 2, 3)
    st = n.initial_state(xs[0])
    why = kernels.explain(Odd.step_fn, xs, st, n.params(), n.options)
    assert why.startswith("reference (") and "cumsum" in why, why
    with kernels.use("reference"):
        ref = n(xs)
    assert torch.equal(n(xs), ref)
    with pytest.raises(RuntimeError, match="forced but does not support"), kernels.use("numba"):
        n(xs)


@pytest.mark.parametrize(
    ("dtype", "device"), [(torch.float16, "cpu"), (torch.bfloat16, "cpu"), (torch.float32, "meta")]
)
def test_declines_what_it_does_not_implement(dtype: torch.dtype, device: str) -> None:
    lif = spk.LIF()
    xs = torch.zeros(4, 2, 3, dtype=dtype, device=device)
    st = type(lif.initial_state(torch.zeros(2, 3)))(torch.zeros(2, 3, dtype=dtype, device=device))
    p = type(lif.params())(*(t.to(dtype=dtype, device=device) for t in lif.params()))
    assert kernels.select(spk.neurons.lif_step, xs, st, p, lif.options) == "reference"
    with pytest.raises(RuntimeError, match="forced but does not support"), kernels.use("numba"):
        kernels.select(spk.neurons.lif_step, xs, st, p, lif.options)


def test_relaxed_mode_is_fused_too() -> None:
    """``spiking=False`` is smooth dynamics: also elementwise, so also generated."""
    lif = spk.LIF(tau=3.0, learn="v_th")
    spk.neurons._base.replace_options(lif, spiking=False)
    assert_parity(lif, torch.float64, "numba")


def test_no_grad_runs_without_checkpoints_and_backward_without_them_fails_clearly() -> None:
    lif = spk.LIF()
    xs = torch.rand(5, 2, 3) * 2
    with torch.no_grad():
        out = lif(xs)
    assert out.grad_fn is None
    with kernels.use("reference"):
        assert torch.equal(out, lif(xs))
    from spikekit.kernels import ops

    st = lif.initial_state(xs[0])
    key = kernels._spec_key(spk.neurons.lif_step, lif.options, type(st), type(lif.params()))
    res = ops.fused_scan(key, xs, list(st), list(lif.params()), False)
    assert res[-1].numel() == 0
    with pytest.raises(RuntimeError, match="saved no checkpoints"):
        ops.fused_scan_backward(
            key, torch.ones_like(xs), [torch.zeros(2, 3)], xs, list(st), list(lif.params()), res[-1], False
        )


def test_load_failure_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "numba" else real(n, *a))
    b = kernels._BACKENDS["numba"]
    monkeypatch.setattr(b, "_status", "unloaded")
    lif = spk.LIF()
    xs = torch.rand(4, 2, 3) * 2
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out1 = lif(xs)
        out2 = lif(xs)
    msgs = [str(x.message) for x in w if "could not load" in str(x.message)]
    assert len(msgs) == 1 and "numba" in msgs[0], msgs
    with kernels.use("reference"):
        assert torch.equal(out1, lif(xs)) and torch.equal(out2, out1)


@pytest.mark.parametrize("name", spk.list_neurons())
def test_traced_graphs_survive_their_json_form(name: str) -> None:
    from spikekit.kernels import graph

    neuron = spk.get_neuron(name)()
    st = neuron.initial_state(torch.zeros(1, 2))
    g = graph.trace_step(type(neuron).step_fn, neuron.options, type(st), type(neuron.params()))
    back = graph.StepGraphs.from_json(g.to_json())
    assert back == g and back.key == g.key


def test_traced_graphs_of_spikekit_steps_are_cached_on_disk_and_users_are_not(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later process loads spikekit's own traced steps instead of tracing them again
    (tracing imports Dynamo: seconds); a user's step or surrogate is always traced, since its
    source can change without the cache key noticing."""
    from spikekit.kernels import graph, ops

    monkeypatch.setenv("SPIKEKIT_CACHE", str(tmp_path))
    traced = []
    real = graph.trace_step
    monkeypatch.setattr(ops, "trace_step", lambda *a, **k: traced.append(a[0]) or real(*a, **k))

    def fresh_spec(neuron: spk.Neuron) -> ops.Spec:
        st = neuron.initial_state(torch.zeros(1, 2))
        return ops.Spec("test", type(neuron).step_fn, neuron.options, type(st), type(neuron.params()))

    lif = spk.LIF(reset="soft")
    g1 = fresh_spec(lif).graphs()
    files = list((tmp_path / "graphs").glob("*.json"))
    assert len(traced) == 1 and len(files) == 1
    g2 = fresh_spec(lif).graphs()  # a new spec, as in a new process: read from disk
    assert len(traced) == 1 and g2 == g1
    fresh_spec(spk.LIF(reset="soft", surrogate=spk.surrogate.ATan(alpha=3.0))).graphs()
    assert len(traced) == 2, "other options (here a surrogate's alpha) must not share the file"
    files[0].write_text("{not json")  # a damaged file is traced again, not trusted
    assert fresh_spec(lif).graphs() == g1 and len(traced) == 3

    n_files = len(list((tmp_path / "graphs").glob("*.json")))
    for neuron in (spk.LIF(surrogate=_UserSurrogate()), _lif_with_own_step()()):
        fresh_spec(neuron).graphs()
        fresh_spec(neuron).graphs()
    assert len(traced) == 7 and len(list((tmp_path / "graphs").glob("*.json"))) == n_files


def test_generated_source_is_cached_on_disk_by_graph_hash(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spikekit.kernels import graph, numba_cpu

    monkeypatch.setenv("SPIKEKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(numba_cpu, "_LOADED", {})
    monkeypatch.setattr(numba_cpu, "_BY_GRAPH", {})
    g1 = graph.trace_step(
        spk.neurons.lif_step, spk.LIF().options, spk.neurons.LIFState, spk.neurons.LIFParams
    )
    # a different alpha changes only the constant table: same kernel
    g2 = graph.trace_step(
        spk.neurons.lif_step,
        spk.LIF(surrogate=spk.surrogate.ATan(alpha=5.0)).options,
        spk.neurons.LIFState,
        spk.neurons.LIFParams,
    )
    assert g1.key == g2.key and g1.constants != g2.constants
    k = numba_cpu.kernels_for(g1)
    files = list((tmp_path / "kernels").glob("step_*.py"))
    assert len(files) == 1 and "def forward" in files[0].read_text()
    assert numba_cpu.kernels_for(g2) is k
