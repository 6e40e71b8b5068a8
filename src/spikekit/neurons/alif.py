"""Adaptive LIF: a LIF neuron whose threshold rises with each spike and decays back."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate, leak

__all__ = ["ALIF", "ALIFParams", "ALIFState", "alif_step"]


class ALIFParams(NamedTuple):
    """Parameters of :func:`alif_step`.

    Attributes:
        beta: membrane decay. v_th: baseline threshold. v_reset: hard-reset potential.
        v_leak: resting potential. rho: adaptation decay ``1 - dt / tau_adapt``.
        adapt: threshold increase per unit of adaptation (Bellec et al.'s ``beta``).
    """

    beta: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_leak: Tensor
    rho: Tensor
    adapt: Tensor


class ALIFState(NamedTuple):
    """State of :func:`alif_step`: membrane ``v`` and adaptation ``a``, ``[B, *features]``."""

    v: Tensor
    a: Tensor


def alif_step(x: Tensor, state: ALIFState, params: ALIFParams, options: Options) -> tuple[Tensor, ALIFState]:
    """One step of an adaptive-threshold LIF neuron (LSNN, Bellec et al. 2018).

    Math:
        ``theta = v_th + adapt a``; ``h = beta v + (1 - beta) v_leak + g x``;
        ``z = H(h - theta)``; ``v' = h - z (h - v_reset)`` (hard), ``h - z theta`` (soft) or
        ``h`` (none); ``a' = rho a + z``.

    Args:
        x: input ``[B, *features]``. state: :class:`ALIFState`. params: :class:`ALIFParams`.
        options: :class:`~spikekit.neurons.Options` (``reset_delay`` is not supported).

    Returns:
        ``(z, ALIFState(v', a'))``.
    """
    check_state_shape(x, state, "alif_step")
    state = detach_if_independent(state, options)
    p = params
    theta = p.v_th + p.adapt * state.a
    out, z, v = integrate(
        state.v, lambda v: leak(v, x, p.beta, p.v_leak, options.decay_input), theta, p.v_reset, options
    )
    return out, ALIFState(v, p.rho * state.a + z)


class ALIF(Neuron):
    """Adaptive leaky integrate-and-fire layer.

    Math:
        See :func:`alif_step`.

    Args:
        tau: membrane time constant (default 10). beta: membrane decay instead.
        tau_adapt: adaptation time constant (default 200). rho: adaptation decay instead.
        adapt: threshold increase per spike (default 1.8). dt: time step.
        v_th, v_reset, v_leak: potentials. reset, surrogate, detach_reset, decay_input, binary,
            time_dependent: see :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``). learn: any of ``"tau"``, ``"tau_adapt"``, ``"adapt"``,
            ``"v_th"``, ``"v_reset"``, ``"v_leak"`` (or ``"beta"``, ``"rho"``).
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``ALIFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> ALIF(beta=1.0, adapt=1.0, rho=1.0, decay_input=False)(torch.ones(6, 1, 1)).flatten()
        tensor([1., 0., 1., 0., 0., 1.])
    """

    state_type = ALIFState
    params_type = ALIFParams
    step_fn = staticmethod(alif_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 10.0, tau="tau", doc="membrane decay"),
        Param("v_th", 1.0, doc="baseline threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
        Param("v_leak", 0.0, doc="resting potential"),
        Param("rho", 200.0, tau="tau_adapt", doc="adaptation decay"),
        Param("adapt", 1.8, doc="threshold increase per unit of adaptation"),
    )
    options_used = tuple(o for o in Neuron.options_used if o != "reset_delay")

    # why spikekit.to_nir refuses this neuron (the exporter names the module and this reason)
    nir_refusal = (
        "its threshold rises with each spike (v_th + adapt a) and NIR 1.0 has no adaptive-threshold neuron"
    )
