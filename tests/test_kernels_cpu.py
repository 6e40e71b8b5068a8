"""Parity of the fused CPU (numba) backend with the reference scan: outputs and every gradient.

The option grid is large (family x reset x detach x delay x binary x time_dependent x
decay_input x surrogate x dtype x shared/per-neuron x learnt x T x memory layout), so the
cases are a greedy *pairwise* cover of it: every pair of option values appears in at least
one case, which catches interactions between two options at a fraction of the product.
"""

from __future__ import annotations

import itertools
import random
import warnings
from typing import Any

import pytest
import torch

import spikekit as spk
from spikekit import kernels

pytest.importorskip("numba")
from spikekit.kernels import cpu


class UserSurrogate(spk.surrogate.ATan):
    """A user's subclass: the kernels do not know its ``grad`` and must call it (torch tiles)."""

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return super().grad(x) * (1 + 0.5 * torch.tanh(x))


SURROGATES = (
    spk.surrogate.ATan(),
    spk.surrogate.FastSigmoid(alpha=5.0),
    spk.surrogate.PiecewiseQuadratic(alpha=1.0),
    UserSurrogate(),
)

# Option axes per family; the product is covered pairwise below.
COMMON = {
    "dtype": (torch.float32, torch.float64),
    "per_neuron": (False, True),
    "learn": (False, True),
    "T": (1, 6, 37),  # 37: several membrane checkpoints of the IF/LIF backward, the last ragged
    "layout": ("contiguous", "strided"),
    "time_dependent": (True, False),
}
SPIKING = {
    "reset": ("hard", "soft", "none"),
    "detach_reset": (False, True),
    "binary": (True, False),
    "surrogate": SURROGATES,
}
AXES = {
    "if": {**COMMON, **SPIKING, "reset_delay": (False, True)},
    "lif": {**COMMON, **SPIKING, "reset_delay": (False, True), "decay_input": (True, False)},
    "cubalif": {**COMMON, **SPIKING, "reset_delay": (False, True), "decay_input": (True, False)},
    "alif": {**COMMON, **SPIKING, "decay_input": (True, False)},
    "li": {**COMMON, "decay_input": (True, False)},
}


def pairwise(axes: dict[str, tuple[Any, ...]], seed: int = 0, pool: int = 600) -> list[dict[str, Any]]:
    """A small set of combinations that contains every pair of values of every two axes."""
    rng = random.Random(seed)
    names = list(axes)
    todo = {
        ((a, i), (b, j))
        for a, b in itertools.combinations(names, 2)
        for i in range(len(axes[a]))
        for j in range(len(axes[b]))
    }
    cands = [{n: rng.randrange(len(axes[n])) for n in names} for _ in range(pool)]
    chosen = []
    while todo:
        best = max(cands, key=lambda c: sum(((a, c[a]), (b, c[b])) in todo for (a, _), (b, _) in todo))
        covered = {p for p in todo if best[p[0][0]] == p[0][1] and best[p[1][0]] == p[1][1]}
        if not covered:  # the pool missed a pair: add a combination made for it
            (a, i), (b, j) = next(iter(todo))
            best = {**cands[0], a: i, b: j}
            covered = {p for p in todo if best[p[0][0]] == p[0][1] and best[p[1][0]] == p[1][1]}
        todo -= covered
        chosen.append({n: axes[n][best[n]] for n in names})
    return chosen


CASES = [(fam, c) for fam, axes in AXES.items() for c in pairwise(axes, seed=len(fam))]

FEAT = 3  # features; per-neuron parameters have shape [FEAT]


def _vals(per_neuron: bool, base: float, spread: float) -> float | torch.Tensor:
    return torch.tensor([base - spread, base, base + spread]) if per_neuron else base


