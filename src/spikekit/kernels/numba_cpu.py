"""The CPU printer: a traced step (:mod:`spikekit.kernels.graph`) printed as numba loops.

Two kernels per step graph, printed once and cached on disk (the file is named by the hash of
the printed source, which depends on the graph's structure only, so neurons that differ only
in constants share it; numba's own cache next to it keeps the machine code):

* ``forward(lo, hi, xs, s, p, c, out, ck, K)``: for a block of neuron columns, run every
  time step, write the outputs and update the state ``s`` in place. With ``ck`` non-empty
  it also saves the state every ``K`` steps (the checkpoints the backward restarts from),
  so no ``[T, ...]`` history is stored.
* ``backward(lo, hi, xs, s0, p, c, ck, K, go, go_st, go_sm, gs, gx, gp)``: reverse time over
  each segment of ``K`` steps: recompute the segment's states from its checkpoint into a
  small buffer that stays in cache, then apply the traced vector-Jacobian product step by
  step. ``gs`` carries the state gradient (in: w.r.t. the final state; out: w.r.t. the
  initial one); ``gp`` accumulates each parameter's gradient per column.

Arrays: ``xs``/``out``/``gx`` are ``[T, M]`` (``M`` = batch x features, one column per
neuron), ``s``/``gs`` ``[nS, M]``, ``p``/``gp`` ``[nP, M]`` (parameters broadcast to the
columns), ``ck`` ``[ceil(T / K), nS, M]``, ``c`` the constant table in the input's dtype.
Columns are processed in blocks of ``BLOCK`` so a block's state and parameters stay in L1/L2
while its rows stream; blocks are split over threads (:func:`run_columns`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from spikekit.kernels.graph import Program, StepGraphs

__all__ = ["Kernels", "kernels_for", "cache_dir", "run_columns", "BLOCK", "CHECKPOINT"]

#: Columns per block (see the module docstring).
BLOCK = 2048
#: Steps between state checkpoints of the forward (the backward's recompute segment).
CHECKPOINT = 16
_VERSION = "6"  # bump when the printed code changes meaning

_TEMPLATES = {
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "neg": "(-{0})",
    "max": "max({0}, {1})",
    "min": "min({0}, {1})",
    "pow": "({0} ** {1})",
    "pow2": "({0} * {0})",
    "pow3": "({0} * {0} * {0})",
    "pow4": "(({0} * {0}) * ({0} * {0}))",
    "atan2": "np.arctan2({0}, {1})",
    "exp": "np.exp({0})",
    "expm1": "np.expm1({0})",
    "log": "np.log({0})",
    "log1p": "np.log1p({0})",
    "sqrt": "np.sqrt({0})",
    "rsqrt": "(ONE / np.sqrt({0}))",
    "reciprocal": "(ONE / {0})",
    "sin": "np.sin({0})",
    "cos": "np.cos({0})",
    "tanh": "np.tanh({0})",
    "atan": "np.arctan({0})",
    "erf": "_erf({0})",
    "abs": "abs({0})",
    "sign": "np.sign({0})",
    "sigmoid": "(ONE / (ONE + np.exp(-{0})))",
    "relu": "max({0}, ZERO)",
    "isnan": "np.isnan({0})",
    "not": "(not {0})",
    "and": "({0} and {1})",
    "or": "({0} or {1})",
    "ge": "({0} >= {1})",
    "gt": "({0} > {1})",
    "le": "({0} <= {1})",
    "lt": "({0} < {1})",
    "eq": "({0} == {1})",
    "ne": "({0} != {1})",
    "where": "({1} if {0} else {2})",
    "to_float": "(ONE if {0} else ZERO)",
    "to_bool": "({0} != ZERO)",
    "copy": "{0}",
}


def _print(prog: Program, bind: dict[str, str], indent: str) -> tuple[list[str], list[str]]:
    """Statements of ``prog`` with inputs renamed by ``bind``; returns (lines, output exprs)."""
    names = dict(bind)

    def arg(a: Any) -> str:
        if isinstance(a, tuple):
            return f"c{a[1]}"
        return names[a]

    lines = []
    for name, op, args in prog.body:
        local = f"v_{name}"
        lines.append(f"{indent}{local} = {_TEMPLATES[op].format(*(arg(a) for a in args))}")
        names[name] = local
    return lines, [arg(o) for o in prog.outputs]


def print_source(g: StepGraphs) -> str:
    """Numba source of the forward and backward kernels of ``g`` (dtype-generic).

    Inner loops run over one block's columns through 1-D row views and block-local copies of
    the state and parameters; the reverse step stages its operands in one array (see the
    comment there). Both are what let LLVM vectorise the loops (checked on the IR: the
    reverse loop of LIF/ATan had no vector instructions before the staging).
    """
    nS, nP = g.n_state, g.n_params
    consts = "".join(f"    c{i} = c[{i}]\n" for i in range(len(g.constants)))
    bind = {"x": "x", **{f"s{i}": f"r_s{i}" for i in range(nS)}, **{f"p{i}": f"r_p{i}" for i in range(nP)}}
    nl = "\n"

    def copy_loop(ind: str, pairs: list[tuple[str, str]]) -> str:
        """One explicit loop over the block's columns doing ``dst = src`` for each pair:
        numba compiles a plain loop several times faster than slice assignments."""
        if not pairs:
            return ""
        body = nl.join(f"{ind}    {d} = {r}" for d, r in pairs)
        return f"{ind}for j in range(n):{nl}{body}"

    def block_copies(ind: str, state_src: str, with_state: bool = True) -> str:
        pairs = [(f"S{i}[j]", f"{state_src}[{i}, b0 + j]") for i in range(nS) if with_state]
        pairs += [(f"P{i}[j]", f"p[{i}, b0 + j]") for i in range(nP)]
        return copy_loop(ind, pairs)

    def loads(ind: str, state: str) -> list[str]:
        out = [f"{ind}x = xr[j]"]
        out += [f"{ind}r_s{i} = {state.format(i=i)}" for i in range(nS)]
        out += [f"{ind}r_p{i} = P{i}[j]" for i in range(nP)]
        return out

    ind = " " * 16
    f_lines, f_out = _print(g.forward, bind, ind)
    alloc_sp = nl.join(
        [f"    S{i} = np.empty(BLOCK, dtype=xs.dtype)" for i in range(nS)]
        + [f"    P{i} = np.empty(BLOCK, dtype=xs.dtype)" for i in range(nP)]
    )
    fwd = f"""
