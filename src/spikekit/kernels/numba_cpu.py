"""The CPU printer: a traced step (:mod:`spikekit.kernels.graph`) printed as numba loops.

Two kernels per step graph, printed once and cached on disk (keyed by the graph's hash, so
neurons that differ only in constants share them; numba's own cache keeps the machine code):

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
_VERSION = "1"  # bump when the printed code changes meaning

_TEMPLATES = {
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "neg": "(-{0})",
    "max": "max({0}, {1})",
    "min": "min({0}, {1})",
    "pow": "({0} ** {1})",
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
    """Numba source of the forward and backward kernels of ``g`` (dtype-generic)."""
    nS, nP = g.n_state, g.n_params
    consts = "".join(f"    c{i} = c[{i}]\n" for i in range(len(g.constants)))
    s_names = [f"s{i}" for i in range(nS)]
    p_names = [f"p{i}" for i in range(nP)]
    bind = {"x": "x", **{n: f"r_{n}" for n in s_names}, **{n: f"r_{n}" for n in p_names}}
    ind = " " * 16
    loads = [f"{ind}x = xs[t, m]"]
    loads += [f"{ind}r_s{i} = s[{i}, m]" for i in range(nS)]
    loads += [f"{ind}r_p{i} = p[{i}, m]" for i in range(nP)]
    f_lines, f_out = _print(g.forward, bind, ind)
    fwd = f"""
@njit(nogil=True, cache=True, error_model="numpy")
def forward(lo, hi, xs, s, p, c, out, ck, K):
{consts}{_ONE_ZERO}    T = xs.shape[0]
    save = ck.shape[0] > 0
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        for t in range(T):
            if save and t % K == 0:
                for k in range({nS}):
                    for m in range(b0, b1):
                        ck[t // K, k, m] = s[k, m]
            for m in range(b0, b1):
{chr(10).join(loads)}
{chr(10).join(f_lines)}
{ind}out[t, m] = {f_out[0]}
{chr(10).join(f"{ind}s[{i}, m] = {e}" for i, e in enumerate(f_out[1:]))}
"""
    # backward: recompute a segment's states into hist, then reverse through it
    ind3 = " " * 20
    s_lines, s_out = _print(g.state_only, bind, ind3)
    rec_loads = [f"{ind3}x = xs[t, m]"]
    rec_loads += [f"{ind3}r_s{i} = hist[t - t0, {i}, m - b0]" for i in range(nS)]
    rec_loads += [f"{ind3}r_p{i} = p[{i}, m]" for i in range(nP)]
    bbind = {**bind, "gout": "r_gout", **{f"gs{i}": f"r_gs{i}" for i in range(nS)}}
    b_lines, b_out = _print(g.backward, bbind, ind3)
    back_loads = list(rec_loads)
    back_loads.append(f"{ind3}r_gout = go[t * go_st + m * go_sm]")
    back_loads += [f"{ind3}r_gs{i} = gs[{i}, m]" for i in range(nS)]
    stores = [f"{ind3}gx[t, m] = {b_out[0]}"]
    stores += [f"{ind3}gs[{i}, m] = {b_out[1 + i]}" for i in range(nS)]
    stores += [f"{ind3}gp[{i}, m] += {b_out[1 + nS + i]}" for i in range(nP)]
    bwd = f"""
@njit(nogil=True, cache=True, error_model="numpy")
def backward(lo, hi, xs, s0, p, c, ck, K, go, go_st, go_sm, gs, gx, gp):
{consts}{_ONE_ZERO}    T = xs.shape[0]
    n_ck = (T + K - 1) // K
    hist = np.empty((K, {nS}, BLOCK), dtype=xs.dtype)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        for seg in range(n_ck - 1, -1, -1):
            t0 = seg * K
            t1 = min(T, t0 + K)
            for k in range({nS}):
                for m in range(b0, b1):
                    hist[0, k, m - b0] = ck[seg, k, m]
            for t in range(t0, t1 - 1):
                for m in range(b0, b1):
{chr(10).join(rec_loads)}
{chr(10).join(s_lines)}
{chr(10).join(f"{ind3}hist[t + 1 - t0, {i}, m - b0] = {e}" for i, e in enumerate(s_out))}
            for t in range(t1 - 1, t0 - 1, -1):
                for m in range(b0, b1):
{chr(10).join(back_loads)}
{chr(10).join(b_lines)}
{chr(10).join(stores)}
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


_LOADED: dict[str, Kernels] = {}
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
    src = print_source(g)
    digest = hashlib.sha256(src.encode()).hexdigest()[:24]
    with _LOCK:
        k = _LOADED.get(digest)
        if k is not None:
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
        k = _LOADED[digest] = Kernels(module)
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
