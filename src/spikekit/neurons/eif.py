"""Exponential integrate-and-fire neuron (spikingjelly ``EIFNode`` semantics)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate

__all__ = ["EIF", "EIFParams", "EIFState", "eif_step"]


class EIFParams(NamedTuple):
    """Parameters of :func:`eif_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta: membrane decay per step, ``1 - dt / tau``.
        delta_T: sharpness of the exponential (> 0); the neuron tends to a LIF as it goes to 0.
        theta_rh: rheobase potential, where the exponential term equals ``delta_T``.
        v_th: firing threshold (where the upswing is cut).
        v_reset: reset potential (hard reset).
        v_leak: resting potential the membrane decays towards (the initial membrane).
    """

    beta: Tensor
    delta_T: Tensor
    theta_rh: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_leak: Tensor


class EIFState(NamedTuple):
    """State of :func:`eif_step`: membrane ``v`` of shape ``[B, *features]``."""

    v: Tensor


def eif_step(x: Tensor, state: EIFState, params: EIFParams, options: Options) -> tuple[Tensor, EIFState]:
    """One step of an exponential integrate-and-fire neuron (Fourcaud-Trocmé et al. 2003).

    Math:
        Forward Euler of ``tau dv/dt = v_leak - v + delta_T exp((v - theta_rh) / delta_T) + x``
        with ``k = 1 - beta = dt / tau``: ``h = v + k (x + v_leak - v + e)`` with
        ``e = delta_T exp((v - theta_rh) / delta_T)`` if ``decay_input``, else
        ``h = v + k (v_leak - v + e) + x``; ``z = H(h - v_th)``; reset as in
        :func:`~spikekit.neurons.lif_step`. Without a reset the membrane runs away once the
        exponential dominates the leak.

    Args:
        x: input current ``[B, *features]``.
        state: :class:`EIFState`.
        params: :class:`EIFParams`.
        options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, EIFState(v'))``: spikes (or ``h - v_th`` if not binary) and the new state.
    """
    check_state_shape(x, state, "eif_step")
    state = detach_if_independent(state, options)
    p = params
    k = 1 - p.beta

    def charge(v: Tensor) -> Tensor:
        drive = p.v_leak - v + p.delta_T * torch.exp((v - p.theta_rh) / p.delta_T)
        return v + k * (x + drive) if options.decay_input else v + k * drive + x

    out, _, v = integrate(state.v, charge, p.v_th, p.v_reset, options)
    return out, EIFState(v)


class EIF(Neuron):
    """Exponential integrate-and-fire layer.

    Math:
        See :func:`eif_step`. spikingjelly's ``EIFNode(tau, delta_T, theta_rh, v_threshold,
        v_rest, v_reset)`` is ``EIF(tau=tau, delta_T=delta_T, theta_rh=theta_rh,
        v_th=v_threshold, v_leak=v_rest, v_reset=v_reset)`` (``v_reset=None`` there is
        ``reset="soft"`` here), except that spikingjelly starts the membrane at ``v_reset``
        (0 for a soft reset) and spikekit at ``v_leak``.

    Args:
        tau: membrane time constant (same unit as ``dt``); default 2.0. beta: decay instead.
        delta_T: sharpness (> 0); default 1. theta_rh: rheobase potential; default 0.8.
        v_th: threshold; default 1. v_reset: hard-reset potential; default -0.1.
        v_leak: resting (and initial) potential; default 0.
        dt: integration time step.
        reset, surrogate, detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input).
        learn: any of ``"tau"``/``"beta"``, ``"delta_T"``, ``"theta_rh"``, ``"v_th"``,
            ``"v_reset"``, ``"v_leak"``. ``delta_T`` is learnt as ``softplus(w)``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``EIFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> EIF(tau=2.0)(torch.full((4, 1, 1), 0.8)).flatten()
        tensor([0., 1., 0., 1.])
    """

    state_type = EIFState
    params_type = EIFParams
    step_fn = staticmethod(eif_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 2.0, tau="tau", doc="membrane decay"),
        Param("delta_T", 1.0, kind="positive", doc="sharpness of the exponential"),
        Param("theta_rh", 0.8, doc="rheobase potential"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", -0.1, doc="hard-reset potential"),
        Param("v_leak", 0.0, doc="resting potential"),
    )

    # why spikekit.to_nir refuses this neuron (the exporter names the module and this reason)
    nir_refusal = "NIR 1.0 has no exponential integrate-and-fire neuron (its nodes are linear: IF, LIF, CubaLIF, LI, CubaLI, I)"
