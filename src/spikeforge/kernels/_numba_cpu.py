"""Numba loops behind the fused CPU backend (:mod:`spikeforge.kernels.cpu` is the torch glue).

One forward and one backward loop serve every neuron family. A family is a combination of
flags over one generalised step, which is the reference step written out per neuron:

* ``d = c + x`` if ``syn`` (CubaLIF/LI: ``c`` is the synaptic current) else ``d = x``;
* ``theta = v_th + adapt a`` if ``ada`` (ALIF: ``c`` is the adaptation ``a``) else ``v_th``;
* ``h = beta v + k v_leak + g d`` with ``k = 1 - beta`` and ``g = k`` (decay_input) or 1
  (IF is ``beta = 1, k = 0, g = 1``, i.e. exactly ``v + x``);
* spike, reset and output exactly as :func:`spikeforge.neurons._base.integrate`;
* ``c' = beta_syn d`` (``syn``) or ``c' = rho a + z`` (``ada``).

Every arithmetic operation is done in the array dtype in the same order as the torch
reference (so spikes match exactly); the scalars ``zero``/``one`` come from ``cst`` because a
Python literal would promote float32 arithmetic to float64.

Layout: all ``[T, M]`` arrays are C-contiguous with ``M`` the flattened ``[B, *features]``;
per-neuron parameters are ``[M]``. Work is split over blocks of neurons (``prange``) and,
inside a block, the time loop is outside the neuron loop so each step reads one contiguous
run of memory (blocks are ``prange`` iterations; see ``PARALLEL``). Flags are runtime integers so there is one compiled specialisation per dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 512
# Compiled serial for now: measured on a 2-core machine, numba's thread pool next to torch's
# OpenMP pool made layer and conv training 2-6x slower than one thread, even with
# numba.set_num_threads(1) (the pools compete for the cores). The loops keep the
# prange-over-blocks structure, so flipping this (and clearing the cache) parallelises them.
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


# ----------------------------------------------------------------------------- IF/LIF fast path
# The generic loops above branch on a dozen runtime flags per element, which keeps LLVM from
# vectorising them. IF and LIF with the default options (no delayed reset, spike output) carry
# most training time, so they get these branch-free loops: per-block parameters and state in
# local arrays (no aliasing with the outputs), option choices as selects or 0/1 coefficients.
# The forward uses selects only, so its arithmetic is exactly the generic (= reference) one.


@njit(parallel=PARALLEL, cache=True)
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
    v_out: np.ndarray,
    reset: int,
    store_hs: int,
) -> None:
    """IF/LIF forward; ``kvl = (1 - beta) v_leak`` is precomputed (the same product)."""
    T, M = x.shape
    zero = cst[0]
    one = cst[1]
    nblk = (M + BLOCK - 1) // BLOCK
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, M)
        v = v0[lo:hi].copy()
        bb = beta[lo:hi].copy()
        kk = kvl[lo:hi].copy()
        gg = g[lo:hi].copy()
        th = vth[lo:hi].copy()
        rr = vr[lo:hi].copy()
        n = hi - lo
        for t in range(T):
            xr = x[t, lo:hi]
            orow = out[t, lo:hi]
            if store_hs:
                hrow = hs[t, lo:hi]
                for j in range(n):
                    h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
                    s = h - th[j]
                    z = one if s >= 0 else zero
                    v[j] = (h - z * (h - rr[j])) if reset == 0 else ((h - z * th[j]) if reset == 1 else h)
                    orow[j] = z
                    hrow[j] = s
            else:
                for j in range(n):
                    h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
                    s = h - th[j]
                    z = one if s >= 0 else zero
                    v[j] = (h - z * (h - rr[j])) if reset == 0 else ((h - z * th[j]) if reset == 1 else h)
                    orow[j] = z
        v_out[lo:hi] = v


@njit(parallel=PARALLEL, cache=True)
def lif_backward(
    t0: int,
    t1: int,
    hs: np.ndarray,
    d_hist: np.ndarray,
    sg: np.ndarray,
    go: np.ndarray,
    gx: np.ndarray,
    v0: np.ndarray,
    beta: np.ndarray,
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
    has_d: int,
) -> None:
    """IF/LIF reverse-time adjoint over steps ``t1 - 1 ... t0`` (see :func:`backward`).

    ``coef`` = ``[0, 1, hard, soft, 1 - detach_reset, time_dependent, decay_input]`` as 0/1
    values of the dtype.
    """
    M = hs.shape[1]
    one = coef[1]
    hard = coef[2]
    soft = coef[3]
    ndet = coef[4]
    td = coef[5]
    di = coef[6]
    nblk = (M + BLOCK - 1) // BLOCK
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, M)
        n = hi - lo
        bb = beta[lo:hi].copy()
        kk = k[lo:hi].copy()
        gg = g[lo:hi].copy()
        ll = vl[lo:hi].copy()
        th = vth[lo:hi].copy()
        rr = vr[lo:hi].copy()
        gv = gvn[lo:hi].copy()
        a_beta = np.zeros(n, hs.dtype)
        a_vl = np.zeros(n, hs.dtype)
        a_th = np.zeros(n, hs.dtype)
        a_vr = np.zeros(n, hs.dtype)
        vprev = np.empty(n, hs.dtype)
        dz = np.zeros(n, hs.dtype)
        for t in range(t1 - 1, t0 - 1, -1):
            # Membrane entering step t, recomputed from the previous step's h - v_th.
            if t == 0:
                vprev[:] = v0[lo:hi]
            else:
                sp = hs[t - 1, lo:hi]
                for j in range(n):
                    hp = sp[j] + th[j]
                    zp = one if sp[j] >= 0 else coef[0]
                    vprev[j] = hp - zp * (hard * (hp - rr[j]) + soft * th[j])
            drow = d_hist[t, lo:hi] if has_d else dz
            srow = hs[t, lo:hi]
            sgrow = sg[t - t0, lo:hi]
            grow = go[t - t0, lo:hi]
            xrow = gx[t, lo:hi]
            for j in range(n):
                s = srow[j]
                h = s + th[j]
                z = one if s >= 0 else coef[0]
                gvj = gv[j]
                gz = grow[j] - ndet * (hard * (h - rr[j]) + soft * th[j]) * gvj
                gs = sgrow[j] * gz
                gh = (one - hard * z) * gvj + gs
                a_th[j] += -gs - soft * z * gvj
                a_vr[j] += hard * z * gvj
                a_beta[j] += gh * (vprev[j] - ll[j] - di * drow[j])
                a_vl[j] += gh * kk[j]
                xrow[j] = gg[j] * gh
                gv[j] = td * bb[j] * gh
        gvn[lo:hi] = gv
        gbeta[lo:hi] += a_beta
        gvl[lo:hi] += a_vl
        gvth[lo:hi] += a_th
        gvr[lo:hi] += a_vr