def assert_matches_reference(
    neuron: spk.Neuron, xs: torch.Tensor, loss: Any, spikes: bool = True
) -> torch.Tensor:
    """Run ``neuron`` on the reference and the numba backend: equal outputs (spikes exactly),
    close gradients of ``loss(out)`` w.r.t. the input and every parameter. Returns the output."""
    res = {}
    for backend in ("reference", "numba"):
        with kernels.use(backend):
            out = neuron(xs)
        res[backend] = (out, torch.autograd.grad(loss(out), [xs, *neuron.parameters()]))
    if spikes:
        assert torch.equal(res["reference"][0], res["numba"][0])
    for a, b in zip(res["numba"][1], res["reference"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    return res["numba"][0]


def make_neuron(fam: str, c: dict[str, Any]) -> spk.Neuron:
    cls = spk.get_neuron(fam)
    pn = c["per_neuron"]
    kw: dict[str, Any] = {"time_dependent": c["time_dependent"]}
    if fam != "li":
        kw.update(
            reset=c["reset"],
            detach_reset=c["detach_reset"],
            binary=c["binary"],
            surrogate=c["surrogate"],
            v_th=_vals(pn, 0.6, 0.2),
            v_reset=_vals(pn, -0.1, 0.05),
        )
        if "reset_delay" in c:
            kw["reset_delay"] = c["reset_delay"]
    if fam != "if":
        kw.update(beta=_vals(pn, 0.7, 0.15), v_leak=_vals(pn, 0.05, 0.05), decay_input=c["decay_input"])
    if fam in ("cubalif", "li"):
        kw.update(beta_syn=_vals(pn, 0.5, 0.2))
        if fam == "li":
            kw.pop("v_th", None)
    if fam == "alif":
        kw.update(rho=_vals(pn, 0.8, 0.1), adapt=_vals(pn, 0.4, 0.2))
    if c["learn"]:
        kw["learn"] = tuple(sorted(set(cls.learn_aliases) - {"tau", "tau_syn", "tau_adapt"}))
    return cls(**kw)


def _tensor(
    shape: tuple[int, ...], dtype: torch.dtype, layout: str, gen: torch.Generator, scale: float = 1.0
) -> torch.Tensor:
    if layout == "strided":  # every other element of the last dim: a non-contiguous view
        t = torch.randn(*shape[:-1], 2 * shape[-1], generator=gen, dtype=torch.float64)[..., ::2]
    else:
        t = torch.randn(*shape, generator=gen, dtype=torch.float64)
    return (t * scale).to(dtype)


def run_both(neuron: spk.Neuron, c: dict[str, Any], B: int = 2) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(1)
    dt, T, layout = c["dtype"], c["T"], c["layout"]
    xs = (_tensor((T, B, FEAT), dt, layout, gen) * 0.8 + 0.4).requires_grad_()
    state0 = type(neuron.initial_state(xs[0]))(
        *(_tensor((B, FEAT), dt, "contiguous", gen, 0.5).requires_grad_() for _ in neuron.state_type._fields)
    )
    w_out = _tensor((T, B, FEAT), dt, layout, gen)  # non-contiguous upstream gradient when strided
    w_state = [_tensor((B, FEAT), dt, "contiguous", gen) for _ in state0]
    params = list(neuron.parameters())
    res = {}
    for backend in ("reference", "numba"):
        with kernels.use(backend):
            out, state = neuron.scan(xs, state0)
        loss = (out * w_out).sum() + sum((s * w).sum() for s, w in zip(state, w_state, strict=True))
        grads = torch.autograd.grad(loss, [xs, *state0, *params], allow_unused=True)
        res[backend] = (out.detach(), [s.detach() for s in state], grads)
    return res


def check(res: dict[str, Any], fam: str, c: dict[str, Any]) -> None:
    (o_ref, s_ref, g_ref), (o_nb, s_nb, g_nb) = res["reference"], res["numba"]
    tol = {"rtol": 1e-4, "atol": 1e-5} if c["dtype"] == torch.float32 else {"rtol": 1e-9, "atol": 1e-11}
    if fam != "li" and c["binary"]:
        assert torch.equal(o_ref, o_nb), "spikes differ"
    else:
        torch.testing.assert_close(o_nb, o_ref, **tol)
    for a, b in zip(s_nb, s_ref, strict=True):
        torch.testing.assert_close(a, b, **tol)
    for i, (a, b) in enumerate(zip(g_nb, g_ref, strict=True)):
        if b is None:
            assert a is None or not a.any(), f"gradient {i}: reference has none, fused is nonzero"
            continue
        assert a is not None, f"gradient {i}: missing from the fused backward"
        torch.testing.assert_close(a, b, **tol, msg=lambda m, i=i: f"gradient {i}: {m}")


@pytest.mark.parametrize(("fam", "c"), CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CASES)])
def test_parity(fam: str, c: dict[str, Any]) -> None:
    neuron = make_neuron(fam, c)
    p, st, xs = (
        neuron.params(),
        neuron.initial_state(torch.zeros(2, FEAT, dtype=c["dtype"])),
        torch.zeros(c["T"], 2, FEAT, dtype=c["dtype"]),
    )
    assert kernels.select(neuron.family, xs, st, neuron._cast(p, xs), neuron.options) == "numba"
    check(run_both(neuron, c), fam, c)


