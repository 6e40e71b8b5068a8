"""The GPU printer: a traced step (:mod:`spikekit.kernels.graph`) printed as Triton kernels.

The same programs the CPU printer (:mod:`spikekit.kernels.numba_cpu`) prints, with the same
arguments and layouts, so the two are interchangeable implementations of the custom ops in
:mod:`spikekit.kernels.ops` (a forward on one can be differentiated by the other):

* ``forward(xs, s, p, c, out, ck, T, M, PER, K, SAVE, BLOCK)``: one program per ``BLOCK``
  neuron columns, the loop over time inside; the state lives in registers in the compute
  dtype (float32 for float16/bfloat16 inputs, else the input's), the inputs and outputs are
  read and written in the input's dtype. With ``SAVE`` it stores the state every ``K``
  steps into ``ck`` (the checkpoints the backward restarts from).
* ``backward`` and ``backward_no_params(xs, p, c, ck, go, go_st, go_sm, gs, gx, gp, H, T, M,
  PER, K, BLOCK)``: reverse time over each segment of ``K`` steps: recompute the segment's
  states from its checkpoint into the scratch ``H`` ``[K, nS, M]`` (small: it stays in L2),
  then apply the traced vector-Jacobian product step by step, the state gradient and the
  parameter gradients carried in registers.

Arrays are the numba printer's: ``xs``/``out``/``gx`` ``[T, M]``, ``s``/``gs`` ``[nS, M]``,
``p`` ``[nP, PER]`` (column ``j`` reads ``p[:, j % PER]``), ``gp`` ``[nP, M]``, ``c`` the
constant table, ``go`` the upstream gradient read at ``t * go_st + j * go_sm``.

Everything is built from ``triton.language`` core ops (:mod:`spikekit.kernels._triton_rt`
for the rest), never ``libdevice``, so ``TRITON_INTERPRET=1`` runs exactly these kernels on
CPU tensors: that is how CI checks them against the reference without a GPU.
"""

from __future__ import annotations

import os
from typing import Any

from spikekit.kernels.codegen import load_module, render
from spikekit.kernels.graph import Program, StepGraphs

__all__ = ["print_source", "module_for", "run_forward", "run_backward", "interpreting"]

_VERSION = "1"  # bump when the printed code changes meaning

_NAN = "tl.PropagateNan.ALL"  # torch.maximum/minimum/relu propagate NaN; Triton's default does not
_TEMPLATES = {
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "_rt.div({0}, {1})",
    "neg": "(-{0})",
    "max": f"tl.maximum({{0}}, {{1}}, propagate_nan={_NAN})",
    "min": f"tl.minimum({{0}}, {{1}}, propagate_nan={_NAN})",
    "pow": "_rt.pow({0}, {1})",
    "pow2": "({0} * {0})",
    "pow3": "({0} * {0} * {0})",
    "pow4": "(({0} * {0}) * ({0} * {0}))",
    "atan2": "_rt.atan2({0}, {1})",
    "exp": "tl.exp({0})",
    "expm1": "_rt.expm1({0})",
    "log": "tl.log({0})",
    "log1p": "_rt.log1p({0})",
    "sqrt": "_rt.sqrt({0})",
    "rsqrt": "_rt.div(ONE, _rt.sqrt({0}))",
    "reciprocal": "_rt.div(ONE, {0})",
    "sin": "tl.sin({0})",
    "cos": "tl.cos({0})",
    "tanh": "_rt.tanh({0})",
    "atan": "_rt.atan({0})",
    "erf": "tl.erf({0})",
    "abs": "tl.abs({0})",
    "sign": "_rt.sign({0})",
    "sigmoid": "_rt.div(ONE, ONE + tl.exp(-{0}))",
    "relu": f"tl.maximum({{0}}, ZERO, propagate_nan={_NAN})",
    "isnan": "({0} != {0})",
    "not": "({0} == 0)",
    "and": "({0} & {1})",
    "or": "({0} | {1})",
    "ge": "({0} >= {1})",
    "gt": "({0} > {1})",
    "le": "({0} <= {1})",
    "lt": "({0} < {1})",
    "eq": "({0} == {1})",
    "ne": "({0} != {1})",
    "where": "tl.where({0}, {1}, {2})",
    "to_float": "{0}.to(CT)",
    "to_bool": "({0} != ZERO)",
    "copy": "{0}",
}


def _varying(prog: Program) -> set[str]:
    """Names whose value differs per column (everything derived from an input). The rest are
    computed from constants only: Triton scalars, which must be widened to a block before
    they are stored or carried through a loop (a loop-carried value keeps one type)."""
    out = set(prog.inputs)
    for name, _, args in prog.body:
        if any(isinstance(a, str) and a in out for a in args):
            out.add(name)
    return out


