"""The CPU printer: a traced step (:mod:`spikekit.kernels.graph`) printed as numba loops.

Kernels per step graph, printed once and cached on disk (the file is named by the hash of
the printed source, which depends on the graph's structure only, so neurons that differ only
in constants share it; numba's own cache next to it keeps the machine code):

* ``forward(lo, hi, xs, s, p, c, out, ck, K)``: for a block of neuron columns, run every
  time step, write the outputs and update the state ``s`` in place. With ``ck`` non-empty
  it also saves the state every ``K`` steps (the checkpoints the backward restarts from),
  so no ``[T, ...]`` history is stored.
* ``backward(lo, hi, xs, p, c, ck, K, go, go_st, go_sm, gs, gx, gp)``: reverse time over
  each segment of ``K`` steps: recompute the segment's states from its checkpoint into a
  small buffer that stays in cache, then apply the traced vector-Jacobian product step by
  step. ``gs`` carries the state gradient (in: w.r.t. the final state; out: w.r.t. the
  initial one); ``gp`` receives each parameter's gradient per column. ``go`` is the
  upstream gradient, flat, read at ``t * go_st + column * go_sm`` (``go_sm`` is 1, or 0
  for a gradient broadcast over the columns, such as that of ``out.sum()``).
* ``backward_no_params``: the same without parameter gradients (``gp`` empty), the common
  case of parameters that are not learnt: the traced program without those outputs.
* ``team_<kernel>_<dtype>(address)``: the C callback that runs a kernel's column chunks on
  torch's OpenMP team (:func:`run_columns`).

Arrays: ``xs``/``out``/``gx`` are ``[T, M]`` (``M`` = batch x features, one column per
neuron), ``s``/``gs`` ``[nS, M]``, ``gp`` ``[nP, M]``, ``ck`` ``[ceil(T / K), nS, M]``, ``c``
the constant table in the input's dtype. ``p`` is ``[nP, P]`` with ``P`` dividing ``M``:
column ``j`` reads ``p[:, j % P]``, so shared parameters travel as one value (``P = 1``) and
per-neuron ones once per feature, not once per column (a conv layer has ``M`` in the
hundreds of thousands).
Columns are processed in blocks of ``BLOCK`` so a block's state and parameters stay in L1/L2
while its rows stream; chunks of columns are split over threads (:func:`run_columns`).
"""

from __future__ import annotations

import os
from typing import Any

from spikekit.kernels.codegen import load_module, render
from spikekit.kernels.graph import Program, StepGraphs

__all__ = ["Kernels", "kernels_for", "run_forward", "run_backward", "run_columns", "KERNEL_ARGS", "BLOCK"]

#: Columns per block (see the module docstring).
BLOCK = 2048
_VERSION = "9"  # bump when the printed code (or the name it is imported under) changes

