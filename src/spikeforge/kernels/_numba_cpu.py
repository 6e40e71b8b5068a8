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
per-neuron parameters are ``[M]``. Work is split over blocks of neurons and, inside a
block, the time loop is outside the neuron loop so each step reads one contiguous run of
memory. The generic loops take their flags as runtime integers (one compiled
specialisation per dtype); the IF/LIF loops at the end hoist them out of the neuron loop so
it vectorises, and take a column range so :mod:`spikeforge.kernels.cpu` can split neurons
between threads (they release the GIL).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 512
# numba's own thread pools stay off: its OpenMP layer links the system libgomp, a second
# runtime next to torch's bundled one, and the two spin-wait against each other (measured
# 2-6x slower on 2 cores, even with numba.set_num_threads(1)). Threads, where they pay, are
# plain Python threads over column ranges (see ``spikeforge.kernels.cpu``).
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
# most training time, so they get these loops: option choices are hoisted out of the neuron
# loop (one loop body per choice, each branch-free: selects and 0/1 coefficients), so each
# vectorises. The forward's arithmetic is exactly the generic (= reference) one.
#
# Both work on the neuron columns ``lo:hi`` only: neurons are independent over the whole
# sequence, so the torch glue splits the columns between threads (``nogil``) and between
# cache-sized tiles. Inside a call, columns go in blocks of ``FAST_BLOCK`` whose per-neuron
# state (6 arrays, 192 KB in float32) stays in L2 while every step streams one contiguous
# 32 KB run of each [T, M] array. Narrower blocks (512) jump to a new page at every step
# and measured 1.6x slower at M = 32768 (TLB misses, prefetchers stopping at page ends).

FAST_BLOCK = 8192


@njit(cache=True, nogil=True)
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
    lo: int,
    hi: int,
) -> None:
    """IF/LIF forward over columns ``lo:hi``; ``kvl = (1 - beta) v_leak`` is precomputed."""
    T = x.shape[0]
    zero = cst[0]
    one = cst[1]
    # Row slices (not 2-D indexing) and no store flag inside the neuron loop: that is what lets
    # LLVM vectorise it. Without saving, ``h - theta`` goes to an L1-resident scratch row.
    scratch = np.empty(FAST_BLOCK, x.dtype)
    for b0 in range(lo, hi, FAST_BLOCK):
        b1 = min(b0 + FAST_BLOCK, hi)
        n = b1 - b0
        v = v0[b0:b1].copy()
        bb = beta[b0:b1].copy()
        kk = kvl[b0:b1].copy()
        gg = g[b0:b1].copy()
        th = vth[b0:b1].copy()
        rr = vr[b0:b1].copy()
        for t in range(T):
            xr = x[t, b0:b1]
            orow = out[t, b0:b1]
            hrow = hs[t, b0:b1] if store_hs else scratch[:n]
            if reset == 0:
                for j in range(n):
                    h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
                    s = h - th[j]
                    z = one if s >= zero else zero
                    v[j] = h - z * (h - rr[j])
                    orow[j] = z
                    hrow[j] = s
            elif reset == 1:
                for j in range(n):
                    h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
                    s = h - th[j]
                    z = one if s >= zero else zero
                    v[j] = h - z * th[j]
                    orow[j] = z
                    hrow[j] = s
            else:
                for j in range(n):
                    h = bb[j] * v[j] + kk[j] + gg[j] * xr[j]
                    s = h - th[j]
                    v[j] = h
                    orow[j] = one if s >= zero else zero
                    hrow[j] = s
        v_out[b0:b1] = v