def _body(prog: Program, bind: dict[str, str], ind: str) -> tuple[list[str], list[str]]:
    """The program's statements over ``bind`` (input -> expression); returns the lines and
    the output expressions, each a ``[BLOCK]`` block."""
    lines, outs = render(prog, _TEMPLATES, bind, ind)
    varying = _varying(prog)
    blocks = [
        e if isinstance(o, str) and o in varying else f"({e} + ZB)"
        for o, e in zip(prog.outputs, outs, strict=True)
    ]
    return lines, blocks


def _prologue(g: StepGraphs) -> str:
    """Column offsets, the constant table and the parameters (read once per program)."""
    lines = [
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        "    mask = offs < M",
        "    M64 = tl.cast(M, tl.int64)  # row offsets in 64 bits: T * M may not fit 32",
        "    CT = c.dtype.element_ty",
        "    ZB = tl.zeros([BLOCK], CT)",
        *(f"    c{i} = tl.load(c + {i})" for i in range(len(g.constants))),
        "    ZERO = c0",
        "    ONE = c1",
        "    poffs = offs % PER",
        # other=1: a masked lane divides by its parameter without producing inf (harmless,
        # but the interpreter warns)
        *(
            f"    r_p{i} = tl.load(p + {i} * PER + poffs, mask=mask, other=1.0).to(CT)"
            for i in range(g.n_params)
        ),
    ]
    return "\n".join(lines) + "\n"


def _row(base: str, index: str) -> str:
    """Address of row ``index`` (a scalar) of a ``[*, M]`` array."""
    return f"{base} + ({index}) * M64 + offs"


def print_source(g: StepGraphs) -> str:
    """Triton source of the forward and backward kernels of ``g`` (see the module docstring)."""
    nS, nP = g.n_state, g.n_params
    nl = "\n"
    i3 = " " * 12
    state = {f"s{i}": f"r_s{i}" for i in range(nS)}
    params = {f"p{i}": f"r_p{i}" for i in range(nP)}
    f_lines, f_out = _body(g.forward, {"x": "r_x", **state, **params}, i3)
    fwd = f"""
@triton.jit
def forward(xs, s, p, c, out, ck, T, M, PER, K, SAVE: tl.constexpr, BLOCK: tl.constexpr):
{_prologue(g)}{nl.join(f"    r_s{i} = tl.load({_row('s', str(i))}, mask=mask, other=0.0)" for i in range(nS))}
    n_ck = (T + K - 1) // K
    for seg in range(0, n_ck):
        t0 = seg * K
        if SAVE:
{nl.join(f"{i3}tl.store({_row('ck', f'seg * {nS} + {i}')}, r_s{i}, mask=mask)" for i in range(nS))}
        for t in range(t0, tl.minimum(t0 + K, T)):
            r_x = tl.load({_row("xs", "t")}, mask=mask, other=0.0).to(CT)
{nl.join(f_lines)}
            tl.store({_row("out", "t")}, {f_out[0]}.to(out.dtype.element_ty), mask=mask)
{nl.join(f"{i3}r_s{i} = {e}" for i, e in enumerate(f_out[1:]))}
{nl.join(f"    tl.store({_row('s', str(i))}, r_s{i}, mask=mask)" for i in range(nS))}
"""
    return (
        _HEADER.format(version=_VERSION)
        + fwd
        + _print_backward(g, "backward", g.backward)
        + _print_backward(g, "backward_no_params", g.backward_no_params)
    )