@njit(nogil=True, cache=True, error_model="numpy")
def forward(lo, hi, xs, s, p, c, out, ck, K):
{consts}{_ONE_ZERO}    T = xs.shape[0]
    save = ck.shape[0] > 0
{alloc_sp}
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        n = b1 - b0
{block_copies(" " * 8, "s")}
        for t in range(T):
            if save and t % K == 0:
{copy_loop(" " * 16, [(f"ck[t // K, {i}, b0 + j]", f"S{i}[j]") for i in range(nS)])}
            xr = xs[t, b0:b1]
            orow = out[t, b0:b1]
            for j in range(n):
{nl.join(loads(ind, "S{i}[j]"))}
{nl.join(f_lines)}
{ind}orow[j] = {f_out[0]}
{nl.join(f"{ind}S{i}[j] = {e}" for i, e in enumerate(f_out[1:]))}
{copy_loop(" " * 8, [(f"s[{i}, b0 + j]", f"S{i}[j]") for i in range(nS)])}
"""
    ind3 = " " * 20
    s_lines, s_out = _print(g.state_only, bind, ind3)
    # The reverse step reads every operand from one staging array IN and writes every result
    # to one array OUT. LLVM vectorises a loop only when it can check at run time that its
    # stores do not overlap its loads; with ten separate rows that is too many checks and the
    # loop stayed scalar (measured ~7 ns per neuron-step), with two objects it is one check.
    # IN rows: x, state, params (filled once per block), gout, carried state gradient.
    # OUT rows: gx, new state gradient, parameter gradients (accumulated over the block).
    r_x, r_s, r_p = 0, 1, 1 + nS
    r_go, r_gs = 1 + nS + nP, 2 + nS + nP
    n_in = 2 + 2 * nS + nP
    n_out = 1 + nS + nP
    rows = {"x": r_x, **{f"s{i}": r_s + i for i in range(nS)}, **{f"p{i}": r_p + i for i in range(nP)}}
    rows.update({"gout": r_go, **{f"gs{i}": r_gs + i for i in range(nS)}})
    bbind = {name: f"r_{name}" for name in rows}
    b_lines, b_out = _print(g.backward, bbind, ind3)
    # each operand read once, and only if used (the compile time grows with the statements)
    text = " ".join([*b_lines, *b_out])
    b_lines = [f"{ind3}r_{name} = IN[{r}, j]" for name, r in rows.items() if f"r_{name}" in text] + b_lines
    stores = [f"{ind3}OUT[{k}, j] = {b_out[k]}" for k in range(1 + nS)]
    stores += [f"{ind3}OUT[{1 + nS + i}, j] += {b_out[1 + nS + i]}" for i in range(nP)]
    bwd = f"""
