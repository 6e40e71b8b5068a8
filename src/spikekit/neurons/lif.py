"""Leaky integrate-and-fire neuron (no synaptic current)."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, detach_if_independent, integrate, leak

__all__ = ["LIF", "LIFParams", "LIFState", "lif_step"]


class LIFParams(NamedTuple):
    """Parameters of :func:`lif_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta: membrane decay per step, ``1 - dt / tau``.
        v_th: firing threshold.
        v_reset: reset potential (hard reset).
        v_leak: resting potential the membrane decays towards.
    """

    beta: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_leak: Tensor


class LIFState(NamedTuple):
    """State of :func:`lif_step`: membrane ``v`` of shape ``[B, *features]``."""

    v: Tensor


def lif_step(x: Tensor, state: LIFState, params: LIFParams, options: Options) -> tuple[Tensor, LIFState]:
    """One step of a leaky integrate-and-fire neuron.

    Math:
        ``h = beta v + (1 - beta) v_leak + g x`` with ``g = 1 - beta`` if ``decay_input``
        else ``1``; ``z = H(h - v_th)``; then ``v' = h - z (h - v_reset)`` (hard),
        ``v' = h - z v_th`` (soft) or ``v' = h`` (none). With ``reset_delay`` the reset of a
        spike is applied at the next step (snntorch): ``h = beta v + ... - z_prev v_th``.

    Args:
        x: input current ``[B, *features]``.
        state: :class:`LIFState`.
        params: :class:`LIFParams`.
        options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, LIFState(v'))``: spikes (or ``h - v_th`` if not binary) and the new state.
    """
    state = detach_if_independent(state, options)
    p = params
    out, _, v = integrate(
        state.v, lambda v: leak(v, x, p.beta, p.v_leak, options.decay_input), p.v_th, p.v_reset, options
    )
    return out, LIFState(v)


class LIF(Neuron):
    """Leaky integrate-and-fire neuron layer.

    Math:
        See :func:`lif_step`. ``beta = 1 - dt / tau`` (forward Euler, as spikingjelly and
        norse), or give ``beta`` directly (snntorch).

    Args:
        tau: membrane time constant (same unit as ``dt``); default 2.0. Scalar or tensor.
        beta: decay factor in [0, 1] instead of ``tau``.
        dt: integration time step.
        v_th: threshold. v_reset: hard-reset potential. v_leak: resting potential.
        reset: ``"hard"``, ``"soft"`` (subtract) or ``"none"``.
        surrogate: a :class:`~spikekit.surrogate.Surrogate` or its name.
        detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``) ``[*features]`` (eve ``neuron_wise``); ``None``
            shares one value across neurons unless a tensor parameter sets the shape.
        learn: names to learn, any of ``"tau"``/``"beta"``, ``"v_th"``, ``"v_reset"``, ``"v_leak"``.
            A learnt decay is reparametrised ``beta = sigmoid(w)``.
        batch_first: take and return ``[B, T, *features]``.
        check_finite: raise on NaN/inf input.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``LIFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> lif = LIF(tau=2.0)
        >>> lif(torch.full((3, 1, 2), 1.5)).squeeze(1)
        tensor([[0., 0.],
                [1., 1.],
                [0., 0.]])
    """

    state_type = LIFState
    params_type = LIFParams
    step_fn = staticmethod(lif_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 2.0, tau="tau", doc="membrane decay"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
        Param("v_leak", 0.0, doc="resting potential"),
    )
    ann_activation = staticmethod(F.leaky_relu)