def test_grid_is_pairwise_and_covers_every_value() -> None:
    for fam, axes in AXES.items():
        cases = [c for f, c in CASES if f == fam]
        for a, b in itertools.combinations(axes, 2):
            seen = {(repr(c[a]), repr(c[b])) for c in cases}
            assert len(seen) == len(axes[a]) * len(axes[b]), (fam, a, b)


@pytest.mark.parametrize("fam", ["if", "lif", "cubalif", "alif", "li"])
def test_parity_across_blocks_and_backward_chunks(fam: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many neurons (several parallel blocks, a ragged last one) and a backward split into
    2-row chunks (the delayed reset reads the previous chunk's surrogate)."""
    from spikekit.kernels import _numba_cpu

    B, F = 3, 401  # M = 1203 = 2 full blocks of 512 + 179
    monkeypatch.setattr(cpu, "_CHUNK_ELEMS", 2 * B * F)
    kw: dict[str, Any] = {} if fam == "li" else {"reset": "hard", "v_reset": -0.1, "v_th": 0.5}
    if fam in ("if", "lif", "cubalif"):
        kw["reset_delay"] = True
    cls = spk.get_neuron(fam)
    neuron = cls(
        **kw, shape=(F,), learn=tuple(sorted(set(cls.learn_aliases) - {"tau", "tau_syn", "tau_adapt"}))
    )
    assert B * F > 2 * _numba_cpu.BLOCK
    gen = torch.Generator().manual_seed(0)
    xs = (torch.randn(9, B, F, generator=gen) + 0.5).requires_grad_()
    w = torch.randn(9, B, F, generator=gen)
    out = assert_matches_reference(neuron, xs, lambda out: (out * w).sum(), spikes=fam != "li")
    if fam != "li":
        assert out.sum() > 0, "test input should make the neurons spike"


def test_used_by_default_on_cpu_and_matches_reference() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), spk.LIF(tau=3.0))
    xs = torch.rand(10, 2, 4)
    lif = net[1]
    st = lif.initial_state(torch.zeros(2, 5))
    assert kernels.select("lif", torch.zeros(10, 2, 5), st, lif.params(), lif.options) == "numba"
    out = net(xs)
    out.sum().backward()
    g = net[0].weight.grad.clone()
    net.zero_grad()
    with kernels.use("reference"):
        ref = net(xs)
        ref.sum().backward()
    assert torch.equal(out, ref)
    torch.testing.assert_close(g, net[0].weight.grad)


def test_no_grad_runs_without_saving() -> None:
    lif = spk.LIF()
    xs = torch.rand(5, 2, 3) * 2
    with torch.no_grad():
        out = lif(xs)
    assert out.grad_fn is None
    with kernels.use("reference"):
        assert torch.equal(out, lif(xs))


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        (torch.float16, {}),
        (torch.bfloat16, {}),
        (torch.float32, {"spiking": False}),
    ],
)
def test_declines_what_it_does_not_implement(dtype: torch.dtype, options: dict[str, Any]) -> None:
    lif = spk.LIF()
    spk.neurons._base.replace_options(lif, **options)
    xs = torch.rand(4, 2, 3, dtype=dtype)
    st = lif.initial_state(xs[0])
    assert not cpu.supports("lif", xs, st, lif._cast(lif.params(), xs), lif.options)
    assert kernels.select("lif", xs, st, lif._cast(lif.params(), xs), lif.options) == "reference"
    with pytest.raises(RuntimeError, match="forced but does not support"), kernels.use("numba"):
        lif(xs)


def test_declines_non_cpu_tensors() -> None:
    lif = spk.LIF()
    xs = torch.empty(4, 2, 3, device="meta")
    st = lif.initial_state(torch.zeros(2, 3))
    assert not cpu.supports("lif", xs, st, lif.params(), lif.options)


def test_load_failure_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """With numba unimportable the backend's load hook raises; the registry warns once and
    the reference runs."""
    import sys

    monkeypatch.setattr(cpu, "_kern", None)
    monkeypatch.setitem(sys.modules, "spikekit.kernels._numba_cpu", None)  # import -> ImportError
    b = kernels._BACKENDS["numba"]
    monkeypatch.setattr(b, "_status", "unloaded")
    lif = spk.LIF()
    xs = torch.rand(4, 2, 3) * 2
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out1 = lif(xs)
        out2 = lif(xs)
    assert len([x for x in w if "could not load" in str(x.message)]) == 1
    assert torch.equal(out1, out2)