@njit(nogil=True, cache=True, error_model="numpy")
def backward(lo, hi, xs, s0, p, c, ck, K, go, go_st, go_sm, gs, gx, gp):
{consts}{_ONE_ZERO}    T = xs.shape[0]
    n_ck = (T + K - 1) // K
    H = np.empty((K, {nS}, BLOCK), dtype=xs.dtype)
    IN = np.empty(({n_in}, BLOCK), dtype=xs.dtype)
    OUT = np.empty(({n_out}, BLOCK), dtype=xs.dtype)
{nl.join(f"    P{i} = np.empty(BLOCK, dtype=xs.dtype)" for i in range(nP))}
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        n = b1 - b0
{block_copies(" " * 8, "s0", with_state=False)}
{copy_loop(" " * 8, [(f"IN[{r_p + i}, j]", f"P{i}[j]") for i in range(nP)] + [(f"IN[{r_gs + i}, j]", f"gs[{i}, b0 + j]") for i in range(nS)] + [(f"OUT[{1 + nS + i}, j]", "ZERO") for i in range(nP)])}
        for seg in range(n_ck - 1, -1, -1):
            t0 = seg * K
            t1 = min(T, t0 + K)
{copy_loop(" " * 12, [(f"H[0, {i}, j]", f"ck[seg, {i}, b0 + j]") for i in range(nS)])}
            for t in range(t0, t1 - 1):
                xr = xs[t, b0:b1]
                hin = H[t - t0]
                hout = H[t + 1 - t0]
                for j in range(n):
{nl.join(loads(ind3, "hin[{i}, j]"))}
{nl.join(s_lines)}
{nl.join(f"{ind3}hout[{i}, j] = {e}" for i, e in enumerate(s_out))}
            for t in range(t1 - 1, t0 - 1, -1):
                base = t * go_st + b0 * go_sm
{copy_loop(" " * 16, [(f"IN[{r_x}, j]", "xs[t, b0 + j]"), *((f"IN[{r_s + i}, j]", f"H[t - t0, {i}, j]") for i in range(nS)), (f"IN[{r_go}, j]", "go[base + j * go_sm]")])}
                for j in range(n):
{nl.join(b_lines)}
{nl.join(stores)}
{copy_loop(" " * 16, [("gx[t, b0 + j]", "OUT[0, j]"), *((f"IN[{r_gs + i}, j]", f"OUT[{1 + i}, j]") for i in range(nS))])}
{copy_loop(" " * 8, [*((f"gs[{i}, b0 + j]", f"IN[{r_gs + i}, j]") for i in range(nS)), *((f"gp[{i}, b0 + j]", f"gp[{i}, b0 + j] + OUT[{1 + nS + i}, j]") for i in range(nP))])}
"""
    return _HEADER.format(version=_VERSION, block=BLOCK) + fwd + bwd


_ONE_ZERO = "    ZERO = c[0]\n    ONE = c[1]\n"
_HEADER = '''"""Generated by spikekit.kernels.numba_cpu (format {version}); do not edit."""
import math

import numpy as np
from numba import njit

BLOCK = {block}


@njit(inline="always")
def _erf(v):
    return math.erf(v)
'''


def cache_dir() -> Path:
    """Where generated kernels live: ``$SPIKEKIT_CACHE`` or ``~/.cache/spikekit``, then ``kernels/``."""
    root = os.environ.get("SPIKEKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spikekit"
    )
    return Path(root) / "kernels"


class Kernels:
    """The compiled pair for one step graph: ``forward`` and ``backward`` numba functions."""

    def __init__(self, module: Any) -> None:
        self.forward = module.forward
        self.backward = module.backward


_LOADED: dict[str, Kernels] = {}  # by source digest
_BY_GRAPH: dict[str, Kernels] = {}  # by graph key: no printing on every call
_LOCK = threading.Lock()


def _write_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it exists (atomically; concurrent writers agree)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        # link, not replace: an existing file keeps its mtime, which numba's cache keys on
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def kernels_for(g: StepGraphs) -> Kernels:
    """The (cached) numba kernels of ``g``; the first call in a machine prints and compiles."""
    k = _BY_GRAPH.get(g.key)
    if k is not None:
        return k
    src = print_source(g)
    digest = hashlib.sha256(src.encode()).hexdigest()[:24]
    with _LOCK:
        k = _LOADED.get(digest)
        if k is not None:
            _BY_GRAPH[g.key] = k
            return k
        path = cache_dir() / f"step_{digest}.py"
        try:
            _write_once(path, src)
        except OSError:  # read-only home: a private directory for this process
            path = Path(tempfile.mkdtemp(prefix="spikekit-kernels-")) / f"step_{digest}.py"
            _write_once(path, src)
        name = f"spikekit_generated_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        k = _LOADED[digest] = _BY_GRAPH[g.key] = Kernels(module)
        return k


# ----------------------------------------------------------------------------- threads
# Neurons are independent over the whole sequence: split the columns into ranges and run the
# kernel on each from Python threads (numba functions compiled with nogil release the GIL).
# numba's own parallel layers are not used: its OpenMP layer loads a second libgomp next to
# torch's, and two runtimes spin-waiting against each other on few cores was measured 2-6x
# slower. The thread count follows torch.get_num_threads().
_PAR_MIN_ELEMS = 1 << 18  # below this, a thread start costs more than it saves
_pool: Any = None
_pool_key: tuple[int, int] = (0, 0)


def run_columns(fn: Any, m: int, elems: int, *args: Any) -> None:
    """``fn(lo, hi, *args)`` over the column ranges of ``0:m``, on threads when large."""
    import torch

    workers = max(1, torch.get_num_threads()) if elems >= _PAR_MIN_ELEMS else 1
    workers = max(1, min(workers, m // BLOCK))
    if workers == 1:
        fn(0, m, *args)
        return
    global _pool, _pool_key
    from concurrent.futures import ThreadPoolExecutor

    key = (os.getpid(), workers - 1)  # a forked child must not reuse the parent's pool
    if _pool is None or _pool_key != key:
        _pool = ThreadPoolExecutor(max_workers=key[1], thread_name_prefix="spikekit-cpu")
        _pool_key = key
    # block-aligned, near-equal ranges
    blocks = (m + BLOCK - 1) // BLOCK
    bounds = [min(m, (blocks * i // workers) * BLOCK) for i in range(workers + 1)]
    futs = [_pool.submit(fn, bounds[i], bounds[i + 1], *args) for i in range(1, workers)]
    try:
        fn(bounds[0], bounds[1], *args)
    finally:
        for f in futs:
            f.result()
