"""Current-based LIF: a LIF membrane driven by an exponentially decaying synaptic current."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, detach_if_independent, integrate, leak

__all__ = ["CubaLIF", "CubaLIFParams", "CubaLIFState", "cuba_lif_step"]


class CubaLIFParams(NamedTuple):
    """Parameters of :func:`cuba_lif_step`.

    Attributes:
        beta: membrane decay ``1 - dt / tau``. beta_syn: current decay ``1 - dt / tau_syn``.
        v_th: threshold. v_reset: hard-reset potential. v_leak: resting potential.
    """

    beta: Tensor
    beta_syn: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_leak: Tensor


class CubaLIFState(NamedTuple):
    """State of :func:`cuba_lif_step`: membrane ``v`` and synaptic current ``i``, ``[B, *features]``."""

    v: Tensor
    i: Tensor


def cuba_lif_step(
    x: Tensor, state: CubaLIFState, params: CubaLIFParams, options: Options
) -> tuple[Tensor, CubaLIFState]:
    """One step of a current-based LIF neuron (norse ``LIFCell`` semantics).

    Math:
        ``j = i + x``; ``h = beta v + (1 - beta) v_leak + g j`` (``g = 1 - beta`` if
        ``decay_input`` else 1); ``z = H(h - v_th)``; reset as in
        :func:`~spikekit.neurons.lif_step`; ``i' = beta_syn j``.

    Args:
        x: input current jump ``[B, *features]``. state: :class:`CubaLIFState`.
        params: :class:`CubaLIFParams`. options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, CubaLIFState(v', i'))``.
    """
    state = detach_if_independent(state, options)
    p = params
    j = state.i + x
    out, _, v = integrate(
        state.v, lambda v: leak(v, j, p.beta, p.v_leak, options.decay_input), p.v_th, p.v_reset, options
    )
    return out, CubaLIFState(v, p.beta_syn * j)


class CubaLIF(Neuron):
    """Current-based leaky integrate-and-fire layer (norse's default ``LIFCell``).

    Math:
        See :func:`cuba_lif_step`. norse's ``LIFParameters(tau_mem_inv=a, tau_syn_inv=b)`` with
        time step ``dt`` is ``CubaLIF(tau=1/a, tau_syn=1/b, dt=dt)``.

    Args:
        tau: membrane time constant (default 10). beta: membrane decay instead of ``tau``.
        tau_syn: synaptic time constant (default 5). beta_syn: current decay instead.
        dt: time step. v_th, v_reset, v_leak: potentials.
        reset, surrogate, detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``). learn: any of ``"tau"``, ``"tau_syn"``, ``"v_th"``,
            ``"v_reset"``, ``"v_leak"`` (or ``"beta"``, ``"beta_syn"``).
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``CubaLIFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> CubaLIF()(torch.ones(2, 3, 4)).shape
        torch.Size([2, 3, 4])
    """

    state_type = CubaLIFState
    params_type = CubaLIFParams
    step_fn = staticmethod(cuba_lif_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 10.0, tau="tau", doc="membrane decay"),
        Param("beta_syn", 5.0, tau="tau_syn", doc="synaptic current decay"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
        Param("v_leak", 0.0, doc="resting potential"),
    )