@njit(cache=True, nogil=True)
def lif_backward(
    t0: int,
    t1: int,
    lo: int,
    hi: int,
    hs: np.ndarray,
    d_hist: np.ndarray,
    sg: np.ndarray,
    go: np.ndarray,
    go_t: int,
    go_scalar: int,
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
    need_p: int,
) -> None:
    """IF/LIF reverse-time adjoint over steps ``t1 - 1 ... t0`` and columns ``lo:hi``.

    ``sg[t - t0, m - lo]`` is the surrogate derivative at ``hs[t, m]`` (a tile computed by
    torch). The upstream gradient of step ``t`` and neuron ``m`` is ``go[t * go_t, m]``
    (``go_t = 0``: one row broadcast over time), or ``go[0, 0]`` for every element when
    ``go_scalar`` (the gradient of a ``sum()``: never materialised). ``coef`` =
    ``[0, 1, hard, soft, 1 - detach_reset, time_dependent, decay_input]`` as 0/1 values of the
    dtype. Parameter gradients (and the membrane recomputation they need) only if ``need_p``.
    """
    zero = coef[0]
    one = coef[1]
    hard = coef[2]
    soft = coef[3]
    ndet = coef[4]
    td = coef[5]
    di = coef[6]
    gsc = go[0, 0] if go_scalar else zero
    for b0 in range(lo, hi, FAST_BLOCK):
        n = min(FAST_BLOCK, hi - b0)
        s0 = b0 - lo
        tb = td * beta[b0 : b0 + n]  # carried gradient factor: gv' = td beta gh
        gg = g[b0 : b0 + n].copy()
        th = vth[b0 : b0 + n].copy()
        # gz = go - cr gv with cr = (1 - det)(hard (h - v_reset) + soft v_th); h = s + v_th.
        ch = ndet * hard
        cc = ndet * (hard * (th - vr[b0 : b0 + n]) + soft * th)
        gv = gvn[b0 : b0 + n].copy()
        if not need_p:
            for t in range(t1 - 1, t0 - 1, -1):
                srow = hs[t, b0 : b0 + n]
                sgrow = sg[t - t0, s0 : s0 + n]
                xrow = gx[t, b0 : b0 + n]
                if go_scalar:
                    for j in range(n):
                        s = srow[j]
                        z = one if s >= zero else zero
                        gvj = gv[j]
                        gh = (one - hard * z) * gvj + sgrow[j] * (gsc - (ch * s + cc[j]) * gvj)
                        xrow[j] = gg[j] * gh
                        gv[j] = tb[j] * gh
                else:
                    grow = go[t * go_t, b0 : b0 + n]
                    for j in range(n):
                        s = srow[j]
                        z = one if s >= zero else zero
                        gvj = gv[j]
                        gh = (one - hard * z) * gvj + sgrow[j] * (grow[j] - (ch * s + cc[j]) * gvj)
                        xrow[j] = gg[j] * gh
                        gv[j] = tb[j] * gh
            gvn[b0 : b0 + n] = gv
            continue
        kk = k[b0 : b0 + n].copy()
        ll = vl[b0 : b0 + n].copy()
        rr = vr[b0 : b0 + n].copy()
        a_beta = np.zeros(n, hs.dtype)
        a_vl = np.zeros(n, hs.dtype)
        a_th = np.zeros(n, hs.dtype)
        a_vr = np.zeros(n, hs.dtype)
        vprev = np.empty(n, hs.dtype)
        dz = np.zeros(n, hs.dtype)
        gs1 = np.full(n, gsc, hs.dtype)
        for t in range(t1 - 1, t0 - 1, -1):
            # Membrane entering step t, recomputed from the previous step's h - v_th.
            if t == 0:
                vprev[:] = v0[b0 : b0 + n]
            else:
                sp = hs[t - 1, b0 : b0 + n]
                for j in range(n):
                    hp = sp[j] + th[j]
                    zp = one if sp[j] >= zero else zero
                    vprev[j] = hp - zp * (hard * (hp - rr[j]) + soft * th[j])
            srow = hs[t, b0 : b0 + n]
            sgrow = sg[t - t0, s0 : s0 + n]
            xrow = gx[t, b0 : b0 + n]
            grow = gs1 if go_scalar else go[t * go_t, b0 : b0 + n]
            drow = d_hist[t, b0 : b0 + n] if has_d else dz
            for j in range(n):
                s = srow[j]
                z = one if s >= zero else zero
                gvj = gv[j]
                gs = sgrow[j] * (grow[j] - (ch * s + cc[j]) * gvj)
                gh = (one - hard * z) * gvj + gs
                a_th[j] += -gs - soft * z * gvj
                a_vr[j] += hard * z * gvj
                a_beta[j] += gh * (vprev[j] - ll[j] - di * drow[j])
                a_vl[j] += gh * kk[j]
                xrow[j] = gg[j] * gh
                gv[j] = tb[j] * gh
        gvn[b0 : b0 + n] = gv
        gbeta[b0 : b0 + n] += a_beta
        gvl[b0 : b0 + n] += a_vl
        gvth[b0 : b0 + n] += a_th
        gvr[b0 : b0 + n] += a_vr
