"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005; norse ``LIFAdEx``)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate

__all__ = ["AdEx", "AdExParams", "AdExState", "adex_step"]


class AdExParams(NamedTuple):
    """Parameters of :func:`adex_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta: membrane decay per step, ``1 - dt / tau``.
        beta_syn: synaptic current decay ``1 - dt / tau_syn`` (0: no synaptic current).
        rho: adaptation decay ``1 - dt / tau_adapt``.
        a: subthreshold adaptation (coupling of ``w`` to ``v - v_leak``).
        b: spike-triggered adaptation (jump of ``w`` at each spike).
        delta_T: sharpness of the exponential (> 0).
        theta_rh: rheobase potential (centre of the exponential).
        v_th: firing threshold (where the upswing is cut).
        v_reset: reset potential (hard reset).
        v_leak: resting potential (the initial membrane).
    """

    beta: Tensor
    beta_syn: Tensor
    rho: Tensor
    a: Tensor
    b: Tensor
    delta_T: Tensor
    theta_rh: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_leak: Tensor


class AdExState(NamedTuple):
    """State of :func:`adex_step`: membrane ``v``, synaptic current ``i`` and adaptation ``w``."""

    v: Tensor
    i: Tensor
    w: Tensor


def adex_step(x: Tensor, state: AdExState, params: AdExParams, options: Options) -> tuple[Tensor, AdExState]:
    """One step of an adaptive exponential integrate-and-fire neuron.

    Math:
        Forward Euler of ``tau dv/dt = v_leak - v + delta_T exp((v - theta_rh) / delta_T) + i - w``,
        ``tau_syn di/dt = -i`` (input jumps ``i += x``), ``tau_adapt dw/dt = a (v - v_leak) - w``:
        ``j = i + x``; ``e = delta_T exp((v - theta_rh) / delta_T)``;
        ``h = v + (1 - beta) (v_leak - v + e + j - w)`` (``decay_input``; else
        ``h = v + (1 - beta) (v_leak - v + e - w) + j``); ``z = H(h - v_th)``; ``v'`` is ``h``
        reset as in :func:`~spikekit.neurons.lif_step`; ``i' = beta_syn j``;
        ``w' = w + (1 - rho) (a (v - v_leak) - w) + b z``. ``v`` is the membrane the step
        charged from (with ``reset_delay``, after the delayed reset); ``z`` keeps its gradient
        in the jump of ``w`` even with ``detach_reset``.

    Args:
        x: input current jump ``[B, *features]``.
        state: :class:`AdExState`.
        params: :class:`AdExParams`.
        options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, AdExState(v', i', w'))``.
    """
    check_state_shape(x, state, "adex_step")
    state = detach_if_independent(state, options)
    p = params
    k = 1 - p.beta
    j = state.i + x
    seen: list[Tensor] = []

    def charge(v: Tensor) -> Tensor:
        seen.append(v)
        e = p.delta_T * torch.exp((v - p.theta_rh) / p.delta_T)
        if options.decay_input:
            return v + k * (p.v_leak - v + e + j - state.w)
        return v + k * (p.v_leak - v + e - state.w) + j

    out, z, v = integrate(state.v, charge, p.v_th, p.v_reset, options)
    w = state.w + (1 - p.rho) * (p.a * (seen[0] - p.v_leak) - state.w) + p.b * z
    return out, AdExState(v, p.beta_syn * j, w)


class AdEx(Neuron):
    """Adaptive exponential integrate-and-fire layer with a synaptic current.

    Math:
        See :func:`adex_step`. norse's ``LIFAdEx(LIFAdExParameters(adaptation_current=A,
        adaptation_spike=B, delta_T, tau_ada_inv=c, tau_syn_inv=s, tau_mem_inv=m, v_leak, v_th,
        v_reset), dt=dt)`` is ``AdEx(tau=1/m, tau_syn=1/s, tau_adapt=1/c, dt=dt, a=A, b=B,
        delta_T=delta_T, theta_rh=v_th, v_th=v_th, v_leak=v_leak, v_reset=v_reset,
        surrogate=S.FastSigmoid(1))`` (norse centres the exponential on the threshold). Its
        adaptation ``a`` is our ``w``. ``tau_syn=None`` drops the synaptic current (the input
        drives the membrane directly, as in Brette & Gerstner 2005).

    Args:
        tau: membrane time constant (same unit as ``dt``); default 10. beta: decay instead.
        tau_syn: synaptic time constant; default 5 (``None``: no synaptic current).
            beta_syn: decay instead.
        tau_adapt: adaptation time constant; default 500. rho: decay instead.
        a: subthreshold adaptation; default 4. b: spike-triggered adaptation; default 0.02.
        delta_T: sharpness (> 0); default 0.5. theta_rh: rheobase potential; default 1.
        v_th: threshold; default 1. v_reset: hard-reset potential; default 0.
        v_leak: resting (and initial) potential; default 0.
        dt: integration time step.
        reset, surrogate, detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input).
        learn: any of ``"tau"``, ``"tau_syn"``, ``"tau_adapt"`` (or ``"beta"``,
            ``"beta_syn"``, ``"rho"``), ``"a"``, ``"b"``, ``"delta_T"``, ``"theta_rh"``,
            ``"v_th"``, ``"v_reset"``, ``"v_leak"``. ``delta_T`` is learnt as ``softplus(w)``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``AdExState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> AdEx()(torch.full((12, 1, 1), 1.5)).flatten().nonzero().flatten().tolist()
        [3, 5, 7, 9, 11]
    """

    state_type = AdExState
    params_type = AdExParams
    step_fn = staticmethod(adex_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 10.0, tau="tau", doc="membrane decay"),
        Param("beta_syn", 5.0, tau="tau_syn", off=0.0, doc="synaptic current decay"),
        Param("rho", 500.0, tau="tau_adapt", doc="adaptation decay"),
        Param("a", 4.0, doc="subthreshold adaptation"),
        Param("b", 0.02, doc="spike-triggered adaptation"),
        Param("delta_T", 0.5, kind="positive", doc="sharpness of the exponential"),
        Param("theta_rh", 1.0, doc="rheobase potential"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
        Param("v_leak", 0.0, doc="resting potential"),
    )

    # why spikekit.to_nir refuses this neuron (the exporter names the module and this reason)
    nir_refusal = (
        "NIR 1.0 has no adaptive exponential neuron (its nodes are linear: IF, LIF, CubaLIF, LI, CubaLI, I)"
    )
