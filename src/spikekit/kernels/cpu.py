"""Fused CPU backend: whole-sequence forward and backward of every neuron family in numba.

Why: the reference :func:`~spikekit.functional.scan` runs ``T`` Python steps and records
an autograd graph of ~10 ops per step; on a CPU that overhead dominates an SNN layer. Here
one :class:`torch.autograd.Function` runs the time loop for all neurons in a compiled
loop, and its backward runs one reverse-time loop, with no per-step graph.

IF and LIF with spike output (the common case, snntorch's delayed reset included) take a
fast path: the forward saves only the membrane every ``CHECKPOINT`` steps (the input is kept
by reference, not copied); the backward re-runs each segment from its checkpoint and
evaluates the surrogate derivative in the same pass, with the formulas of
``_numba_cpu.surrogate_row`` (a restatement of each built-in surrogate's ``grad``, guarded by
a test over every surrogate and both dtypes). A user's own surrogate class keeps one
definition: then ``h - theta`` is saved and its ``grad`` runs in torch on tiles of 64K values
that the kernel reads while they are in L2 (with a delayed reset, such a surrogate takes the
generic path below). Both directions split neuron columns over torch's OpenMP team (see
"threads" below).

The other families and options (synaptic current, adaptation, graded output) save
``h - theta`` per step, plus the pre-step adaptation for ALIF and the drive only when a decay
that multiplies it is learnt, and run serially. An upstream gradient that is a broadcast
(``out.sum()``'s is one scalar expanded to ``[T, B, ...]``) is passed as that scalar or row,
never copied.

The math mirrors :func:`spikekit.neurons._base.integrate` and each ``*_step`` function;
``tests/test_kernels_cpu.py`` checks outputs and every gradient against the reference over
a grid of options. The numba module is imported by :func:`load` (the backend's load hook),
never at ``import spikekit``.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["FAMILIES", "load", "supports", "run"]

FAMILIES = frozenset({"if", "lif", "cuba_lif", "alif", "li"})
_RESET = {"hard": 0, "soft": 1, "none": 2}
# Elements of the backward processed per torch/numba round trip: the surrogate's temporaries
# (~4 MB in float32) stay bounded, and few calls keep the thread-pool wake-ups rare.
_CHUNK_ELEMS = 1 << 20

_kern: Any = None


def load() -> None:
    """Import (and JIT-load from cache) the numba kernels; raises if numba is unavailable."""
    global _kern
    if _kern is None:
        _kern = importlib.import_module("spikekit.kernels._numba_cpu")


class _Cfg(NamedTuple):
    spk: int  # family emits spikes (all but LI)
    syn: int  # synaptic current: d = i + x, i' = beta_syn d (CubaLIF, LI)
    ada: int  # adaptive threshold (ALIF)
    leak: int  # has beta / v_leak (all but IF)
    reset: int
    det: int
    delay: int
    binary: int
    td: int
    di: int
    surrogate: Any
    grad: bool  # a backward may follow (autograd.Function.forward always runs under no_grad)


_FAMILY_FLAGS = {  # spk, syn, ada, leak
    "if": (1, 0, 0, 0),
    "lif": (1, 0, 0, 1),
    "cuba_lif": (1, 1, 0, 1),
    "alif": (1, 0, 1, 1),
    "li": (0, 1, 0, 1),
}
_C_FIELD = {"cuba_lif": "i", "li": "i", "alif": "a"}


def supports(family: str, xs: Tensor, state: Any, params: Any, options: Any) -> bool:
    """Whether the fused kernel runs this call exactly like the reference.

    Declines (so the registry falls back to the reference): non-CPU tensors, dtypes other
    than float32/float64, relaxed mode (``spiking=False``), ALIF with ``reset_delay``, and
    states or parameters whose shapes/dtypes/devices do not match the input.
    """
    if family not in FAMILIES or not isinstance(xs, Tensor):
        return False
    if xs.device.type != "cpu" or xs.dtype not in (torch.float32, torch.float64):
        return False
    if xs.ndim < 2 or xs.numel() == 0:
        return False
    spk = _FAMILY_FLAGS[family][0]
    if spk and (options.surrogate is None or not options.spiking or options.reset not in _RESET):
        return False
    if family == "alif" and options.reset_delay:
        return False
    feat = xs.shape[1:]
    for t in (*state, *params):
        if not isinstance(t, Tensor) or t.device.type != "cpu" or t.dtype != xs.dtype:
            return False
    if any(s.shape != feat for s in state):
        return False
    return all(_broadcasts(p, feat) for p in params)


def run(family: str, xs: Tensor, state: Any, params: Any, options: Any) -> tuple[Tensor, Any]:
    """Fused ``scan``: ``(outs [T, B, *features], final_state)`` as the reference returns."""
    spk, syn, ada, leak = _FAMILY_FLAGS[family]
    cfg = _Cfg(
        spk=spk,
        syn=syn,
        ada=ada,
        leak=leak,
        reset=_RESET[options.reset] if spk else 2,
        det=int(options.detach_reset),
        delay=int(options.reset_delay) if spk else 0,
        binary=int(options.binary) if spk else 1,
        td=int(options.time_dependent),
        di=int(options.decay_input) if leak else 0,
        surrogate=options.surrogate,
        grad=torch.is_grad_enabled()
        and any(t.requires_grad for t in (xs, *state, *params) if isinstance(t, Tensor)),
    )
    p = params._asdict()
    c0 = getattr(state, _C_FIELD[family]) if family in _C_FIELD else None
    out, v, c = _Fused.apply(
        cfg,
        xs,
        state.v,
        c0,
        *(p.get(name) for name in ("beta", "beta_syn", "v_th", "v_reset", "v_leak", "rho", "adapt")),
    )
    return out, (type(state)(v) if c0 is None else type(state)(v, c))


def _per_neuron(p: Tensor | None, shape: torch.Size, fill: float, dt: torch.dtype) -> Tensor:
    """Parameter broadcast to ``shape`` as a flat contiguous array (``fill`` if absent)."""
    if p is None:
        return torch.full((shape.numel(),), fill, dtype=dt)
    return p.detach().expand(shape).contiguous().view(-1)


def _broadcasts(p: Tensor | None, shape: torch.Size) -> bool:
    """Whether ``p`` (``None`` counts) broadcasts to ``shape`` without growing it."""
    if p is None:
        return True
    try:
        return torch.broadcast_shapes(p.shape, shape) == shape
    except RuntimeError:
        return False


def _carried(gr: Tensor | None, m: int, dt: torch.dtype) -> Tensor:
    """The gradient w.r.t. a final state as a contiguous ``[M]`` copy (zeros if absent).

    The backward kernels overwrite it with the gradient w.r.t. the initial state.
    """
    return torch.zeros(m, dtype=dt) if gr is None else gr.reshape(m).to(dt, copy=True).contiguous()


def _np(t: Tensor) -> Any:
    return t.detach().numpy()


# ----------------------------------------------------------------------------- big buffers
# A [T, M] buffer above glibc's largest mmap threshold (32 MB) is a fresh mapping on every
# call, which the kernel then faults in page by page: at 4 KB pages one fault per 1024
# float32 values (~1 ms per 16 MB measured here). Where the OS grants transparent huge pages
# on request (``madvise`` mode, the common default), ask for them on such buffers. Smaller
# buffers are reused heap memory with no faults to save, and advising them made faults
# appear (Linear(512) + LIF, T = 500, 16 MB buffers: ~430 faults and 9 ms instead of 0 and
# 4 ms per forward; 1.26-1.29x the bare Linear without advice, 1.42-1.56x with). Measured on
# 2 cores, time / bare Linear: n = 2048 (64 MB buffers) 1.12-1.13x without, 1.06-1.09x with;
# n = 4096 (128 MB) 1.04-1.06x without, 1.17-1.20x with (cause not understood), hence the
# upper bound. A heuristic fitted to one machine: both bounds are constants to revisit.
_HUGE = 2 << 20
_HUGE_MIN = (32 << 20) + 1
_HUGE_MAX = 64 << 20
_madvise: Any = None  # the libc function, False if unavailable


def _big_empty(T: int, M: int, dt: torch.dtype) -> Tensor:
    """``torch.empty(T, M)``, backed by huge pages when it is large and the OS allows it."""
    global _madvise
    t = torch.empty(T, M, dtype=dt)
    nbytes = t.numel() * t.element_size()
    if nbytes < _HUGE_MIN or nbytes > _HUGE_MAX:
        return t
    if _madvise is None:
        _madvise = False
        try:
            import ctypes
            import sys

            if sys.platform.startswith("linux"):
                libc = ctypes.CDLL(None, use_errno=True)
                _madvise = libc.madvise
                _madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        except (OSError, AttributeError):
            _madvise = False
    if _madvise:
        start = (t.data_ptr() + _HUGE - 1) & ~(_HUGE - 1)
        end = (t.data_ptr() + nbytes) & ~(_HUGE - 1)
        if end > start:
            _madvise(start, end - start, 14)  # MADV_HUGEPAGE; a failure only means small pages
    return t


# ----------------------------------------------------------------------------- threads
# Neurons are independent over the whole sequence, so the IF/LIF kernels take a column range
# and split the columns between threads: on torch's own OpenMP team when its runtime exposes
# ``GOMP_parallel`` (libgomp, and the GNU entry points of LLVM's libomp and Intel's
# libiomp5), see the "torch's thread team" section of ``_numba_cpu``; otherwise on Python
# threads calling the same C callback. numba's own pools are not used: its OpenMP layer loads
# a second libgomp next to torch's, and two runtimes spin-wait against each other on few
# cores (measured 2-6x slower on 2 cores). The thread count is ``torch.get_num_threads()``,
# so ``torch.set_num_threads(1)`` / ``OMP_NUM_THREADS=1`` give serial kernels.
_PAR_MIN_ELEMS = 1 << 18  # below this a team start-up costs more than it saves
# Chunks per thread: torch's OpenMP team starts at once, so one chunk each streams best
# (measured, Linear(512) + LIF, T = 500, 2 threads: 1.24-1.38x the bare Linear with one,
# 1.49-1.54x with four); Python threads may start late, so they claim smaller chunks.
_CHUNKS_PER_THREAD = {"openmp": 1, "threads": 4}
_MIN_CHUNK_COLS = 1024  # narrower rows per step stream badly (one page per step per array)
_omp: Any = None  # torch's GOMP_parallel (ctypes), or False
_pool: Any = None
_pool_key: tuple[int, int] = (0, 0)


def _gomp_parallel() -> Any:
    """``GOMP_parallel`` of the OpenMP runtime torch loaded, or ``False`` (found once)."""
    global _omp
    if _omp is None:
        _omp = False
        try:
            import ctypes
            import os

            with open("/proc/self/maps") as f:
                libs = {ln.split()[-1] for ln in f if ln.rstrip().endswith((".so", ".so.1", ".so.5"))}
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


def _pack(args: list[Any], counter: np.ndarray, chunks: int, m: int) -> np.ndarray:
    """Kernel arguments as the int64 array the C callbacks unpack (see ``_numba_cpu``)."""
    vals = [counter.ctypes.data, chunks, m]
    for a in args:
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise ValueError("the CPU kernels need C-contiguous arrays")
            vals += [a.ctypes.data, a.shape[0], a.shape[1] if a.ndim == 2 else 0]
        else:
            vals += [int(a), 0, 0]
    return np.array(vals, dtype=np.int64)


def _run_columns(kernel: str, args: list[Any], m: int, elems: int) -> None:
    """``_kern.<kernel>(*args, lo, hi)`` over every column of ``0:m``, threaded when large.

    Always through the kernel's C callback (one compiled artifact per kernel and dtype,
    whether or not threads are used).

    Args:
        kernel: ``"lif_forward"`` or ``"lif_backward"`` (whose last two arguments are
            ``lo, hi``).
        args: the other arguments: C-contiguous numpy arrays of one dtype, and integers.
        m: number of columns. elems: the work, about ``T * m``.
    """
    workers = max(1, torch.get_num_threads()) if elems >= _PAR_MIN_ELEMS else 1
    gomp = _gomp_parallel() if workers > 1 else None
    per_thread = _CHUNKS_PER_THREAD["openmp" if gomp else "threads"]
    chunks = max(1, min(workers * per_thread, m // _MIN_CHUNK_COLS))
    workers = min(workers, chunks)
    is64 = next(a for a in args if isinstance(a, np.ndarray)).dtype == np.float64
    counter = np.zeros(1, dtype=np.int64)
    data = _pack(args, counter, chunks, m)
    body = _kern.team(kernel, is64)
    ptr = data.ctypes.data
    if workers == 1:
        body.ctypes(ptr)
    elif gomp:
        gomp(body.address, ptr, workers, 0)
    else:
        global _pool, _pool_key
        import os
        from concurrent.futures import ThreadPoolExecutor

        key = (os.getpid(), workers - 1)  # a forked child must not reuse the parent's pool
        if _pool is None or _pool_key != key:
            _pool = ThreadPoolExecutor(max_workers=key[1], thread_name_prefix="spikekit-cpu")
            _pool_key = key
        futs = [_pool.submit(body.ctypes, ptr) for _ in range(workers - 1)]
        try:
            body.ctypes(ptr)  # ctypes releases the GIL during the call
        finally:
            for f in futs:
                f.result()
    if counter[0] < chunks:  # every chunk is claimed exactly once, or a thread failed to start
        raise RuntimeError(f"spikekit CPU kernel {kernel}: {counter[0]} of {chunks} column chunks ran")


_PARAM_NAMES = ("beta", "beta_syn", "v_th", "v_reset", "v_leak", "rho", "adapt")


class _Fused(torch.autograd.Function):
    """``(cfg, xs, v0, c0, *params) -> (outs, v_T, c_T)``; see the module docstring."""

    @staticmethod
    def forward(ctx, cfg: _Cfg, xs: Tensor, v0: Tensor, c0: Tensor | None, *params: Tensor | None):  # type: ignore[override]
        T = xs.shape[0]
        feat = xs.shape[1:]
        M = feat.numel()
        dt = xs.dtype
        x2 = xs.detach().contiguous().view(T, M)
        pd = dict(zip(_PARAM_NAMES, params, strict=True))
        # The delayed reset's backward needs the recomputing mode, i.e. a built-in surrogate.
        known = _kern.surrogate_coefficients(cfg.surrogate) is not None if cfg.spk else False
        ctx.fast = cfg.spk and not (cfg.syn or cfg.ada) and cfg.binary and (known or not cfg.delay)
        # The IF/LIF kernels read parameters per feature, repeating over the batch (see
        # ``_numba_cpu._tile``); the generic ones per column.
        pshape = feat[1:] if ctx.fast and all(_broadcasts(p, feat[1:]) for p in params) else feat
        P = pshape.numel()
        beta = _per_neuron(pd["beta"], pshape, 1.0, dt)
        k = _per_neuron(None if pd["beta"] is None else 1 - pd["beta"], pshape, 0.0, dt)
        g = k if cfg.di else torch.ones(P, dtype=dt)
        arrs = {
            "beta": beta,
            "k": k,
            "g": g,
            "vl": _per_neuron(pd["v_leak"], pshape, 0.0, dt),
            "vth": _per_neuron(pd["v_th"], pshape, 0.0, dt),
            "vr": _per_neuron(pd["v_reset"], pshape, 0.0, dt),
            "bs": _per_neuron(pd["beta_syn"], pshape, 0.0, dt),
            "rho": _per_neuron(pd["rho"], pshape, 0.0, dt),
            "adapt": _per_neuron(pd["adapt"], pshape, 0.0, dt),
            "cst": torch.tensor([0.0, 1.0], dtype=dt),
        }
        needs = ctx.needs_input_grad
        grad = cfg.grad and any(needs[1:])
        v0f = v0.detach().reshape(M).contiguous()
        v_out = torch.empty(M, dtype=dt)
        out = _big_empty(T, M, dt)
        empty = torch.empty(0, 0, dtype=dt)
        if ctx.fast:
            # A built-in surrogate is evaluated inside the backward kernel, which re-runs the
            # forward from membrane checkpoints; a user's surrogate needs h - v_th stored.
            ck = grad and known
            hs = _big_empty(T, M, dt) if (grad and not known) else empty
            vck = torch.empty((T + _kern.CHECKPOINT - 1) // _kern.CHECKPOINT if ck else 0, M, dtype=dt)
            arrs["kvl"] = arrs["k"] * arrs["vl"]
            a = [_np(t) for t in (x2, v0f, arrs["beta"], arrs["kvl"], arrs["g"], arrs["vth"])]
            a += [_np(t) for t in (arrs["vr"], arrs["cst"], out, hs, vck, v_out)]
            _run_columns("lif_forward", [*a, cfg.reset, int(hs.numel() > 0), int(ck), cfg.delay], M, T * M)
            if grad:
                # The input is saved in place of a [T, M] history (no copy unless xs was
                # strided); it shares xs's version counter, so an in-place change of xs
                # before backward is reported by autograd.
                ctx.save_for_backward(hs, vck, x2, v0f)
                ctx.cfg = cfg
                ctx.arrs = arrs
                ctx.shapes = (xs.shape, [None if p is None else p.shape for p in params])
                ctx.has_c = False
            c_final = torch.empty(0, dtype=dt)
            ctx.mark_non_differentiable(c_final)
            return out.view(xs.shape), v_out.view(feat), c_final
        c0f = torch.zeros(M, dtype=dt) if c0 is None else c0.detach().reshape(M).contiguous()
        if not cfg.spk or not cfg.binary:
            hs = out  # the output already is h (LI) or h - theta (graded output)
        else:
            hs = _big_empty(T, M, dt) if grad else empty
        a_hist = _big_empty(T, M, dt) if (grad and cfg.ada) else empty
        # The drive is only needed for d(loss)/d(beta) with decay_input and d/d(beta_syn).
        need_d = grad and ((cfg.di and needs[4]) or (cfg.syn and needs[5]))
        if not need_d:
            d_hist = empty
        else:  # without a synaptic current the drive is the input itself: keep it, no copy
            d_hist = _big_empty(T, M, dt) if cfg.syn else x2
        c_out = torch.empty(M, dtype=dt)
        _kern.forward(
            _np(x2),
            _np(v0f),
            _np(c0f),
            *(_np(arrs[n]) for n in ("beta", "k", "g", "vl", "vth", "vr", "bs", "rho", "adapt", "cst")),
            _np(out),
            _np(hs),
            _np(a_hist),
            _np(d_hist),
            _np(v_out),
            _np(c_out),
            cfg.spk,
            cfg.syn,
            cfg.ada,
            cfg.reset,
            cfg.delay,
            cfg.binary,
            int(grad or hs is out),
            int(a_hist.numel() > 0),
            int(d_hist.numel() > 0 and bool(cfg.syn)),
        )
        outs = out.view(xs.shape)
        c_final = c_out.view(feat) if c0 is not None else c_out[:0]
        if c0 is None:
            ctx.mark_non_differentiable(c_final)
        if grad:
            ctx.save_for_backward(hs, a_hist, d_hist, v0f)
            ctx.cfg = cfg
            ctx.arrs = arrs
            ctx.shapes = (xs.shape, [None if p is None else p.shape for p in params])
            ctx.has_c = c0 is not None
        return outs, v_out.view(feat), c_final

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: Tensor | None, g_v: Tensor | None, g_c: Tensor | None):  # type: ignore[override]
        if ctx.fast:
            return _fast_backward(ctx, g_out, g_v)
        hs, a_hist, d_hist, v0f = ctx.saved_tensors
        cfg: _Cfg = ctx.cfg
        arrs = ctx.arrs
        xs_shape = ctx.shapes[0]
        T = xs_shape[0]
        feat = xs_shape[1:]
        M = feat.numel()
        dt = v0f.dtype
        sur = cfg.surrogate

        gvn = _carried(g_v, M, dt)
        gcn = _carried(g_c if ctx.has_c else None, M, dt)
        acc = {
            n: torch.zeros(M, dtype=dt)
            for n in ("beta", "v_leak", "v_th", "v_reset", "beta_syn", "rho", "adapt")
        }
        gx = _big_empty(T, M, dt)
        empty = torch.empty(0, 0, dtype=dt)
        if cfg.spk and cfg.delay:
            sgr0 = sur.grad(v0f - arrs["vth"]).to(dt).contiguous()
        else:
            sgr0 = torch.empty(0, dtype=dt)
        rows = max(1, _CHUNK_ELEMS // max(M, 1))
        kind, sp = _surrogate_constants(sur, dt) if cfg.spk else (-1, empty)
        sg_buf = torch.empty(min(T, rows + 1), M, dtype=dt) if kind >= 0 else empty
        t1 = T
        while t1 > 0:
            t0 = max(0, t1 - rows)
            off = 1 if (cfg.spk and cfg.delay and t0 > 0) else 0
            if not cfg.spk:
                sg = empty
            elif kind >= 0:  # a built-in surrogate: its derivative in numba, no torch temporaries
                sg = sg_buf[: t1 - t0 + off]
                _kern.surrogate_grad(kind, _np(sp), _np(hs[t0 - off : t1]), _np(sg))
            else:
                sg = sur.grad(hs[t0 - off : t1]).to(dt).contiguous()
            if g_out is None:
                go = torch.zeros(t1 - t0, M, dtype=dt)
            else:
                go = g_out[t0:t1].reshape(t1 - t0, M).to(dt).contiguous()
            _kern.backward(
                t0,
                t1,
                _np(hs),
                _np(a_hist),
                _np(d_hist),
                _np(sg),
                off,
                _np(go),
                _np(gx),
                _np(v0f),
                _np(sgr0),
                *(_np(arrs[n]) for n in ("beta", "k", "g", "vl", "vth", "vr", "bs", "rho", "adapt", "cst")),
                _np(gvn),
                _np(gcn),
                *(_np(acc[n]) for n in ("beta", "v_leak", "v_th", "v_reset", "beta_syn", "rho", "adapt")),
                cfg.spk,
                cfg.syn,
                cfg.ada,
                cfg.reset,
                cfg.det,
                cfg.delay,
                cfg.binary,
                cfg.td,
                cfg.di,
                int(d_hist.numel() > 0),
            )
            t1 = t0
        return _pack_grads(ctx, gx, gvn, gcn, acc)


# Elements of one surrogate tile in the fast backward (a user's surrogate only): the
# surrogate's torch temporaries stay in L2 and the kernel reads the tile while it is there.
_TILE = 1 << 16


def _upstream(g_out: Tensor | None, T: int, M: int, dt: torch.dtype) -> tuple[Tensor, int, int]:
    """``(go, go_t, go_scalar)`` for :func:`_numba_cpu.lif_backward` without copying broadcasts.

    The gradient of ``out.sum()`` is one scalar expanded to ``[T, B, ...]`` (all strides 0)
    and that of ``out.mean(0)``-like losses one row expanded over time: pass the scalar or
    the row instead of materialising ``T x M`` values.
    """
    if g_out is None:
        return torch.zeros(1, 1, dtype=dt), 0, 1
    g2 = g_out.detach().to(dt).reshape(T, M)
    if all(st == 0 or n == 1 for st, n in zip(g2.stride(), g2.shape, strict=True)):
        return g2[:1, :1].contiguous(), 0, 1
    if g2.is_contiguous():
        return g2, 1, 0
    if g2.stride(0) == 0 and g2[0].is_contiguous():
        return g2[:1], 0, 0
    return g2.contiguous(), 1, 0


def _surrogate_constants(sur: Any, dt: torch.dtype) -> tuple[int, Tensor]:
    """``(kind, sp)`` for the kernels' in-loop surrogate (``kind = -1``: not a built-in one).

    ``sp = [p0, p1, p2, 1, 0]`` in ``dt``: the surrogate's constants rounded to the dtype as
    torch rounds a Python scalar, then the typed one and zero the formulas need.
    """
    found = _kern.surrogate_coefficients(sur)
    kind, p = (-1, (0.0, 0.0, 0.0)) if found is None else found
    return kind, torch.tensor([*p, 1.0, 0.0], dtype=dt)


def _fast_backward(ctx: Any, g_out: Tensor | None, g_v: Tensor | None) -> tuple[Tensor | None, ...]:
    """Backward of the IF/LIF fast path: one numba pass per column range (threads split columns).

    A surrogate the kernel does not know (a user's subclass) is evaluated by torch on tiles
    of the stored ``h - v_th`` that the kernel consumes while they are still in L2.
    """
    hs, vck, x2, v0f = ctx.saved_tensors
    cfg: _Cfg = ctx.cfg
    arrs = ctx.arrs
    xs_shape = ctx.shapes[0]
    T = xs_shape[0]
    feat = xs_shape[1:]
    M = feat.numel()
    dt = v0f.dtype
    needs = ctx.needs_input_grad
    sur = cfg.surrogate
    gvn = _carried(g_v, M, dt)
    need_p = any(needs[4:])
    names = ("beta", "v_leak", "v_th", "v_reset")
    acc = {n: torch.zeros(M if need_p else 0, dtype=dt) for n in names}
    gx = _big_empty(T, M, dt)
    go, go_t, go_scalar = _upstream(g_out, T, M, dt)
    coef = torch.tensor([0, 1, cfg.reset == 0, cfg.reset == 1, 1 - cfg.det, cfg.td, cfg.di], dtype=dt)
    kind, sp = _surrogate_constants(sur, dt)
    head = [_np(x2), _np(vck), _np(hs), kind, _np(sp)]
    rest = [_np(go), go_t, go_scalar, _np(gx), _np(v0f)]
    rest += [_np(arrs[n]) for n in ("beta", "kvl", "k", "g", "vl", "vth", "vr")]
    rest += [_np(coef), _np(gvn), *(_np(acc[n]) for n in names), cfg.reset, int(need_p), cfg.delay]
    if kind >= 0:
        no_tile = torch.empty(0, 0, dtype=dt).numpy()
        _run_columns("lif_backward", [0, T, *head, no_tile, *rest], M, T * M)
    else:
        # A user's surrogate runs torch on each tile, on one thread: tiles in threads would
        # each start an OpenMP team, and the GIL is taken several times per tile.
        for c0 in range(0, M, _TILE):
            c1 = min(M, c0 + _TILE)
            rows = max(1, _TILE // (c1 - c0))
            for t1 in range(T, 0, -rows):
                t0 = max(0, t1 - rows)
                sg = sur.grad(hs[t0:t1, c0:c1]).to(dt).contiguous()  # hs needs no grad: no detach
                _kern.lif_backward(t0, t1, *head, sg.numpy(), *rest, c0, c1)
    return _pack_grads(ctx, gx, gvn, None, acc)


def _pack_grads(
    ctx: Any, gx: Tensor, gvn: Tensor, gcn: Tensor | None, acc: dict[str, Tensor]
) -> tuple[Tensor | None, ...]:
    """The tuple :meth:`_Fused.backward` returns, parameter gradients summed to their shapes."""
    xs_shape, p_shapes = ctx.shapes
    feat = xs_shape[1:]
    needs = ctx.needs_input_grad
    grads: list[Tensor | None] = [None, gx.view(xs_shape) if needs[1] else None]
    grads.append(gvn.view(feat) if needs[2] else None)
    grads.append(gcn.view(feat) if (gcn is not None and ctx.has_c and needs[3]) else None)
    for i, name in enumerate(_PARAM_NAMES):
        shape = p_shapes[i]
        if shape is None or not needs[4 + i]:
            grads.append(None)
        else:
            grads.append(acc[name].view(feat).sum_to_size(shape))
    return tuple(grads)