def _print_backward(g: StepGraphs, fname: str, prog: Program) -> str:
    nS, nP = g.n_state, g.n_params
    nA = len(prog.outputs) - 1 - nS  # parameter gradients, summed over time per column
    nl = "\n"
    i2, i3 = " " * 8, " " * 12
    params = {f"p{i}": f"r_p{i}" for i in range(nP)}
    hist = {f"s{i}": f"r_h{i}" for i in range(nS)}
    s_lines, s_out = _body(g.state_only, {"x": "r_x", **hist, **params}, i3)
    bind = {"x": "r_x", **hist, **params, "gout": "r_go", **{f"gs{i}": f"r_g{i}" for i in range(nS)}}
    b_lines, b_out = _body(prog, bind, i3)
    h_row = f"(t - t0) * {nS} + {{i}}"
    return f"""
@triton.jit
def {fname}(xs, p, c, ck, go, go_st, go_sm, gs, gx, gp, H, T, M, PER, K, BLOCK: tl.constexpr):
{_prologue(g)}{nl.join(f"    r_g{i} = tl.load({_row('gs', str(i))}, mask=mask, other=0.0)" for i in range(nS))}
{nl.join(f"    r_a{k} = ZB" for k in range(nA))}
    go_st64 = tl.cast(go_st, tl.int64)
    n_ck = (T + K - 1) // K
    for back in range(0, n_ck):
        seg = n_ck - 1 - back
        t0 = seg * K
        t1 = tl.minimum(t0 + K, T)
{nl.join(f"{i2}r_h{i} = tl.load({_row('ck', f'seg * {nS} + {i}')}, mask=mask, other=0.0)" for i in range(nS))}
        for t in range(t0, t1):
{nl.join(f"{i3}tl.store({_row('H', h_row.format(i=i))}, r_h{i}, mask=mask)" for i in range(nS))}
            r_x = tl.load({_row("xs", "t")}, mask=mask, other=0.0).to(CT)
{nl.join(s_lines)}
{nl.join(f"{i3}r_h{i} = {e}" for i, e in enumerate(s_out))}
        for u in range(0, t1 - t0):
            t = t1 - 1 - u
{nl.join(f"{i3}r_h{i} = tl.load({_row('H', h_row.format(i=i))}, mask=mask, other=0.0)" for i in range(nS))}
            r_x = tl.load({_row("xs", "t")}, mask=mask, other=0.0).to(CT)
            r_go = tl.load(go + t * go_st64 + offs * go_sm, mask=mask, other=0.0).to(CT)
{nl.join(b_lines)}
            tl.store({_row("gx", "t")}, {b_out[0]}.to(gx.dtype.element_ty), mask=mask)
{nl.join(f"{i3}r_g{i} = {e}" for i, e in enumerate(b_out[1 : 1 + nS]))}
{nl.join(f"{i3}r_a{k} = r_a{k} + {e}" for k, e in enumerate(b_out[1 + nS :]))}
{nl.join(f"    tl.store({_row('gs', str(i))}, r_g{i}, mask=mask)" for i in range(nS))}
{nl.join(f"    tl.store({_row('gp', str(k))}, r_a{k}, mask=mask)" for k in range(nA))}
"""


_HEADER = '''"""Generated by spikekit.kernels.triton_gpu (format {version}); do not edit."""
import triton
import triton.language as tl

from spikekit.kernels import _triton_rt as _rt
'''


def interpreting() -> bool:
    """Whether Triton runs its interpreter (``TRITON_INTERPRET=1``: kernels on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


_BY_GRAPH: dict[tuple[str, bool], Any] = {}


def module_for(g: StepGraphs) -> Any:
    """The (cached) generated module of ``g``. Triton decides at import whether its kernels
    are interpreted, so interpreted and compiled modules are kept apart."""
    key = (g.key, interpreting())
    m = _BY_GRAPH.get(key)
    if m is None:
        prefix = "triton_interp" if key[1] else "triton"
        m = _BY_GRAPH[key] = load_module(prefix, print_source(g))
    return m


def _launch(kernel: Any, M: int, *args: Any, **meta: Any) -> None:
    import triton

    # One column per thread: the time loop is a chain of dependent steps, so latency is
    # hidden by many threads in flight, not by more columns per thread. 128 columns (4
    # warps) per program from ~33 k columns (two programs per SM of a 132-SM GPU), else 64.
    # Not tuned on a GPU yet (none was at hand when this was written).
    block = 128 if M >= 128 * 264 else 64
    grid = (triton.cdiv(M, block),)
    if interpreting():
        import numpy as np

        # masked lanes compute on placeholder values; numpy would warn about them
        with np.errstate(all="ignore"):
            kernel[grid](*args, BLOCK=block, **meta)
    else:
        import torch

        with torch.cuda.device(args[0].device):  # Triton launches on the current device
            kernel[grid](*args, BLOCK=block, num_warps=max(1, block // 32), **meta)


def run_forward(g: StepGraphs, xs: Any, s: Any, p: Any, c: Any, out: Any, ck: Any, K: int) -> None:
    """The ``forward`` kernel of ``g`` over every column (torch tensors, see the module docstring)."""
    T, M = xs.shape
    _launch(module_for(g).forward, M, xs, s, p, c, out, ck, T, M, p.shape[1], K, SAVE=ck.numel() > 0)


def run_backward(
    g: StepGraphs,
    name: str,
    xs: Any,
    p: Any,
    c: Any,
    ck: Any,
    K: int,
    go: Any,
    go_st: int,
    go_sm: int,
    gs: Any,
    gx: Any,
    gp: Any,
) -> None:
    """Backward kernel ``name`` of ``g`` over every column (torch tensors, see the module docstring)."""
    import torch

    T, M = xs.shape
    H = torch.empty(K, g.n_state, M, dtype=c.dtype, device=xs.device)
    kernel = getattr(module_for(g), name)
    _launch(kernel, M, xs, p, c, ck, go, go_st, go_sm, gs, gx, gp, H, T, M, p.shape[1], K)