@pytest.mark.parametrize("fam", ["if", "lif"])
@pytest.mark.parametrize("upstream", ["sum", "sum_over_time", "weighted_strided"])
@pytest.mark.parametrize("runner", ["openmp", "threads"])
def test_threaded_fast_path_matches_reference(
    fam: str, upstream: str, runner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IF/LIF fast path split into column chunks claimed by two threads (torch's OpenMP
    team, or Python threads when no OpenMP runtime is found), ragged chunks, T spanning
    several membrane checkpoints, and broadcast upstream gradients that are not materialised."""
    from spikekit.kernels import _numba_cpu

    monkeypatch.setattr(cpu, "_PAR_MIN_ELEMS", 0)
    monkeypatch.setattr(cpu, "_MIN_CHUNK_COLS", 64)  # 1203 columns: 2 ragged chunks (team), 8 (threads)
    calls: list[int] = []
    if runner == "threads":
        monkeypatch.setattr(cpu, "_omp", False)
        monkeypatch.setattr(cpu, "_pool", None)
    else:
        gomp = cpu._gomp_parallel()
        assert gomp, "torch's OpenMP runtime should be found on Linux"
        monkeypatch.setattr(
            cpu, "_omp", lambda fn, data, n, flags: calls.append(n) or gomp(fn, data, n, flags)
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cls = spk.get_neuron(fam)
        learn = ("v_th", "v_reset") if fam == "if" else ("beta", "v_th", "v_reset", "v_leak")
        neuron = cls(reset="hard", v_th=0.5, v_reset=-0.1, shape=(401,), learn=learn)
        gen = torch.Generator().manual_seed(0)
        T = 2 * _numba_cpu.CHECKPOINT + 5
        xs = (torch.randn(T, 3, 401, generator=gen) + 0.5).requires_grad_()
        w = torch.randn(T, 3, 802, generator=gen)[..., ::2]
        losses = {
            "sum": lambda out: out.sum(),
            "sum_over_time": lambda out: (out.sum(0) * w[0]).sum(),
            "weighted_strided": lambda out: (out * w).sum(),
        }
        assert_matches_reference(neuron, xs, losses[upstream])
        if runner == "openmp":
            assert calls == [2, 2], "forward and backward should each have run on a 2-thread team"
        else:
            assert cpu._pool is not None and cpu._pool_key[1] == 1
    finally:
        torch.set_num_threads(threads)


def test_user_surrogate_runs_on_small_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """A surrogate the kernels do not know keeps the stored-history path, evaluated by torch on
    tiles (here a few rows each, ragged in both dimensions)."""
    from spikekit.kernels import _numba_cpu

    assert _numba_cpu.surrogate_coefficients(UserSurrogate()) is None
    monkeypatch.setattr(cpu, "_TILE", 300)
    lif = spk.LIF(reset="soft", surrogate=UserSurrogate(), shape=(401,), learn=("beta", "v_th"))
    gen = torch.Generator().manual_seed(0)
    xs = (torch.randn(23, 3, 401, generator=gen) + 0.5).requires_grad_()
    w = torch.randn(23, 3, 401, generator=gen)
    assert_matches_reference(lif, xs, lambda out: (out * w).sum())


def _surrogate_instances() -> list[spk.surrogate.Surrogate]:
    out: list[spk.surrogate.Surrogate] = []
    for name in spk.surrogate.names():
        cls = getattr(spk.surrogate, name)
        out += [cls(), cls(alpha=0.37), cls(alpha=7.5)]
    return [*out, spk.surrogate.PiecewiseLeakyReLU(alpha=2.0, c=0.1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("s", _surrogate_instances(), ids=repr)
def test_surrogate_formulas_match_grad(s: spk.surrogate.Surrogate, dtype: torch.dtype) -> None:
    """The kernels' restatement of every built-in surrogate's derivative equals its ``grad``:
    a dense grid, the kinks of the piecewise ones exactly, zero and large magnitudes."""
    from spikekit.kernels import _numba_cpu

    cpu.load()
    found = _numba_cpu.surrogate_coefficients(s)
    assert found is not None, f"{type(s).__name__} has no kernel formula"
    kind, sp = cpu._surrogate_constants(s, dtype)
    a = s.alpha
    kinks = [1 / a, 1 / (2 * a), 1.0, 0.0]
    x = torch.cat(
        [
            torch.linspace(-4, 4, 4001, dtype=dtype),
            torch.tensor([k * sgn for k in kinks for sgn in (1, -1)], dtype=dtype),
            torch.tensor([1e-30, -1e-30, 50.0, -50.0, 1e4], dtype=dtype),
        ]
    ).reshape(1, -1)
    got = torch.empty_like(x)
    _numba_cpu.surrogate_grad(kind, sp.numpy(), x.numpy(), got.numpy())
    want = s.grad(x)
    tol = {"rtol": 1e-12, "atol": 1e-300} if dtype == torch.float64 else {"rtol": 4e-7, "atol": 1e-30}
    if isinstance(s, (spk.surrogate.Sigmoid, spk.surrogate.Erf, spk.surrogate.PiecewiseExp)):
        tol = {"rtol": 1e-12 if dtype == torch.float64 else 2e-6, "atol": 1e-37}  # exp: libm vs torch's
    torch.testing.assert_close(got, want, **tol)


def test_every_builtin_surrogate_has_a_kernel_formula() -> None:
    from spikekit.kernels import _numba_cpu

    assert sorted(_numba_cpu.SURROGATE_KINDS) == sorted(spk.surrogate.names())


def test_upstream_broadcasts_are_not_copied() -> None:
    """``out.sum()`` and a mean over time give expanded gradients: passed as a scalar / a row."""
    T, B, F = 5, 2, 3
    g = torch.ones(()).expand(T, B, F)
    go, go_t, scalar = cpu._upstream(g, T, B * F, torch.float32)
    assert (go.shape, go_t, scalar) == ((1, 1), 0, 1)
    row = torch.randn(B, F).expand(T, B, F)
    go, go_t, scalar = cpu._upstream(row, T, B * F, torch.float32)
    assert (go.shape, go_t, scalar) == ((1, B * F), 0, 0)
    assert torch.equal(go[0], row[0].reshape(-1))
    full = torch.randn(T, B, F)
    go, go_t, scalar = cpu._upstream(full, T, B * F, torch.float32)
    assert go.data_ptr() == full.data_ptr() and (go_t, scalar) == (1, 0)


def test_fast_path_across_column_blocks() -> None:
    """More neurons than one column block of the IF/LIF kernels (a ragged second), learnt
    per-neuron parameters, T spanning several membrane checkpoints, against the reference."""
    from spikekit.kernels import _numba_cpu

    B, F = 3, _numba_cpu.FAST_BLOCK // 3 + 40
    assert B * F > _numba_cpu.FAST_BLOCK
    lif = spk.LIF(reset="soft", shape=(F,), learn=("beta", "v_th", "v_leak"))
    gen = torch.Generator().manual_seed(0)
    T = 2 * _numba_cpu.CHECKPOINT + 3
    xs = (torch.randn(T, B, F, generator=gen) + 0.5).requires_grad_()
    w = torch.randn(T, B, F, generator=gen)
    assert_matches_reference(lif, xs, lambda out: (out * w).sum())


@pytest.mark.parametrize("reset", ["hard", "soft", "none"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_delayed_reset_takes_the_fast_path(
    reset: str, detach_reset: bool, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snntorch's default (``reset_delay=True``) runs the recomputing IF/LIF kernels with a
    built-in surrogate: per-neuron learnt parameters, T over several checkpoints, non-zero
    initial membrane (the first step's delayed reset reads it)."""
    from spikekit.kernels import _numba_cpu

    ran: list[str] = []
    real = cpu._run_columns
    monkeypatch.setattr(cpu, "_run_columns", lambda k, *a: ran.append(k) or real(k, *a))
    F = 37
    lif = spk.LIF(
        beta=torch.linspace(0.6, 0.95, F),
        v_th=torch.linspace(0.4, 0.8, F),
        v_reset=-0.1,
        reset=reset,
        reset_delay=True,
        detach_reset=detach_reset,
        decay_input=False,
        shape=(F,),
        learn=("beta", "v_th", "v_leak", *(("v_reset",) if reset == "hard" else ())),
        surrogate=spk.surrogate.FastSigmoid(alpha=5.0),
    ).to(dtype)
    gen = torch.Generator().manual_seed(1)
    T = 2 * _numba_cpu.CHECKPOINT + 7
    xs = (torch.randn(T, 4, F, generator=gen, dtype=dtype) * 0.8 + 0.4).requires_grad_()
    v0 = torch.rand(4, F, generator=gen, dtype=dtype)
    w = torch.randn(T, 4, F, generator=gen, dtype=dtype)
    res = {}
    for backend in ("reference", "numba"):
        with kernels.use(backend):
            out, st = lif.scan(xs, lif.initial_state(xs[0])._replace(v=v0))
        loss = (out * w).sum() + (st.v * w[0]).sum()
        res[backend] = (out, torch.autograd.grad(loss, [xs, *lif.parameters()]))
    assert ran == ["lif_forward", "lif_backward"]
    assert torch.equal(res["reference"][0], res["numba"][0]) and res["numba"][0].sum() > 0
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-10}
    for a, b in zip(res["numba"][1], res["reference"][1], strict=True):
        torch.testing.assert_close(a, b, **tol)
