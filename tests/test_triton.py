"""The Triton kernels, checked without a GPU.

Triton's interpreter (``TRITON_INTERPRET=1``) runs the generated kernels on CPU tensors, with
numpy doing the arithmetic; ``kernels.use("triton")`` sends CPU tensors there. So every
registered neuron, with every option variant of the registry, runs through the very kernels
a GPU would run, against the reference scan: float32 and float64 inputs bit-for-bit in the
spikes and close in state and every gradient; bfloat16 and float16 inputs against the
reference in float32 on the same values (the kernels keep their state in float32 and round
once, on output). Every op a program may hold is checked against torch on ordinary and
special values. And every kernel is compiled ahead of time for a Hopper GPU (sm_90) with
Triton's own compiler, which catches what the interpreter does not (types of loop-carried
values, specialised arguments).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import pytest
import torch
from neuron_registry import CASES
from test_kernels import FEAT, KERNEL_CASES, _perturb, assert_parity

import spikekit as spk
from spikekit import kernels

pytest.importorskip("triton")


@pytest.fixture(autouse=True)
def _interpreted() -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.fail("tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported; it is not set")


def _cases() -> list[Any]:
    """Every merged registry case; the parameters shared or per neuron, learnt or not, and
    the dtype alternate over a neuron's cases so each neuron sees each of them."""
    out = []
    seen: dict[type, int] = {}
    for case in KERNEL_CASES:
        i = seen[case.cls] = seen.get(case.cls, -1) + 1
        per_neuron, learn = (False, True, True, False)[i % 4], i % 2 == 0
        dtype = (torch.float32, torch.float64)[(i // 2) % 2]
        tag = f"{str(dtype)[6:]}-{'pn' if per_neuron else 'sh'}{'-learn' if learn else ''}"
        out.append(pytest.param(case, dtype, per_neuron, learn, id=f"{case.id}-{tag}"))
    return out


def _make(case: Any, per_neuron: bool, learn: bool) -> spk.Neuron:
    extra: dict[str, Any] = {}
    if per_neuron:
        extra["shape"] = (FEAT,)
    if learn:
        extra["learn"] = case.learnable
    neuron = case.make(**extra)
    if per_neuron:
        _perturb(neuron, torch.Generator().manual_seed(3))
    return neuron


@pytest.mark.parametrize(("case", "dtype", "per_neuron", "learn"), _cases())
def test_parity(case: Any, dtype: torch.dtype, per_neuron: bool, learn: bool) -> None:
    # T = 20: two checkpoint segments, the second partial
    assert_parity(_make(case, per_neuron, learn), dtype, "triton", T=20)


def _rounded(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype).to(torch.float32)


def _cases_16bit() -> list[Any]:
    """bfloat16 for every case; float16 for each neuron's first."""
    out, first = [], set()
    for p in _cases():
        case, _, per_neuron, learn = p.values
        for dtype in (torch.bfloat16, torch.float16):
            if dtype == torch.float16 and case.cls in first:
                continue
            out.append(pytest.param(case, per_neuron, learn, dtype, id=f"{p.id}-{str(dtype)[6:]}"))
        first.add(case.cls)
    return out


@pytest.mark.parametrize(("case", "per_neuron", "learn", "dtype"), _cases_16bit())
def test_parity_16bit_inputs_against_the_float32_reference(
    case: Any, per_neuron: bool, learn: bool, dtype: torch.dtype
) -> None:
    neuron = _make(case, per_neuron, learn)
    step, opts = type(neuron).step_fn, neuron.options
    gen = torch.Generator().manual_seed(2)
    T, B = 20, 2
    feat = neuron.shape or (FEAT,)

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:  # values a 16-bit type holds exactly
        return _rounded(torch.randn(*shape, generator=gen) * scale, dtype)

    xs = rnd(T, B, *feat) * 0.8 + 0.4
    xs = _rounded(xs, dtype)
    fresh = neuron.initial_state(xs[0])
    state0 = type(fresh)(*(_rounded(f + rnd(B, *feat, scale=0.3), dtype) for f in fresh))
    params = type(neuron.params())(*(_rounded(p.detach(), dtype) for p in neuron.params()))
    w_out, w_state = rnd(T, B, *feat), [rnd(B, *feat) for _ in state0]

    def run(backend: str, dt: torch.dtype) -> tuple[torch.Tensor, list[torch.Tensor], list[Any]]:
        x = xs.to(dt).requires_grad_()
        st = type(state0)(*(s.to(dt).requires_grad_() for s in state0))
        ps = type(params)(*(p.to(dt).requires_grad_(learn) for p in params))
        with kernels.use(backend):
            out, fin = kernels.scan(step, x, st, ps, opts)
            loss = (out.float() * w_out).sum() + sum(
                (s.float() * w).sum() for s, w in zip(fin, w_state, strict=True)
            )
            wrt = [x, *st, *(p for p in ps if p.requires_grad)]
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)
        assert out.dtype == dt and all(s.dtype == dt for s in fin)
        return (
            out.detach().float(),
            [s.detach().float() for s in fin],
            [g if g is None else g.float() for g in grads],
        )

    got, ref = run("triton", dtype), run("reference", torch.float32)
    tol = {"rtol": 1e-2, "atol": 1e-2}
    binary = opts.surrogate is not None and opts.binary and opts.spiking
    if binary:
        assert torch.equal(got[0], ref[0]), "spikes differ"
    else:
        torch.testing.assert_close(got[0], _rounded(ref[0], dtype), **tol)
    for a, b in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(a, _rounded(b, dtype), **tol)
    for k, (a, b) in enumerate(zip(got[2], ref[2], strict=True)):
        if b is None:
            assert a is None or not a.any()
            continue
        assert a is not None, f"gradient {k} missing"
        # the reference sums learnt parameters' gradients in float32; ours are summed in
        # float32 too and rounded once to the parameter's dtype
        torch.testing.assert_close(
            a, _rounded(b, dtype), rtol=2e-2, atol=2e-2, msg=lambda m, k=k: f"grad {k}: {m}"
        )


# ----------------------------------------------------------------------------- every op
_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-7, -1e-7, 3.0, -3.0, 20.0, -20.0, 45.0, -45.0, 1e20]
_SPECIAL += [-1e20, math.inf, -math.inf, math.nan, 0.99, 1.01, -0.999, 7.5, 1e-30]

