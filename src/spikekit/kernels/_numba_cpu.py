"""Numba loops behind the fused CPU backend (:mod:`spikekit.kernels.cpu` is the torch glue).

One forward and one backward loop serve every neuron family. A family is a combination of
flags over one generalised step, which is the reference step written out per neuron:

* ``d = c + x`` if ``syn`` (CubaLIF/LI: ``c`` is the synaptic current) else ``d = x``;
* ``theta = v_th + adapt a`` if ``ada`` (ALIF: ``c`` is the adaptation ``a``) else ``v_th``;
* ``h = beta v + k v_leak + g d`` with ``k = 1 - beta`` and ``g = k`` (decay_input) or 1
  (IF is ``beta = 1, k = 0, g = 1``, i.e. exactly ``v + x``);
* spike, reset and output exactly as :func:`spikekit.neurons._base.integrate`;
* ``c' = beta_syn d`` (``syn``) or ``c' = rho a + z`` (``ada``).

Every arithmetic operation is done in the array dtype in the same order as the torch
reference (so spikes match exactly); the scalars ``zero``/``one`` come from ``cst`` because a
Python literal would promote float32 arithmetic to float64.

Layout: all ``[T, M]`` arrays are C-contiguous with ``M`` the flattened ``[B, *features]``;
per-neuron parameters are ``[M]`` for the generic loops and ``[features]`` (repeating over
the batch) for the IF/LIF ones. Work is split over blocks of neurons and, inside a block,
the time loop is outside the neuron loop so each step reads one contiguous run of memory.
The generic loops take their flags as runtime integers (one compiled specialisation per
dtype); the IF/LIF loops hoist them out of the neuron loop so it vectorises, evaluate the
surrogate derivative themselves (section "surrogates"), and take a column range so
:mod:`spikekit.kernels.cpu` can split neurons between threads (section "torch's thread
team").
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, prange, types
from numba.core.extending import intrinsic

BLOCK = 512
# numba's own thread pools stay off: its OpenMP layer links the system libgomp, a second
# runtime next to torch's bundled one, and the two spin-wait against each other (measured
# 2-6x slower on 2 cores, even with numba.set_num_threads(1)). Threads, where they pay, are
# plain Python threads over column ranges (see ``spikekit.kernels.cpu``).
PARALLEL = False


@njit(parallel=PARALLEL, cache=True)
def forward(
    x: np.ndarray,
    v0: np.ndarray,
    c0: np.ndarray,
    beta: np.ndarray,
    k: np.ndarray,
    g: np.ndarray,
    vl: np.ndarray,
    vth: np.ndarray,
    vr: np.ndarray,
    bs: np.ndarray,
    rho: np.ndarray,
    adapt: np.ndarray,
    cst: np.ndarray,
    out: np.ndarray,
    hs: np.ndarray,
    a_hist: np.ndarray,
    d_hist: np.ndarray,
    v_out: np.ndarray,
    c_out: np.ndarray,
    spk: int,
    syn: int,
    ada: int,
    reset: int,
    delay: int,
    binary: int,
    store_hs: int,
    store_a: int,
    store_d: int,
) -> None:
    """Run ``T`` steps; write outputs, saved tensors and the final state in place.

    ``reset``: 0 hard, 1 soft, 2 none. ``hs`` receives ``h - theta`` (spiking) or ``h`` (LI);
    ``a_hist`` the pre-step adaptation; ``d_hist`` the drive ``d``.
    """
    T, M = x.shape
    zero = cst[0]
    one = cst[1]
    nblk = (M + BLOCK - 1) // BLOCK
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, M)
        for m in range(lo, hi):
            v_out[m] = v0[m]
            c_out[m] = c0[m]
        for t in range(T):
            for m in range(lo, hi):
                v = v_out[m]
                c = c_out[m]
                d = c + x[t, m] if syn else x[t, m]
                if not spk:
                    h = beta[m] * v + k[m] * vl[m] + g[m] * d
                    out[t, m] = h
                    v_out[m] = h
                    if store_hs:
                        hs[t, m] = h
                else:
                    th = vth[m] + adapt[m] * c if ada else vth[m]
                    if delay:
                        r = one if v - th >= 0 else zero
                        if reset == 0:
                            u = v - r * (v - vr[m])
                            h = beta[m] * u + k[m] * vl[m] + g[m] * d
                        elif reset == 1:
                            h = beta[m] * v + k[m] * vl[m] + g[m] * d - r * th
                        else:
                            h = beta[m] * v + k[m] * vl[m] + g[m] * d
                        s = h - th
                        z = one if s >= 0 else zero
                        vn = h
                    else:
                        h = beta[m] * v + k[m] * vl[m] + g[m] * d
                        s = h - th
                        z = one if s >= 0 else zero
                        if reset == 0:
                            vn = h - z * (h - vr[m])
                        elif reset == 1:
                            vn = h - z * th
                        else:
                            vn = h
                    out[t, m] = z if binary else s
                    if store_hs:
                        hs[t, m] = s
                    v_out[m] = vn
                    if ada:
                        c_out[m] = rho[m] * c + z
                if syn:
                    c_out[m] = bs[m] * d
                if store_a:
                    a_hist[t, m] = c
                if store_d:
                    d_hist[t, m] = d


@njit(parallel=PARALLEL, cache=True)
def backward(
    t0: int,
    t1: int,
    hs: np.ndarray,
    a_hist: np.ndarray,
    d_hist: np.ndarray,
    sg: np.ndarray,
    sg_off: int,
    go: np.ndarray,
    gx: np.ndarray,
    v0: np.ndarray,
    sgr0: np.ndarray,
    beta: np.ndarray,
    k: np.ndarray,
    g: np.ndarray,
    vl: np.ndarray,
    vth: np.ndarray,
    vr: np.ndarray,
    bs: np.ndarray,
    rho: np.ndarray,
    adapt: np.ndarray,
    cst: np.ndarray,
    gvn: np.ndarray,
    gcn: np.ndarray,
    gbeta: np.ndarray,
    gvl: np.ndarray,
    gvth: np.ndarray,
    gvr: np.ndarray,
    gbs: np.ndarray,
    grho: np.ndarray,
    gadapt: np.ndarray,
    spk: int,
    syn: int,
    ada: int,
    reset: int,
    det: int,
    delay: int,
    binary: int,
    td: int,
    di: int,
    has_d: int,
) -> None:
    """Reverse-time adjoint of :func:`forward` over steps ``t1 - 1 ... t0``.

    ``gvn``/``gcn`` carry the gradient w.r.t. the state entering step ``t1`` on input and
    the state entering step ``t0`` on output. ``sg`` holds the surrogate derivative of rows
    ``t0 - sg_off ... t1 - 1`` of ``hs`` (computed by torch; the previous row is needed for
    the delayed reset); ``go`` the upstream gradient of rows ``t0 ... t1 - 1``. The membrane
    entering each step is recomputed from the previous row of ``hs``. Parameter gradients
    accumulate per neuron into the ``g*`` arrays.
    """
    M = hs.shape[1]
    zero = cst[0]
    one = cst[1]
    nblk = (M + BLOCK - 1) // BLOCK
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, M)
        for t in range(t1 - 1, t0 - 1, -1):
            for m in range(lo, hi):
                gv_next = gvn[m]
                gc_next = gcn[m]
                o = go[t - t0, m]
                d = d_hist[t, m] if has_d else zero
                a = a_hist[t, m] if ada else zero
                th = vth[m] + adapt[m] * a if ada else vth[m]
                # Membrane entering step t (and, for the delayed reset, the previous spike).
                zp = zero
                if t == 0:
                    v = v0[m]
                elif not spk:
                    v = hs[t - 1, m]
                else:
                    sp = hs[t - 1, m]
                    thp = vth[m] + adapt[m] * a_hist[t - 1, m] if ada else vth[m]
                    hp = sp + thp
                    zp = one if sp >= 0 else zero
                    if delay or reset == 2:
                        v = hp
                    elif reset == 0:
                        v = hp - zp * (hp - vr[m])
                    else:
                        v = hp - zp * thp
                gth = zero
                if not spk:
                    gh = o + gv_next
                else:
                    s = hs[t, m]
                    h = s + th
                    z = one if s >= 0 else zero
                    sgt = sg[t - t0 + sg_off, m]
                    gz = o if binary else zero
                    if ada:
                        gz += gc_next
                    if delay:
                        gs = sgt * gz + (zero if binary else o)
                        gh = gv_next + gs
                        gth = -gs
                    else:
                        if reset == 0:
                            gh = (one - z) * gv_next
                            if not det:
                                gz -= (h - vr[m]) * gv_next
                            gvr[m] += z * gv_next
                        elif reset == 1:
                            gh = gv_next
                            gth -= z * gv_next
                            if not det:
                                gz -= th * gv_next
                        else:
                            gh = gv_next
                        gs = sgt * gz + (zero if binary else o)
                        gh += gs
                        gth -= gs
                # Charge h = beta u + k v_leak + g d (- r theta for the delayed soft reset).
                u = v
                r = zero
                sgr = zero
                if spk and delay:
                    if t == 0:
                        r = one if v - th >= 0 else zero
                        sgr = sgr0[m]
                    else:
                        r = zp
                        sgr = sg[t - 1 - t0 + sg_off, m]
                    if reset == 0:
                        u = v - r * (v - vr[m])
                gu = beta[m] * gh
                if di:
                    gbeta[m] += gh * (u - vl[m] - d)
                else:
                    gbeta[m] += gh * (u - vl[m])
                gvl[m] += gh * k[m]
                gd = g[m] * gh
                gv = gu
                if spk and delay:
                    if reset == 0:
                        gv = gu * (one - r)
                        gvr[m] += gu * r
                        gr = -gu * (v - vr[m])
                    elif reset == 1:
                        gr = -gh * th
                        gth -= gh * r
                    else:
                        gr = zero
                    if not det:
                        gv += sgr * gr
                        gth -= sgr * gr
                gc = zero
                if spk:
                    gvth[m] += gth
                if ada:
                    gadapt[m] += gth * a
                    grho[m] += a * gc_next
                    gc = adapt[m] * gth + rho[m] * gc_next
                if syn:
                    gd += bs[m] * gc_next
                    gbs[m] += d * gc_next
                    gc = gd
                gx[t, m] = gd
                if td:
                    gvn[m] = gv
                    gcn[m] = gc
                else:
                    gvn[m] = zero
                    gcn[m] = zero


# ----------------------------------------------------------------------------- surrogates
# The surrogate derivative evaluated inside the kernels, so the IF/LIF backward is one pass
# over memory with no torch call per tile. These formulas restate each built-in surrogate's
# ``grad`` (spikekit.surrogate stays the definition): ``surrogate_coefficients`` turns the
# surrogate's fields into up to three constants computed in Python (float64) and rounded to
# the tensor's dtype, exactly as torch rounds a Python scalar in ``alpha * x``, so each
# formula runs the same operations in the same dtype as the torch expression. The guard is
# tests/test_kernels_cpu.py::test_surrogate_formulas_match_grad, which compares every
# built-in surrogate on a dense grid, both dtypes. A surrogate not listed here (a user's
# subclass) keeps the torch-tile path in spikekit.kernels.cpu.

_SURROGATES = (
    # class name: coefficients from the surrogate's fields (alpha, and c for the leaky ramp)
    ("Sigmoid", lambda s: (s.alpha, 0.0, 0.0)),
    ("ATan", lambda s: ((math.pi / 2) * s.alpha, s.alpha / 2, 0.0)),
    ("FastSigmoid", lambda s: (s.alpha, 0.0, 0.0)),
    ("PiecewiseQuadratic", lambda s: (s.alpha, s.alpha**2, 0.0)),
    ("SoftSign", lambda s: (s.alpha, 2.0, 0.0)),
    ("NonzeroSignLogAbs", lambda s: (1 / s.alpha, 0.0, 0.0)),
    ("Erf", lambda s: (s.alpha / math.sqrt(math.pi), s.alpha, 0.0)),
    ("PiecewiseLeakyReLU", lambda s: (1 / s.alpha, 1 / (2 * (1 / s.alpha)), s.c)),
    ("PiecewiseExp", lambda s: (s.alpha / 2, -s.alpha, 0.0)),
    ("Triangle", lambda s: (s.alpha, 0.0, 0.0)),
    ("StraightThrough", lambda s: (s.alpha, 0.0, 0.0)),
    ("Boxcar", lambda s: (s.alpha, 0.5, 0.0)),
)
SURROGATE_KINDS = {name: i for i, (name, _) in enumerate(_SURROGATES)}


def surrogate_coefficients(surrogate: object) -> tuple[int, tuple[float, float, float]] | None:
    """``(kind, (p0, p1, p2))`` for a built-in surrogate, ``None`` for any other class.

    Only the exact built-in classes qualify: a subclass may override ``grad``.
    """
    from spikekit import surrogate as sg

    name = type(surrogate).__name__
    kind = SURROGATE_KINDS.get(name)
    if kind is None or type(surrogate) is not getattr(sg, name, None):
        return None
    return kind, _SURROGATES[kind][1](surrogate)


# Not inlined: the kernels call it for a row of up to 8192 values at a time, and one compiled
# copy of the twelve loops (instead of one per call site) cut the first-use compile by ~3 s.
@njit(nogil=True, error_model="numpy")
def surrogate_row(kind: int, sp: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """``out[j] = grad(x[j])`` for surrogate ``kind`` with dtype constants ``sp = [p0, p1, p2]``."""
    p0 = sp[0]
    p1 = sp[1]
    p2 = sp[2]
    one = sp[3]
    zero = sp[4]
    n = x.shape[0]
    if kind == 0:  # Sigmoid: s = sigmoid(alpha x); alpha s (1 - s)
        for j in range(n):
            s = one / (one + math.exp(-(p0 * x[j])))
            out[j] = p0 * s * (one - s)
    elif kind == 1:  # ATan: (alpha/2) / (1 + ((pi/2) alpha x)^2)
        for j in range(n):
            y = p0 * x[j]
            out[j] = p1 / (one + y * y)
    elif kind == 2:  # FastSigmoid: 1 / (alpha |x| + 1)^2
        for j in range(n):
            y = p0 * abs(x[j]) + one
            out[j] = one / (y * y)
    elif kind == 3:  # PiecewiseQuadratic: max(0, alpha - alpha^2 |x|)
        for j in range(n):
            out[j] = max(p0 - p1 * abs(x[j]), zero)
    elif kind == 4:  # SoftSign: alpha / (2 (1 + |alpha x|)^2)
        for j in range(n):
            y = one + abs(p0 * x[j])
            out[j] = p0 / (p1 * (y * y))
    elif kind == 5:  # NonzeroSignLogAbs: 1 / (1/alpha + |x|)
        for j in range(n):
            out[j] = one / (p0 + abs(x[j]))
    elif kind == 6:  # Erf: alpha/sqrt(pi) exp(-(alpha x)^2)
        for j in range(n):
            y = p1 * x[j]
            out[j] = p0 * math.exp(-(y * y))
    elif kind == 7:  # PiecewiseLeakyReLU: 1/(2w) if |x| < w else c
        for j in range(n):
            out[j] = p1 if abs(x[j]) < p0 else p2
    elif kind == 8:  # PiecewiseExp: (alpha/2) exp(-alpha |x|)
        for j in range(n):
            out[j] = p0 * math.exp(p1 * abs(x[j]))
    elif kind == 9:  # Triangle: alpha max(0, 1 - |x|)
        for j in range(n):
            out[j] = p0 * max(one - abs(x[j]), zero)
    elif kind == 10:  # StraightThrough: alpha
        for j in range(n):
            out[j] = p0
    else:  # Boxcar: alpha if |alpha x| < 1/2 else 0
        for j in range(n):
            out[j] = p0 if abs(p0 * x[j]) < p1 else zero


@njit(cache=True, nogil=True, error_model="numpy")
def surrogate_grad(kind: int, sp: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """:func:`surrogate_row` over every row of the 2-D arrays ``x`` and ``out``."""
    for t in range(x.shape[0]):
        surrogate_row(kind, sp, x[t], out[t])


# ----------------------------------------------------------------------------- IF/LIF fast path
# The generic loops above branch on a dozen runtime flags per element, which keeps LLVM from
# vectorising them. IF and LIF with spike output (any reset, delayed or not) carry most
# training time, so they get these loops: option choices are hoisted out of the neuron
# loop (one loop body per choice, each branch-free: selects and 0/1 coefficients), so each
# vectorises. The step's arithmetic is exactly the generic (= reference) one.
#
# Both work on the neuron columns ``lo:hi`` only: neurons are independent over the whole
# sequence, so the torch glue splits the columns between threads. Inside a call,
# columns go in blocks of ``FAST_BLOCK`` whose per-neuron state stays in L2 while every step
# streams one contiguous 32 KB run of each [T, M] array. Narrower blocks (512) jump to a new
# page at every step and measured 1.6x slower at M = 32768 (TLB misses, prefetchers
# stopping at page ends).
#
# What the backward needs is recomputed, not stored: at these sizes the layer is bound by
# memory traffic (measured on the benchmark machine: a forward that also wrote ``h - v_th``
# for every step took 4.8 ms against 3.1 ms without, T = 500, 8192 neurons, buffers not in
# cache). The forward keeps the membrane every ``CHECKPOINT`` steps; the backward re-runs
# each such segment from its checkpoint into an L2-resident buffer, then walks it backwards.
# Its memory traffic is the input read and the input gradient written, as with a stored
# ``h - v_th``, but the forward no longer writes a third [T, M] array.

FAST_BLOCK = 8192
CHECKPOINT = 16


@njit(inline="always")
def _lif_step_rows(reset, delay, xr, v, bb, kk, gg, th, rr, orow, srow, one, zero):
    """One IF/LIF step for a row of neurons: charge, fire into ``orow``, ``h - v_th`` into ``srow``.

    With ``delay`` (snntorch's default), the carried ``v`` is the unreset ``h`` and the
    reset of the previous step's spike ``r = [v - v_th >= 0]`` is applied before charging.
    """
    n = v.shape[0]
    if delay and reset == 0:
        for j in range(n):
            vj = v[j]
            r = one if vj - th[j] >= zero else zero
            h = bb[j] * (vj - r * (vj - rr[j])) + kk[j] + gg[j] * xr[j]
            s = h - th[j]
            v[j] = h
            orow[j] = one if s >= zero else zero
            srow[j] = s
    elif delay and reset == 1:
        for j in range(n):
            vj = v[j]
            r = one if vj - th[j] >= zero else zero
            h = bb[j] * vj + kk[j] + gg[j] * xr[j] - r * th[j]
            s = h - th[j]
            v[j] = h
            orow[j] = one if s >= zero else zero
            srow[j] = s
    elif reset == 0:
        for j in range(n):
            h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
            s = h - th[j]
            z = one if s >= zero else zero
            v[j] = h - z * (h - rr[j])
            orow[j] = z
            srow[j] = s
    elif reset == 1:
        for j in range(n):
            h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
            s = h - th[j]
            z = one if s >= zero else zero
            v[j] = h - z * th[j]
            orow[j] = z
            srow[j] = s
    else:
        for j in range(n):
            h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
            s = h - th[j]
            v[j] = h
            orow[j] = one if s >= zero else zero
            srow[j] = s


@njit(inline="always")
def _tile(src: np.ndarray, b0: int, n: int) -> np.ndarray:
    """Columns ``b0 .. b0 + n`` of a per-neuron parameter that repeats every ``len(src)``.

    The IF/LIF kernels take parameters per feature (``[features]``, repeating over the batch
    part of the flattened ``[B, *features]`` columns), not per column: for a conv layer at few
    steps, ``M``-long parameter arrays cost as much to build as the layer itself.
    """
    p = src.shape[0]
    dst = np.empty(n, src.dtype)
    i = b0 % p
    j = 0
    while j < n:
        c = min(n - j, p - i)
        dst[j : j + c] = src[i : i + c]
        j += c
        i = 0
    return dst


@njit(cache=True, nogil=True, error_model="numpy")
def lif_forward(
    x: np.ndarray,
    v0: np.ndarray,
    beta: np.ndarray,
    kvl: np.ndarray,
    g: np.ndarray,
    vth: np.ndarray,
    vr: np.ndarray,
    cst: np.ndarray,
    out: np.ndarray,
    hs: np.ndarray,
    vck: np.ndarray,
    v_out: np.ndarray,
    reset: int,
    store_hs: int,
    store_ck: int,
    delay: int,
    lo: int,
    hi: int,
) -> None:
    """IF/LIF forward over columns ``lo:hi``; ``kvl = (1 - beta) v_leak`` is precomputed.

    ``beta, kvl, g, vth, vr`` are per feature: column ``m`` uses entry ``m % len`` (see
    :func:`_tile`).

    Saves ``h - v_th`` of every step into ``hs`` if ``store_hs``, and the membrane entering
    every ``CHECKPOINT``-th step into ``vck`` if ``store_ck``.
    """
    T = x.shape[0]
    zero = cst[0]
    one = cst[1]
    # Without saving, ``h - theta`` goes to an L1-resident scratch row.
    scratch = np.empty(FAST_BLOCK, x.dtype)
    for b0 in range(lo, hi, FAST_BLOCK):
        b1 = min(b0 + FAST_BLOCK, hi)
        n = b1 - b0
        v = v0[b0:b1].copy()
        bb = _tile(beta, b0, n)
        kk = _tile(kvl, b0, n)
        gg = _tile(g, b0, n)
        th = _tile(vth, b0, n)
        rr = _tile(vr, b0, n)
        for t in range(T):
            if store_ck and t % CHECKPOINT == 0:
                vck[t // CHECKPOINT, b0:b1] = v
            srow = hs[t, b0:b1] if store_hs else scratch[:n]
            _lif_step_rows(reset, delay, x[t, b0:b1], v, bb, kk, gg, th, rr, out[t, b0:b1], srow, one, zero)
        v_out[b0:b1] = v


# Columns of one step handled together in the backward: the surrogate derivative of these
# columns goes to an L1-resident scratch row that the adjoint loop then reads (both loops
# vectorise, which one fused loop with a 12-way switch would not).
SUB = 512


@njit(inline="always")
def _delayed_adjoint(
    srow, vrow, sgs, sgr, kind, sp, grow, xrow, gv, bb, gg, th, rr, drow, kk, ll, ab, al, at, ar, coef, need_p
):  # type: ignore[no-untyped-def]
    """Adjoint of one step of the delayed reset, for one row of neurons (see ``_lif_step_rows``).

    ``vrow`` is the membrane entering the step (the previous unreset ``h``); the previous
    spike ``r = [v - v_th >= 0]`` and its surrogate derivative are recomputed from it.
    """
    zero = coef[0]
    one = coef[1]
    hard = coef[2]
    soft = coef[3]
    ndet = coef[4]
    td = coef[5]
    di = coef[6]
    m = srow.shape[0]
    for j in range(m):
        sgr[j] = vrow[j] - th[j]
    surrogate_row(kind, sp, sgr, sgr)  # in place: each element is read before it is written
    for j in range(m):
        gs = sgs[j] * grow[j]
        gh = gv[j] + gs
        v = vrow[j]
        r = one if v - th[j] >= zero else zero
        gu = bb[j] * gh
        # hard: h = beta (v - r (v - v_reset)) + ...; soft: h = beta v + ... - r v_th
        gr = -hard * gu * (v - rr[j]) - soft * gh * th[j]
        xrow[j] = gg[j] * gh
        gv[j] = td * (gu * (one - hard * r) + ndet * sgr[j] * gr)
        if need_p:
            u = v - hard * r * (v - rr[j])
            ab[j] += gh * (u - ll[j] - di * drow[j])
            al[j] += gh * kk[j]
            ar[j] += hard * gu * r
            at[j] += -gs - soft * gh * r - ndet * sgr[j] * gr


@njit(cache=True, nogil=True, error_model="numpy")
def lif_backward(
    t0: int,
    t1: int,
    x: np.ndarray,
    vck: np.ndarray,
    hs: np.ndarray,
    kind: int,
    sp: np.ndarray,
    sg: np.ndarray,
    go: np.ndarray,
    go_t: int,
    go_scalar: int,
    gx: np.ndarray,
    v0: np.ndarray,
    beta: np.ndarray,
    kvl: np.ndarray,
    k: np.ndarray,
    g: np.ndarray,
    vl: np.ndarray,
    vth: np.ndarray,
    vr: np.ndarray,
    coef: np.ndarray,
    gvn: np.ndarray,
    gbeta: np.ndarray,
    gvl: np.ndarray,
    gvth: np.ndarray,
    gvr: np.ndarray,
    reset: int,
    need_p: int,
    delay: int,
    lo: int,
    hi: int,
) -> None:
    """IF/LIF reverse-time adjoint over steps ``t1 - 1 ... t0`` and columns ``lo:hi``.

    ``h - v_th`` of each step is recomputed from the input ``x`` and the checkpoints ``vck``
    (when ``vck`` has rows; then ``t0 = 0``), or read from ``hs``. Its surrogate derivative is
    computed here for a built-in surrogate (``kind >= 0``, constants ``sp``; see
    :func:`surrogate_row`) or read from ``sg[t - t0, m - lo]``, a tile computed by torch
    (``kind = -1``). The upstream gradient of step ``t`` and neuron ``m`` is
    ``go[t * go_t, m]`` (``go_t = 0``: one row broadcast over time), or ``go[0, 0]`` for every
    element when ``go_scalar`` (the gradient of a ``sum()``: never materialised). ``coef`` =
    ``[0, 1, hard, soft, 1 - detach_reset, time_dependent, decay_input]`` as 0/1 values of
    the dtype. Parameter gradients (and the membrane entering each step, which they need)
    only if ``need_p``; ``x`` is the drive ``d`` for the decay-input term of ``beta``.
    ``delay`` (the delayed reset) needs the recomputing mode with a built-in surrogate.
    """
    zero = coef[0]
    one = coef[1]
    hard = coef[2]
    soft = coef[3]
    ndet = coef[4]
    td = coef[5]
    di = coef[6]
    dt = gx.dtype
    recompute = vck.shape[0] > 0
    K = CHECKPOINT if recompute else t1 - t0
    gconst = np.full(SUB, go[0, 0] if go_scalar else zero, dt)
    scratch = np.empty(SUB, dt)
    nb = min(FAST_BLOCK, hi - lo)
    sbuf = np.empty((K if recompute else 0, nb), dt)  # h - v_th of one segment
    keep_v = recompute and (need_p or delay)
    vbuf = np.empty((K if keep_v else 0, nb), dt)  # membrane entering each step
    scratch2 = np.empty(SUB, dt)  # delayed reset: v - v_th entering the step, then its surrogate
    obuf = np.empty(nb, dt)
    vprev = np.empty(SUB, dt)
    for b0 in range(lo, hi, FAST_BLOCK):
        n = min(FAST_BLOCK, hi - b0)
        s0 = b0 - lo
        bb = _tile(beta, b0, n)
        tb = td * bb  # carried gradient factor: gv' = td beta gh
        gg = _tile(g, b0, n)
        th = _tile(vth, b0, n)
        rr = _tile(vr, b0, n)
        # gz = go - cr gv with cr = (1 - det)(hard (h - v_reset) + soft v_th); h = s + v_th.
        ch = ndet * hard
        cc = ndet * (hard * (th - rr) + soft * th)
        gv = gvn[b0 : b0 + n].copy()
        kv = _tile(kvl, b0, n)
        vseg = np.empty(n, dt)
        np_ = n if need_p else 0  # parameter-gradient arrays are empty when not needed
        kk = _tile(k, b0, np_)
        ll = _tile(vl, b0, np_)
        a_beta = np.zeros(np_, dt)
        a_vl = np.zeros(np_, dt)
        a_th = np.zeros(np_, dt)
        a_vr = np.zeros(np_, dt)
        te = t1
        while te > t0:
            ts = max(t0, ((te - 1) // K) * K) if recompute else t0
            if recompute:  # re-run steps ts .. te - 1 from the checkpoint (ts is a multiple of K)
                vseg[:] = vck[ts // K, b0 : b0 + n]
                for r in range(te - ts):
                    if keep_v:
                        vbuf[r, :n] = vseg
                    _lif_step_rows(
                        reset,
                        delay,
                        x[ts + r, b0 : b0 + n],
                        vseg,
                        bb,
                        kv,
                        gg,
                        th,
                        rr,
                        obuf[:n],
                        sbuf[r, :n],
                        one,
                        zero,
                    )
            for t in range(te - 1, ts - 1, -1):
                for j0 in range(0, n, SUB):
                    j1 = min(n, j0 + SUB)
                    m = j1 - j0
                    c0 = b0 + j0
                    srow = sbuf[t - ts, j0:j1] if recompute else hs[t, c0 : c0 + m]
                    if kind >= 0:
                        sgs = scratch[:m]
                        surrogate_row(kind, sp, srow, sgs)
                    else:
                        sgs = sg[t - t0, s0 + j0 : s0 + j1]
                    xrow = gx[t, c0 : c0 + m]
                    grow = gconst[:m] if go_scalar else go[t * go_t, c0 : c0 + m]
                    gvs = gv[j0:j1]
                    ccs = cc[j0:j1]
                    ggs = gg[j0:j1]
                    tbs = tb[j0:j1]
                    if delay:
                        _delayed_adjoint(
                            srow,
                            vbuf[t - ts, j0:j1],
                            sgs,
                            scratch2[:m],
                            kind,
                            sp,
                            grow,
                            xrow,
                            gvs,
                            bb[j0:j1],
                            ggs,
                            th[j0:j1],
                            rr[j0:j1],
                            x[t, c0 : c0 + m],
                            kk[j0 : j0 + m] if need_p else kk,
                            ll[j0 : j0 + m] if need_p else ll,
                            a_beta[j0 : j0 + m] if need_p else a_beta,
                            a_vl[j0 : j0 + m] if need_p else a_vl,
                            a_th[j0 : j0 + m] if need_p else a_th,
                            a_vr[j0 : j0 + m] if need_p else a_vr,
                            coef,
                            need_p,
                        )
                        continue
                    if not need_p:
                        for j in range(m):
                            s = srow[j]
                            z = one if s >= zero else zero
                            gvj = gvs[j]
                            gh = (one - hard * z) * gvj + sgs[j] * (grow[j] - (ch * s + ccs[j]) * gvj)
                            xrow[j] = ggs[j] * gh
                            gvs[j] = tbs[j] * gh
                        continue
                    ths = th[j0:j1]
                    if recompute:
                        vp = vbuf[t - ts, j0:j1]
                    elif t == 0:
                        vp = v0[c0 : c0 + m]
                    else:  # the membrane entering step t, from the previous step's h - v_th
                        vp = vprev[:m]
                        sprev = hs[t - 1, c0 : c0 + m]
                        rrs = rr[j0:j1]
                        for j in range(m):
                            hp = sprev[j] + ths[j]
                            zp = one if sprev[j] >= zero else zero
                            vp[j] = hp - zp * (hard * (hp - rrs[j]) + soft * ths[j])
                    drow = x[t, c0 : c0 + m]
                    kks = kk[j0:j1]
                    lls = ll[j0:j1]
                    ab = a_beta[j0:j1]
                    al = a_vl[j0:j1]
                    at = a_th[j0:j1]
                    ar = a_vr[j0:j1]
                    for j in range(m):
                        s = srow[j]
                        z = one if s >= zero else zero
                        gvj = gvs[j]
                        gs = sgs[j] * (grow[j] - (ch * s + ccs[j]) * gvj)
                        gh = (one - hard * z) * gvj + gs
                        at[j] += -gs - soft * z * gvj
                        ar[j] += hard * z * gvj
                        ab[j] += gh * (vp[j] - lls[j] - di * drow[j])
                        al[j] += gh * kks[j]
                        xrow[j] = ggs[j] * gh
                        gvs[j] = tbs[j] * gh
            te = ts
        gvn[b0 : b0 + n] = gv
        if need_p:
            gbeta[b0 : b0 + n] += a_beta
            gvl[b0 : b0 + n] += a_vl
            gvth[b0 : b0 + n] += a_th
            gvr[b0 : b0 + n] += a_vr


# ----------------------------------------------------------------------------- torch's thread team
# The IF/LIF kernels run their column chunks on the OpenMP team torch itself uses: a C
# callback (numba ``cfunc``) handed to that runtime's ``GOMP_parallel``. Right after a torch
# op, torch's OpenMP workers keep spinning for a few milliseconds waiting for more work; a
# thread of our own then competes with a spinning worker for the core, while a region on
# torch's own team is picked up at once by the spinning worker (measured on 2 cores: Linear
# + LIF forward with 2 Python threads took as long as with one). The callback unpacks its
# arguments from one int64 array (below) and claims chunks of columns through an atomic
# counter until none are left, so a late thread just takes fewer chunks.
#
# Packed arguments: ``HEAD`` header slots ``[counter address, chunks, columns]``,
# then three slots per kernel argument: ``[address, rows or length, columns]`` for an array,
# ``[value, 0, 0]`` for an integer. The kernel's last two arguments (``lo, hi``) come from
# the claimed chunk.

HEAD = 3
_ALIGN = 16  # chunk edges on 64-byte lines (float32), so threads never share a cache line


@intrinsic
def _fetch_add(typingctx, addr):  # type: ignore[no-untyped-def]
    """Atomically ``*addr += 1`` on an int64 at address ``addr``; returns the old value."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.atomic_rmw("add", ptr, ir.Constant(ir.IntType(64), 1), "monotonic")

    return sig, codegen


@intrinsic
def _voidptr(typingctx, addr):  # type: ignore[no-untyped-def]
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen


@njit(inline="always")
def _a1(d, k, dt):  # type: ignore[no-untyped-def]
    o = HEAD + 3 * k
    return carray(_voidptr(d[o]), (d[o + 1],), dt)


@njit(inline="always")
def _a2(d, k, dt):  # type: ignore[no-untyped-def]
    o = HEAD + 3 * k
    return carray(_voidptr(d[o]), (d[o + 1], d[o + 2]), dt)


@njit(inline="always")
def _int(d, k):  # type: ignore[no-untyped-def]
    return d[HEAD + 3 * k]


@njit(inline="always")
def _claim(d):  # type: ignore[no-untyped-def]
    """The next unclaimed chunk ``(lo, hi)`` of columns, or ``(0, 0)`` when all are taken."""
    nch = d[1]
    m = d[2]
    i = _fetch_add(d[0])
    if i >= nch:
        return 0, 0
    lo = (m * i // nch) // _ALIGN * _ALIGN
    hi = m if i == nch - 1 else (m * (i + 1) // nch) // _ALIGN * _ALIGN
    return lo, hi


@njit(inline="always")
def _forward_chunks(d, dt):  # type: ignore[no-untyped-def]
    x = _a2(d, 0, dt)
    v0 = _a1(d, 1, dt)
    beta = _a1(d, 2, dt)
    kvl = _a1(d, 3, dt)
    g = _a1(d, 4, dt)
    vth = _a1(d, 5, dt)
    vr = _a1(d, 6, dt)
    cst = _a1(d, 7, dt)
    out = _a2(d, 8, dt)
    hs = _a2(d, 9, dt)
    vck = _a2(d, 10, dt)
    v_out = _a1(d, 11, dt)
    while True:
        lo, hi = _claim(d)
        if hi <= lo:
            break
        lif_forward(
            x,
            v0,
            beta,
            kvl,
            g,
            vth,
            vr,
            cst,
            out,
            hs,
            vck,
            v_out,
            _int(d, 12),
            _int(d, 13),
            _int(d, 14),
            _int(d, 15),
            lo,
            hi,
        )


def _lif_forward_f32(data):  # type: ignore[no-untyped-def]
    _forward_chunks(carray(data, (HEAD + 3 * 16,), np.int64), np.float32)


def _lif_forward_f64(data):  # type: ignore[no-untyped-def]
    _forward_chunks(carray(data, (HEAD + 3 * 16,), np.int64), np.float64)


@njit(inline="always")
def _backward_chunks(d, dt):  # type: ignore[no-untyped-def]
    x = _a2(d, 2, dt)
    vck = _a2(d, 3, dt)
    hs = _a2(d, 4, dt)
    sp = _a1(d, 6, dt)
    sg = _a2(d, 7, dt)
    go = _a2(d, 8, dt)
    gx = _a2(d, 11, dt)
    v0 = _a1(d, 12, dt)
    beta = _a1(d, 13, dt)
    kvl = _a1(d, 14, dt)
    k = _a1(d, 15, dt)
    g = _a1(d, 16, dt)
    vl = _a1(d, 17, dt)
    vth = _a1(d, 18, dt)
    vr = _a1(d, 19, dt)
    coef = _a1(d, 20, dt)
    gvn = _a1(d, 21, dt)
    gbeta = _a1(d, 22, dt)
    gvl = _a1(d, 23, dt)
    gvth = _a1(d, 24, dt)
    gvr = _a1(d, 25, dt)
    while True:
        lo, hi = _claim(d)
        if hi <= lo:
            break
        lif_backward(
            _int(d, 0),
            _int(d, 1),
            x,
            vck,
            hs,
            _int(d, 5),
            sp,
            sg,
            go,
            _int(d, 9),
            _int(d, 10),
            gx,
            v0,
            beta,
            kvl,
            k,
            g,
            vl,
            vth,
            vr,
            coef,
            gvn,
            gbeta,
            gvl,
            gvth,
            gvr,
            _int(d, 26),
            _int(d, 27),
            _int(d, 28),
            lo,
            hi,
        )


def _lif_backward_f32(data):  # type: ignore[no-untyped-def]
    _backward_chunks(carray(data, (HEAD + 3 * 29,), np.int64), np.float32)


def _lif_backward_f64(data):  # type: ignore[no-untyped-def]
    _backward_chunks(carray(data, (HEAD + 3 * 29,), np.int64), np.float64)


_BODIES = {
    ("lif_forward", False): _lif_forward_f32,
    ("lif_forward", True): _lif_forward_f64,
    ("lif_backward", False): _lif_backward_f32,
    ("lif_backward", True): _lif_backward_f64,
}
_compiled: dict[tuple[str, bool], object] = {}


def team(kernel: str, is64: bool) -> object:
    """The C callback running ``kernel`` over claimed chunks, compiled (or loaded) on first use.

    One callback per kernel and dtype, so a float32 user never compiles the float64 loops.
    """
    key = (kernel, is64)
    f = _compiled.get(key)
    if f is None:
        f = _compiled[key] = cfunc(types.void(types.voidptr), cache=True)(_BODIES[key])
    return f
