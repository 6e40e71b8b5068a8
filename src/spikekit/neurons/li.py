"""Leaky integrator: the non-spiking readout (norse ``LICell``)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, detach_if_independent, leak

__all__ = ["LI", "LIParams", "LIState", "li_step"]


class LIParams(NamedTuple):
    """Parameters of :func:`li_step`: decays ``beta``, ``beta_syn`` and resting potential ``v_leak``."""

    beta: Tensor
    beta_syn: Tensor
    v_leak: Tensor


class LIState(NamedTuple):
    """State of :func:`li_step`: membrane ``v`` and synaptic current ``i``, ``[B, *features]``."""

    v: Tensor
    i: Tensor


def li_step(x: Tensor, state: LIState, params: LIParams, options: Options) -> tuple[Tensor, LIState]:
    """One step of a leaky integrator; the output is the membrane.

    Math:
        ``j = i + x``; ``v' = beta v + (1 - beta) v_leak + g j`` (``g = 1 - beta`` if
        ``decay_input`` else 1); ``i' = beta_syn j``. With ``beta_syn = 0`` this is the plain
        integrator ``v' = beta v + g x``.

    Args:
        x: input ``[B, *features]``. state: :class:`LIState`. params: :class:`LIParams`.
        options: only ``decay_input`` and ``time_dependent`` are used.

    Returns:
        ``(v', LIState(v', i'))``.
    """
    state = detach_if_independent(state, options)
    j = state.i + x
    v = leak(state.v, j, params.beta, params.v_leak, options.decay_input)
    return v, LIState(v, params.beta_syn * j)


class LI(Neuron):
    """Leaky-integrator readout layer; returns membrane traces, never spikes.

    Math:
        See :func:`li_step`. norse ``LICell(p=LIParameters(tau_mem_inv=a, tau_syn_inv=b), dt)``
        is ``LI(tau=1/a, tau_syn=1/b, dt=dt)``; ``tau_syn=None`` (or ``beta_syn=0``) gives
        ``v' = beta v + g x`` (a plain leaky readout).

    Args:
        tau: membrane time constant (default 10). beta: decay instead.
        tau_syn: synaptic time constant (default 5); ``beta_syn``: its decay instead.
        dt: time step. v_leak: resting potential. decay_input: scale input by ``1 - beta``.
        time_dependent: ``False`` detaches the state between steps.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``). learn: any of ``"tau"``, ``"tau_syn"``, ``"v_leak"``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output (membrane): same.

    Example:
        >>> import torch
        >>> LI(beta=0.5, beta_syn=0.0, decay_input=False)(torch.ones(3, 1, 1)).flatten()
        tensor([1.0000, 1.5000, 1.7500])
    """

    state_type = LIState
    params_type = LIParams
    step_fn = staticmethod(li_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 10.0, tau="tau", doc="membrane decay"),
        Param("beta_syn", 5.0, tau="tau_syn", off=0.0, doc="synaptic current decay (0: none)"),
        Param("v_leak", 0.0, doc="resting potential"),
    )
    options_used = ("decay_input", "time_dependent")
    base_options = Options(surrogate=None, reset="none")

    @staticmethod
    def ann_activation(x: Tensor) -> Tensor:
        return x