_TORCH_UNARY = {
    "neg": torch.neg,
    "exp": torch.exp,
    "expm1": torch.expm1,
    "log": torch.log,
    "log1p": torch.log1p,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "reciprocal": torch.reciprocal,
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "atan": torch.atan,
    "erf": torch.erf,
    "abs": torch.abs,
    "sign": torch.sign,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "pow2": lambda x: x**2,
    "pow3": lambda x: x**3,
    "pow4": lambda x: x**4,
    "copy": lambda x: x,
    "isnan": lambda x: torch.isnan(x).to(x.dtype),
    "not": lambda x: (~(x > 0)).to(x.dtype),
    "to_bool": lambda x: (x != 0).to(x.dtype),
}
_TORCH_BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "max": torch.maximum,
    "min": torch.minimum,
    "pow": torch.pow,
    "atan2": torch.atan2,
    **{c: getattr(torch, c) for c in ("ge", "gt", "le", "lt", "eq", "ne")},
    "and": lambda a, b: (a > 0) & (b > 0),
    "or": lambda a, b: (a > 0) | (b > 0),
    "where": lambda a, b: torch.where(a > 0, a, b),
}


def _op_graphs(op: str) -> Any:
    """A step whose output is ``op`` of the input and the (unchanged) state."""
    from spikekit.kernels.graph import Program, StepGraphs

    kinds = {"x": "f", "s0": "f", "t1": "f", "t2": "f", "t3": "f", "t4": "f"}
    gt = [("t1", "gt", ("x", ("c", 0))), ("t2", "gt", ("s0", ("c", 0)))]
    if op in ("not",):
        body = [gt[0], ("t3", op, ("t1",)), ("t4", "to_float", ("t3",))]
    elif op in ("and", "or"):
        body = [*gt, ("t3", op, ("t1", "t2")), ("t4", "to_float", ("t3",))]
    elif op == "where":
        body = [gt[0], ("t4", "where", ("t1", "x", "s0"))]
    elif op in ("isnan", "to_bool"):
        body = [("t3", op, ("x",)), ("t4", "to_float", ("t3",))]
    elif op in ("ge", "gt", "le", "lt", "eq", "ne"):
        body = [("t3", op, ("x", "s0")), ("t4", "to_float", ("t3",))]
    elif op in _TORCH_BINARY:
        body = [("t4", op, ("x", "s0"))]
    else:
        body = [("t4", op, ("x",))]
    for name, o, _ in body:
        if o in ("gt", "ge", "le", "lt", "eq", "ne", "not", "and", "or", "isnan", "to_bool"):
            kinds[name] = "b"
    kk = tuple(sorted((k, v) for k, v in kinds.items() if k in {"x", "s0"} | {b[0] for b in body}))
    fwd = Program(("x", "s0"), tuple(body), ("t4", "s0"), kk)
    keep = Program(("x", "s0"), (), ("s0",), (("s0", "f"), ("x", "f")))
    bwd = Program(
        ("x", "s0", "gout", "gs0"),
        (),
        (("c", 0), "gs0"),
        (("gout", "f"), ("gs0", "f"), ("s0", "f"), ("x", "f")),
    )
    return StepGraphs(fwd, keep, bwd, bwd, (0.0, 1.0), 1, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op", sorted({*_TORCH_UNARY, *_TORCH_BINARY}))
def test_every_op_matches_torch_on_special_values(op: str, dtype: torch.dtype) -> None:
    from spikekit.kernels import graph, triton_gpu

    assert {*_TORCH_UNARY, *_TORCH_BINARY, "to_float"} == set(graph.OPS), "an op without a check here"
    g = _op_graphs(op)
    vals = torch.tensor(_SPECIAL, dtype=dtype)
    a, b = torch.meshgrid(vals, vals, indexing="ij") if op in _TORCH_BINARY else (vals, vals)
    a, b = a.reshape(1, -1).contiguous(), b.reshape(1, -1).contiguous()
    out = torch.empty_like(a)
    s = b.clone()
    c = torch.tensor(g.constants, dtype=dtype)
    p = torch.empty(0, 1, dtype=dtype)
    triton_gpu.run_forward(g, a, s, p, c, out, torch.empty(0, 1, a.shape[1], dtype=dtype), 16)
    fn = _TORCH_UNARY.get(op)
    want = fn(a) if fn is not None else _TORCH_BINARY[op](a, b)
    want = want.to(dtype)
    eps = torch.finfo(dtype).eps * (32 if op == "pow" and dtype == torch.float64 else 1)
    # a few ulp; where the reference is huge, relative error only
    torch.testing.assert_close(out, want, rtol=8 * eps, atol=8 * torch.finfo(dtype).tiny, equal_nan=True)
    torch.testing.assert_close(s, b, rtol=0, atol=0, equal_nan=True, msg="the state must come back unchanged")


@pytest.mark.parametrize("op", ["max", "min", "relu", "sign"])
def test_the_cpu_printer_treats_nan_as_torch_does(op: str) -> None:
    """The ops where Python's and numpy's NaN rules differ from torch's, through the numba
    printer (the Triton printer's are checked above for every op)."""
    pytest.importorskip("numba")
    from spikekit.kernels import numba_cpu

    g = _op_graphs(op)
    vals = torch.tensor([math.nan, 1.0, -1.0, 0.0], dtype=torch.float64)
    a, b = torch.meshgrid(vals, vals, indexing="ij") if op in _TORCH_BINARY else (vals, vals)
    a, b = a.reshape(1, -1).contiguous(), b.reshape(1, -1).contiguous()
    out = torch.empty_like(a)
    c = torch.tensor(g.constants, dtype=a.dtype)
    ck = torch.empty(0, 1, a.shape[1], dtype=a.dtype)
    numba_cpu.run_forward(g, a, b.clone(), torch.empty(0, 1, dtype=a.dtype), c, out, ck, 16)
    fn = _TORCH_UNARY.get(op)
    want = fn(a) if fn is not None else _TORCH_BINARY[op](a, b)
    torch.testing.assert_close(out, want, rtol=0, atol=0, equal_nan=True)


# ----------------------------------------------------------------------------- compiled for a GPU
def _compile_for_gpu(g: Any, io: str, name: str, ct: str = "*fp32", **consts: Any) -> None:
    """Compile one generated kernel for sm_90 with Triton's own compiler (no GPU needed):
    ``io`` the input/output pointer type, ``ct`` that of the state and the rest."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from spikekit.kernels import triton_gpu

    fn = getattr(triton_gpu.module_for(g), name)
    ptr = {"xs": io, "out": io, "gx": io, "go": io}
    sig = {}
    for a in fn.arg_names:
        if a in ("SAVE", "BLOCK") or a in consts:
            sig[a] = "constexpr"
        elif a in ("T", "M", "PER", "K", "go_st", "go_sm"):
            sig[a] = "i32"
        else:
            sig[a] = ptr.get(a, ct)
    consts = {"BLOCK": 128, **({"SAVE": True} if name == "forward" else {}), **consts}
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", 90, 32))
    assert k.asm.get("cubin"), f"{name}: no machine code"


def compile_every_neuron_for_a_gpu() -> None:
    """Run in a process without the interpreter (see the test below)."""
    from spikekit.kernels.ops import spec_for

    for name in spk.list_neurons():
        cls = spk.get_neuron(name)
        neuron = cls(learn=next(c.learnable for c in CASES if c.cls is cls))
        st = neuron.initial_state(torch.zeros(1, 2))
        g = spec_for(cls.step_fn, neuron.options, type(st), type(neuron.params())).graphs()
        _compile_for_gpu(g, "*bf16", "forward", T=1, PER=1)
        _compile_for_gpu(g, "*bf16", "backward", go_sm=0)
        _compile_for_gpu(g, "*fp32", "backward_no_params", go_sm=1, PER=1)
        print("compiled", name, flush=True)
    for op in sorted({*_TORCH_UNARY, *_TORCH_BINARY}):  # every op, in both compute precisions
        _compile_for_gpu(_op_graphs(op), "*fp32", "forward")
        _compile_for_gpu(_op_graphs(op), "*fp64", "forward", ct="*fp64")
    print("compiled every op", flush=True)


def test_every_kernel_compiles_for_a_hopper_gpu() -> None:
    """Triton's compiler (to sm_90 machine code, no GPU needed) checks what its interpreter
    does not: the types of loop-carried values, arguments specialised as constants (T or
    PER equal to 1, a broadcast gout's stride 0). bfloat16 in and out with float32 state, as
    autocast training runs it; and the program of every single op in float32 and float64 (the
    helpers of ``_triton_rt``). In a subprocess: this process runs Triton interpreted."""
    import subprocess
    import sys

    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = "import test_triton; test_triton.compile_every_neuron_for_a_gpu()"
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=os.path.dirname(__file__),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("compiled") == len(spk.list_neurons()) + 1, res.stdout


# ----------------------------------------------------------------------------- dispatch
def test_forced_on_cpu_without_the_interpreter_says_how_to_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET")
    lif = spk.LIF()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"), kernels.use("triton"):
        lif(torch.rand(4, 2, 3))


def test_cpu_tensors_run_numba_unless_triton_is_asked_for() -> None:
    lif = spk.LIF()
    xs = torch.rand(4, 2, 3)
    st, p = lif.initial_state(xs[0]), lif.params()
    assert kernels.select(spk.neurons.lif_step, xs, st, p, lif.options) == "numba"
    with kernels.use("triton"):
        assert kernels.select(spk.neurons.lif_step, xs, st, p, lif.options) == "triton"
    for dt in (torch.bfloat16, torch.float16):  # numba declines these; the reference runs them
        x16 = xs.to(dt)
        st16, p16 = type(st)(*(t.to(dt) for t in st)), type(p)(*(t.to(dt) for t in p))
        assert kernels.explain(spk.neurons.lif_step, x16, st16, p16, lif.options).startswith(
            "reference (dtype"
        )
        with kernels.use("triton"):
            assert kernels.select(spk.neurons.lif_step, x16, st16, p16, lif.options) == "triton"


def test_a_forward_on_triton_is_differentiated_by_numba_alike() -> None:
    """The checkpoint layout is the op's, not a backend's: a forward run by one backend can
    be differentiated by another (here the backward runs outside the ``use`` block)."""
    lif = spk.ALIF(tau=3.0, learn=("tau",))
    xs = (torch.rand(21, 2, 5, dtype=torch.float64) * 2).requires_grad_()
    with kernels.use("triton"):
        out = lif.to(torch.float64)(xs)
    w = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view(out.shape)
    got = torch.autograd.grad((out * w).sum(), [xs, *lif.parameters()])
    with kernels.use("reference"):
        ref_out = lif(xs)
    ref = torch.autograd.grad((ref_out * w).sum(), [xs, *lif.parameters()])
    assert torch.equal(out, ref_out)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_a_step_that_cannot_be_fused_runs_on_the_reference_with_one_warning() -> None:
    def cumulative_step(x: Any, state: Any, params: Any, options: Any) -> Any:
        return spk.neurons.lif_step(x.cumsum(-1), state, params, options)  # mixes neurons

    class Odd(spk.LIF):
        step_fn = staticmethod(cumulative_step)

    n = Odd()
    xs = torch.rand(4, 2, 3)
    with kernels.use("reference"):
        ref = n(xs)
    with warnings.catch_warnings(record=True) as w:  # on CPU the backend is numba, on CUDA triton
        warnings.simplefilter("always")
        out1, out2 = n(xs), n(xs)
    msgs = [str(x.message) for x in w if "reference scan" in str(x.message)]
    assert len(msgs) == 1 and "cumsum" in msgs[0] and "cumulative_step" in msgs[0], msgs
    assert torch.equal(out1, ref) and torch.equal(out2, ref)


def test_the_interpreter_is_what_these_tests_ran() -> None:
    from spikekit.kernels import triton_gpu

    assert os.environ.get("TRITON_INTERPRET") == "1" and triton_gpu.interpreting()
    from spikekit.kernels.ops import spec_for

    lif = spk.LIF()
    st = lif.initial_state(torch.zeros(2, 3))
    mod = triton_gpu.module_for(
        spec_for(spk.neurons.lif_step, lif.options, type(st), type(lif.params())).graphs()
    )
    assert type(mod.forward).__name__ == "InterpretedFunction"


def test_an_exported_program_runs_the_triton_kernels_forward_and_backward() -> None:
    """``torch.export`` keeps ``spikekit::fused_scan`` as one op whichever backend runs it:
    the exported program runs the Triton kernels (here interpreted) and trains like eager."""
    from test_pt2 import fused_nodes

    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Linear(4, 6), spk.LIF(tau=2.0), torch.nn.Linear(6, 3), spk.ALIF(v_th=0.3)
    )
    T = torch.export.Dim("T", min=2, max=64)
    ep = torch.export.export(m, (torch.randn(5, 2, 4),), dynamic_shapes=({0: T},))
    assert fused_nodes(ep.graph_module) == 2
    xs = torch.randn(19, 2, 4)
    exported = ep.module()
    with kernels.use("triton"):
        got = exported(xs)
        g_got = torch.autograd.grad(got.sum(), list(exported.parameters()))
    with kernels.use("reference"):
        ref = m(xs)
        g_ref = torch.autograd.grad(ref.sum(), list(m.parameters()))
    assert torch.equal(got, ref)
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