_TEMPLATES = {
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "neg": "(-{0})",
    "max": "_max({0}, {1})",  # torch.maximum/minimum propagate NaN; Python's max does not
    "min": "_min({0}, {1})",
    "pow": "({0} ** {1})",
    "pow2": "({0} * {0})",
    "pow3": "({0} * {0} * {0})",
    "pow4": "(({0} * {0}) * ({0} * {0}))",
    "atan2": "np.arctan2({0}, {1})",
    "exp": "_exp({0})",
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
    "sign": "(ONE if {0} > ZERO else (-ONE if {0} < ZERO else ZERO))",  # torch.sign(nan) is 0
    "sigmoid": "(ONE / (ONE + _exp(-{0})))",
    "relu": "_max({0}, ZERO)",
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


def print_source(g: StepGraphs) -> str:
    """Numba source of the forward and backward kernels of ``g`` (dtype-generic).

    How the loops are laid out is what lets LLVM vectorise them over the block's columns
    (checked with ``--pass-remarks=loop-vectorize``, measured on LIF at n = 512):

    * no array is both read and written in a time step's loop. The carried state (forward)
      and the carried gradients (backward) are read from one block buffer and written to a
      second, and the two swap names after each step. A loop that updated its state row in
      place was left scalar (the backward took 3.6 ns per neuron-step; 1.3 ns this way);
    * few distinct arrays per loop: every array a loop stores to must be checked at run time
      against every array it reads, and LLVM gives up above a few checks. So the parameters
      are one ``[nP, BLOCK]`` block, the state gradients and the parameter-gradient
      accumulators are rows of one buffer, and the recomputed states of a segment are rows
      of one ``[K, nS, BLOCK]`` buffer;
    * no staging copies: the time step's rows of ``xs``, ``out``, ``gout`` and ``gx`` are
      read and written in place through 1-D views.
    """
    nS, nP = g.n_state, g.n_params
    nl = "\n"
    consts = _consts(g)
    copy_loop = _copy_loop
    ind = " " * 16
    f_lines, f_out = _body(g.forward, _step_inputs(g, "xr[j]", "SA[{i}, j]"), ind)
    fwd = f"""
@njit(nogil=True, cache=True, error_model="numpy")
def forward(lo, hi, xs, s, p, c, out, ck, K):
{consts}{_ONE_ZERO}    T = xs.shape[0]
    per = p.shape[1]
    save = ck.shape[0] > 0
    PB = np.empty(({max(nP, 1)}, BLOCK), dtype=xs.dtype)
    SA = np.empty(({nS}, BLOCK), dtype=xs.dtype)
    SB = np.empty(({nS}, BLOCK), dtype=xs.dtype)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        n = b1 - b0
{copy_loop(" " * 8, [(f"SA[{i}, j]", f"s[{i}, b0 + j]") for i in range(nS)] + [(f"PB[{i}, j]", f"p[{i}, (b0 + j) % per]") for i in range(nP)])}
        for t in range(T):
            if save and t % K == 0:
{copy_loop(" " * 16, [(f"ck[t // K, {i}, b0 + j]", f"SA[{i}, j]") for i in range(nS)])}
            xr = xs[t, b0:b1]
            orow = out[t, b0:b1]
            for j in range(n):
{nl.join(f_lines)}
{ind}orow[j] = {f_out[0]}
{nl.join(f"{ind}SB[{i}, j] = {e}" for i, e in enumerate(f_out[1:]))}
            SA, SB = SB, SA
{copy_loop(" " * 8, [(f"s[{i}, b0 + j]", f"SA[{i}, j]") for i in range(nS)])}
"""
    return (
        _HEADER.format(version=_VERSION, block=BLOCK)
        + fwd
        + _print_backward(g, "backward", g.backward)
        + _print_backward(g, "backward_no_params", g.backward_no_params)
        + "".join(_print_team(name, dt) for name in KERNEL_ARGS for dt in ("float32", "float64"))
    )


#: Each kernel's arguments after ``lo, hi``: the array rank, or 0 for an integer. The packed
#: form (:mod:`spikekit.kernels._numba_rt`) and the team callbacks follow this table.
KERNEL_ARGS: dict[str, tuple[tuple[str, int], ...]] = {
    "forward": (("xs", 2), ("s", 2), ("p", 2), ("c", 1), ("out", 2), ("ck", 3), ("K", 0)),
    "backward": (
        ("xs", 2),
        ("p", 2),
        ("c", 1),
        ("ck", 3),
        ("K", 0),
        ("go", 1),
        ("go_st", 0),
        ("go_sm", 0),
        ("gs", 2),
        ("gx", 2),
        ("gp", 2),
    ),
}
KERNEL_ARGS["backward_no_params"] = KERNEL_ARGS["backward"]


def _print_team(name: str, dt: str) -> str:
    """The team callback of kernel ``name`` for dtype ``dt``: unpack, then claim chunks."""
    args = KERNEL_ARGS[name]
    unpack = "\n".join(
        f"    {a} = " + (f"argint(d, {k})" if rank == 0 else f"arg{rank}(d, {k}, np.{dt})")
        for k, (a, rank) in enumerate(args)
    )
    return f"""
@njit(nogil=True, cache=True)
def team_{name}_{dt}(addr):
    d = packed(addr, {len(args)})
{unpack}
    while True:
        lo, hi = claim(d)
        if hi <= lo:
            break
        {name}(lo, hi, {", ".join(a for a, _ in args)})
"""


def _consts(g: StepGraphs) -> str:
    """Statements loading the constant table into locals ``c0, c1, ...``."""
    return "".join(f"    c{i} = c[{i}]\n" for i in range(len(g.constants)))


def _copy_loop(ind: str, pairs: list[tuple[str, str]]) -> str:
    """One explicit loop over the block's columns doing ``dst = src`` for each pair: numba
    compiles a plain loop several times faster than slice assignments."""
    if not pairs:
        return ""
    body = "\n".join(f"{ind}    {d} = {r}" for d, r in pairs)
    return f"{ind}for j in range(n):\n{body}"


def _body(prog: Program, bind: dict[str, str], ind: str) -> tuple[list[str], list[str]]:
    """The program's statements, preceded by a load of each input it reads (only those: the
    compile time grows with the statements); ``bind`` maps an input to the expression it
    loads. Returns the lines and the output expressions."""
    lines, outs = render(prog, _TEMPLATES, {name: f"r_{name}" for name in bind}, ind)
    text = " ".join([*lines, *outs])
    loads = [f"{ind}r_{name} = {src}" for name, src in bind.items() if f"r_{name}" in text]
    return loads + lines, outs


def _step_inputs(g: StepGraphs, x: str, state: str) -> dict[str, str]:
    """Where a step's inputs are read: ``x``, the state pattern (``{i}``: the field), ``PB``."""
    return {
        "x": x,
        **{f"s{i}": state.format(i=i) for i in range(g.n_state)},
        **{f"p{i}": f"PB[{i}, j]" for i in range(g.n_params)},
    }


def _print_backward(g: StepGraphs, fname: str, prog: Program) -> str:
    """One backward kernel (see :func:`print_source`); ``prog`` returns ``gx, gs..`` and,
    for ``backward``, the parameter gradients, summed over time per column in rows ``nS..`` of
    the carried buffers ``GA``/``GB``."""
    nS, nP = g.n_state, g.n_params
    nA = len(prog.outputs) - 1 - nS  # parameter gradients accumulated
    nl = "\n"
    consts = _consts(g)
    copy_loop = _copy_loop
    ind3 = " " * 20
    s_lines, s_out = _body(g.state_only, _step_inputs(g, "xr[j]", "hin[{i}, j]"), ind3)
    bind = _step_inputs(g, "xr[j]", "hr[{i}, j]")
    bind.update({"gout": "gor[j]", **{f"gs{i}": f"GA[{i}, j]" for i in range(nS)}})
    b_lines, b_out = _body(prog, bind, ind3)
    stores = [f"{ind3}gxr[j] = {b_out[0]}"]
    stores += [f"{ind3}GB[{i}, j] = {b_out[1 + i]}" for i in range(nS)]
    stores += [f"{ind3}GB[{nS + k}, j] = GA[{nS + k}, j] + {b_out[1 + nS + k]}" for k in range(nA)]
    return f"""
@njit(nogil=True, cache=True, error_model="numpy")
def {fname}(lo, hi, xs, p, c, ck, K, go, go_st, go_sm, gs, gx, gp):
{consts}{_ONE_ZERO}    T = xs.shape[0]
    per = p.shape[1]
    n_ck = (T + K - 1) // K
    H = np.empty((K, {nS}, BLOCK), dtype=xs.dtype)
    PB = np.empty(({max(nP, 1)}, BLOCK), dtype=xs.dtype)
    GA = np.empty(({nS + nA}, BLOCK), dtype=xs.dtype)
    GB = np.empty(({nS + nA}, BLOCK), dtype=xs.dtype)
    GO = np.empty(BLOCK, dtype=xs.dtype)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        n = b1 - b0
{copy_loop(" " * 8, [(f"PB[{i}, j]", f"p[{i}, (b0 + j) % per]") for i in range(nP)] + [(f"GA[{i}, j]", f"gs[{i}, b0 + j]") for i in range(nS)] + [(f"GA[{nS + k}, j]", "ZERO") for k in range(nA)])}
        for seg in range(n_ck - 1, -1, -1):
            t0 = seg * K
            t1 = min(T, t0 + K)
{copy_loop(" " * 12, [(f"H[0, {i}, j]", f"ck[seg, {i}, b0 + j]") for i in range(nS)])}
            for t in range(t0, t1 - 1):
                xr = xs[t, b0:b1]
                hin = H[t - t0]
                hout = H[t + 1 - t0]
                for j in range(n):
{nl.join(s_lines)}
{nl.join(f"{ind3}hout[{i}, j] = {e}" for i, e in enumerate(s_out))}
            for t in range(t1 - 1, t0 - 1, -1):
                xr = xs[t, b0:b1]
                hr = H[t - t0]
                gxr = gx[t, b0:b1]
                base = t * go_st
                if go_sm == 0:  # gout broadcast over the columns (e.g. from out.sum())
                    g_t = go[base]
                    for j in range(n):
                        GO[j] = g_t
                    gor = GO[:n]
                else:
                    gor = go[base + b0 : base + b1]
                for j in range(n):
{nl.join(b_lines)}
{nl.join(stores)}
                GA, GB = GB, GA
{copy_loop(" " * 8, [(f"gs[{i}, b0 + j]", f"GA[{i}, j]") for i in range(nS)] + [(f"gp[{k}, b0 + j]", f"GA[{nS + k}, j]") for k in range(nA)])}
"""


_ONE_ZERO = "    ZERO = c[0]\n    ONE = c[1]\n"
_HEADER = '''"""Generated by spikekit.kernels.numba_cpu (format {version}); do not edit."""
import math

import numpy as np
from numba import njit

from spikekit.kernels._numba_rt import arg1, arg2, arg3, argint, claim, packed
from spikekit.kernels._numba_rt import vexp as _exp

BLOCK = {block}


@njit(inline="always")
def _max(a, b):
    return a if (a > b or a != a) else b


@njit(inline="always")
def _min(a, b):
    return a if (a < b or a != a) else b


@njit(inline="always")
def _erf(v):
    return math.erf(v)
'''


class Kernels:
    """The kernels of one step graph (a loaded generated module).

    :meth:`run` runs one of :data:`KERNEL_ARGS` over all columns. Each numba function
    compiles on its first call (per dtype), so unused kernels cost nothing.
    """

    def __init__(self, module: Any) -> None:
        self.module = module
        self._team: dict[tuple[str, str], int] = {}

    def kernel(self, name: str) -> Any:
        """The numba function ``name(lo, hi, *args)``."""
        return getattr(self.module, name)

    def team_address(self, name: str, dtype: str) -> int:
        """Address of the C callback ``void team(int64 *packed)`` of kernel ``name``."""
        addr = self._team.get((name, dtype))
        if addr is None:
            from numba import types

            disp = getattr(self.module, f"team_{name}_{dtype}")
            sig = (types.int64,)
            disp.compile(sig)
            cres = disp.overloads[sig]
            # the C-ABI wrapper numba builds for every compiled function (what numba.cfunc
            # hands out): a pointer and an int64 travel the same way in the C calling
            # convention, so it is a valid ``void (*)(void *)``
            addr = self._team[(name, dtype)] = cres.library.get_pointer_to_function(
                cres.fndesc.llvm_cfunc_wrapper_name
            )
        return addr

    def run(self, name: str, m: int, elems: int, *args: Any) -> None:
        """Kernel ``name`` over columns ``0:m`` (``elems``: the work, about ``T * m``)."""
        run_columns(self, name, m, elems, *args)


_LOADED: dict[int, Kernels] = {}  # by id of the loaded module
_BY_GRAPH: dict[str, Kernels] = {}  # by graph key: no printing on every call


def kernels_for(g: StepGraphs) -> Kernels:
    """The (cached) numba kernels of ``g``; the first call in a machine prints and compiles."""
    k = _BY_GRAPH.get(g.key)
    if k is None:
        module = load_module("step", print_source(g))
        k = _LOADED.get(id(module))
        if k is None:
            k = _LOADED[id(module)] = Kernels(module)
        _BY_GRAPH[g.key] = k
    return k


def run_forward(g: StepGraphs, xs: Any, s: Any, p: Any, c: Any, out: Any, ck: Any, K: int) -> None:
    """The ``forward`` kernel of ``g`` over every column (torch tensors, see the module docstring)."""
    T, M = xs.shape
    kernels_for(g).run(
        "forward", M, T * M, xs.numpy(), s.numpy(), p.numpy(), c.numpy(), out.numpy(), ck.numpy(), K
    )


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
    T, M = xs.shape
    arrays = [a.numpy() for a in (xs, p, c, ck)]
    kernels_for(g).run(
        name, M, T * M, *arrays, K, go.numpy(), go_st, go_sm, gs.numpy(), gx.numpy(), gp.numpy()
    )


# ----------------------------------------------------------------------------- threads
# Neurons are independent over the whole sequence, so the columns are split into chunks run
# in parallel. The threads are torch's own OpenMP team: the kernel's C callback (a numba
# function's C wrapper, :mod:`spikekit.kernels._numba_rt`) is handed to ``GOMP_parallel`` of
# the runtime torch loaded (libgomp, or the GNU entry points of LLVM's libomp and Intel's
# libiomp5). Right after a torch op its OpenMP workers keep spinning for a while waiting
# for more work; a thread of our own then competes with a spinning worker for a core, while
# a region on torch's team is picked up at once by it. Measured on 2 cores, Linear(512) +
# LIF, T = 500, kernels timed inside the layer: forward 5.6-6.2 ms and backward 9.3-9.5 ms
# on two Python threads (no faster than serial: 4.9 / 7.4 ms); 2.9 / 4.8 ms when torch's
# workers do not spin (OMP_WAIT_POLICY=PASSIVE), which is what the team gives without
# changing how torch waits. numba's own parallel layers are not used: its OpenMP layer loads
# a second runtime next to torch's, and two runtimes spinning against each other on few
# cores was measured 2-6x slower. Without ``GOMP_parallel`` (no such runtime found) the
# chunks run on Python threads (nogil). The thread count is ``torch.get_num_threads()``.
_PAR_MIN_ELEMS = 1 << 18  # below this a team start-up costs more than it saves
_MIN_CHUNK_COLS = 1024  # narrower chunks stream badly (one page per step per array)
_omp: Any = None  # torch's GOMP_parallel (ctypes), or False
_pool: Any = None
_pool_key: tuple[int, int] = (0, 0)


def _gomp_parallel() -> Any:
    """``GOMP_parallel`` of the OpenMP runtime torch loaded, or ``False`` (looked up once)."""
    global _omp
    if _omp is None:
        _omp = False
        try:
            import ctypes

            import torch

            with open("/proc/self/maps") as f:
                libs = {ln.split()[-1] for ln in f if ".so" in ln.rsplit("/", 1)[-1]}
            names = ("libgomp", "libiomp5", "libomp")
            found = [p for p in libs if os.path.basename(p).startswith(names)]
            torch_dir = os.path.dirname(torch.__file__)
            found.sort(key=lambda p: not p.startswith(torch_dir))  # torch's own runtime first
            if found:
                fn = ctypes.CDLL(found[0]).GOMP_parallel
                fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)
                fn.restype = None
                _omp = fn
        except (OSError, AttributeError):
            _omp = False
    return _omp


