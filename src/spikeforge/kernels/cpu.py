"""Fused CPU backend: whole-sequence forward and backward of every neuron family in numba.

Why: the reference :func:`~spikeforge.functional.scan` runs ``T`` Python steps and records
an autograd graph of ~10 ops per step; on a CPU that overhead dominates an SNN layer. Here
one :class:`torch.autograd.Function` runs the time loop for all neurons in a compiled,
parallel loop, and its backward runs one reverse-time loop, with no per-step graph.

What is saved for backward: ``h - theta`` per step (the pre-spike membrane minus threshold;
spikes are ``>= 0`` of it, the carried membrane is recomputed from it), plus the pre-step
adaptation for ALIF and the drive only when a decay that multiplies it is learnt. The
surrogate derivative is *not* rewritten here: backward calls ``options.surrogate.grad`` on
chunks of the saved tensor with torch, so every surrogate has one definition, and chunking
keeps its temporaries small.

The math mirrors :func:`spikeforge.neurons._base.integrate` and each ``*_step`` function;
``tests/test_kernels_cpu.py`` checks outputs and every gradient against the reference over
a grid of options. The numba module is imported by :func:`load` (the backend's load hook),
never at ``import spikeforge``.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

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
        _kern = importlib.import_module("spikeforge.kernels._numba_cpu")


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
    try:
        if any(torch.broadcast_shapes(p.shape, feat) != feat for p in params):
            return False
    except RuntimeError:
        return False
    return True


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


def _per_neuron(p: Tensor | None, feat: torch.Size, m: int, fill: float, like: Tensor) -> Tensor:
    """Parameter broadcast to every neuron as a contiguous ``[M]`` array (``fill`` if absent)."""
    if p is None:
        return torch.full((m,), fill, dtype=like.dtype)
    return p.detach().expand(feat).contiguous().view(m)


def _np(t: Tensor) -> Any:
    return t.detach().numpy()


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
        beta = _per_neuron(pd["beta"], feat, M, 1.0, xs)
        k = _per_neuron(None if pd["beta"] is None else 1 - pd["beta"], feat, M, 0.0, xs)
        g = k if cfg.di else torch.ones(M, dtype=dt)
        arrs = {
            "beta": beta,
            "k": k,
            "g": g,
            "vl": _per_neuron(pd["v_leak"], feat, M, 0.0, xs),
            "vth": _per_neuron(pd["v_th"], feat, M, 0.0, xs),
            "vr": _per_neuron(pd["v_reset"], feat, M, 0.0, xs),
            "bs": _per_neuron(pd["beta_syn"], feat, M, 0.0, xs),
            "rho": _per_neuron(pd["rho"], feat, M, 0.0, xs),
            "adapt": _per_neuron(pd["adapt"], feat, M, 0.0, xs),
            "cst": torch.tensor([0.0, 1.0], dtype=dt),
        }
        needs = ctx.needs_input_grad
        grad = cfg.grad and any(needs[1:])
        v0f = v0.detach().reshape(M).contiguous()
        c0f = torch.zeros(M, dtype=dt) if c0 is None else c0.detach().reshape(M).contiguous()
        empty = torch.empty(0, 0, dtype=dt)
        out = torch.empty(T, M, dtype=dt)
        if not cfg.spk or not cfg.binary:
            hs = out  # the output already is h (LI) or h - theta (graded output)
        else:
            hs = torch.empty(T, M, dtype=dt) if grad else empty
        a_hist = torch.empty(T, M, dtype=dt) if (grad and cfg.ada) else empty
        # The drive is only needed for d(loss)/d(beta) with decay_input and d/d(beta_syn).
        need_d = grad and ((cfg.di and needs[4]) or (cfg.syn and needs[5]))
        if not need_d:
            d_hist = empty
        else:  # without a synaptic current the drive is the input itself: keep it, no copy
            d_hist = torch.empty(T, M, dtype=dt) if cfg.syn else x2
        v_out = torch.empty(M, dtype=dt)
        c_out = torch.empty(M, dtype=dt)
        fast = cfg.spk and not (cfg.syn or cfg.ada or cfg.delay) and cfg.binary
        ctx.fast = fast
        if fast:
            _kern.lif_forward(
                _np(x2),
                _np(v0f),
                _np(arrs["beta"]),
                _np(arrs["k"] * arrs["vl"]),
                _np(arrs["g"]),
                _np(arrs["vth"]),
                _np(arrs["vr"]),
                _np(arrs["cst"]),
                _np(out),
                _np(hs),
                _np(v_out),
                cfg.reset,
                int(grad),
            )
        else:
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
        hs, a_hist, d_hist, v0f = ctx.saved_tensors
        cfg: _Cfg = ctx.cfg
        arrs = ctx.arrs
        xs_shape, p_shapes = ctx.shapes
        T = xs_shape[0]
        feat = xs_shape[1:]
        M = feat.numel()
        dt = v0f.dtype
        sur = cfg.surrogate

        def carry(gr: Tensor | None) -> Tensor:
            # The kernel overwrites the carried gradient, so it must own a contiguous copy.
            return torch.zeros(M, dtype=dt) if gr is None else gr.reshape(M).to(dt, copy=True).contiguous()

        gvn = carry(g_v)
        gcn = carry(g_c if ctx.has_c else None)
        acc = {
            n: torch.zeros(M, dtype=dt)
            for n in ("beta", "v_leak", "v_th", "v_reset", "beta_syn", "rho", "adapt")
        }
        gx = torch.empty(T, M, dtype=dt)
        empty = torch.empty(0, 0, dtype=dt)
        if cfg.spk and cfg.delay:
            sgr0 = sur.grad(v0f - arrs["vth"]).to(dt).contiguous()
        else:
            sgr0 = torch.empty(0, dtype=dt)
        rows = max(1, _CHUNK_ELEMS // max(M, 1))
        coef = torch.tensor([0, 1, cfg.reset == 0, cfg.reset == 1, 1 - cfg.det, cfg.td, cfg.di], dtype=dt)
        t1 = T
        while t1 > 0:
            t0 = max(0, t1 - rows)
            off = 1 if (cfg.spk and cfg.delay and t0 > 0) else 0
            sg = sur.grad(hs[t0 - off : t1]).to(dt).contiguous() if cfg.spk else empty
            if g_out is None:
                go = torch.zeros(t1 - t0, M, dtype=dt)
            else:
                go = g_out[t0:t1].reshape(t1 - t0, M).to(dt).contiguous()
            if ctx.fast:
                _kern.lif_backward(
                    t0,
                    t1,
                    _np(hs),
                    _np(d_hist),
                    _np(sg),
                    _np(go),
                    _np(gx),
                    _np(v0f),
                    *(_np(arrs[n]) for n in ("beta", "k", "g", "vl", "vth", "vr")),
                    _np(coef),
                    _np(gvn),
                    *(_np(acc[n]) for n in ("beta", "v_leak", "v_th", "v_reset")),
                    int(d_hist.numel() > 0),
                )
            else:
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
                    *(
                        _np(arrs[n])
                        for n in ("beta", "k", "g", "vl", "vth", "vr", "bs", "rho", "adapt", "cst")
                    ),
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
        needs = ctx.needs_input_grad
        grads: list[Tensor | None] = [None, gx.view(xs_shape) if needs[1] else None]
        grads.append(gvn.view(feat) if needs[2] else None)
        grads.append(gcn.view(feat) if (ctx.has_c and needs[3]) else None)
        for i, name in enumerate(_PARAM_NAMES):
            shape = p_shapes[i]
            if shape is None or not needs[4 + i]:
                grads.append(None)
            else:
                grads.append(acc[name].view(feat).sum_to_size(shape))
        return tuple(grads)