def _pack(args: tuple[Any, ...], counter: Any, chunks: int, m: int) -> Any:
    """The kernel arguments as the int64 array the team callbacks unpack (see ``_numba_rt``)."""
    import numpy as np

    vals = [counter.ctypes.data, chunks, m]
    for a in args:
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise ValueError("spikekit CPU kernels need C-contiguous arrays")
            dims = [*a.shape, 0, 0, 0][:3]
            vals += [a.ctypes.data, *dims]
        else:
            vals += [int(a), 0, 0, 0]
    return np.array(vals, dtype=np.int64)


def run_columns(k: Kernels, name: str, m: int, elems: int, *args: Any) -> None:
    """Kernel ``name`` of ``k`` over the columns ``0:m`` (``elems``: the work, about
    ``T * m``): one call when small, else chunks on torch's OpenMP team (or Python threads)."""
    import numpy as np
    import torch

    workers = max(1, torch.get_num_threads()) if elems >= _PAR_MIN_ELEMS else 1
    workers = max(1, min(workers, m // _MIN_CHUNK_COLS))
    fn = k.kernel(name)
    if workers == 1:
        fn(0, m, *args)
        return
    gomp = _gomp_parallel()
    if gomp:
        dtype = next(a for a in args if isinstance(a, np.ndarray)).dtype.name
        counter = np.zeros(1, dtype=np.int64)
        data = _pack(args, counter, workers, m)
        gomp(k.team_address(name, dtype), data.ctypes.data, workers, 0)
        if counter[0] < workers:  # each chunk is claimed once, or a thread failed to start
            raise RuntimeError(f"spikekit CPU kernel {name}: {counter[0]} of {workers} column chunks ran")
        return
    global _pool, _pool_key
    from concurrent.futures import ThreadPoolExecutor

    key = (os.getpid(), workers - 1)  # a forked child must not reuse the parent's pool
    if _pool is None or _pool_key != key:
        _pool = ThreadPoolExecutor(max_workers=key[1], thread_name_prefix="spikekit-cpu")
        _pool_key = key
    bounds = [(m * i // workers) // 16 * 16 for i in range(workers)] + [m]
    futs = [_pool.submit(fn, bounds[i], bounds[i + 1], *args) for i in range(1, workers)]
    try:
        fn(bounds[0], bounds[1], *args)
    finally:
        for f in futs:
            f.result()
