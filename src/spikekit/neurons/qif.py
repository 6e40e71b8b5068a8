"""Quadratic integrate-and-fire neuron (spikingjelly ``QIFNode`` semantics)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate

__all__ = ["QIF", "QIFParams", "QIFState", "qif_step"]


class QIFParams(NamedTuple):
    """Parameters of :func:`qif_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta: ``1 - dt / tau``; the step scales the right-hand side by ``1 - beta = dt / tau``.
        a0: quadratic coefficient (> 0).
        v_c: critical voltage (the unstable fixed point without input).
        v_th: firing threshold.
        v_reset: reset potential (hard reset).
        v_rest: resting potential (the stable fixed point without input; the initial membrane).
    """

    beta: Tensor
    a0: Tensor
    v_c: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_rest: Tensor


class QIFState(NamedTuple):
    """State of :func:`qif_step`: membrane ``v`` of shape ``[B, *features]``."""

    v: Tensor


def qif_step(x: Tensor, state: QIFState, params: QIFParams, options: Options) -> tuple[Tensor, QIFState]:
    """One step of a quadratic integrate-and-fire neuron.

    Math:
        Forward Euler of ``tau dv/dt = a0 (v - v_rest)(v - v_c) + x`` with ``k = 1 - beta = dt / tau``:
        ``h = v + k (x + a0 (v - v_rest)(v - v_c))`` if ``decay_input``, else
        ``h = v + k a0 (v - v_rest)(v - v_c) + x``; ``z = H(h - v_th)``; reset as in
        :func:`~spikekit.neurons.lif_step`. Without a reset (``reset="none"``) the membrane
        diverges once it passes ``v_c`` (the quadratic runs away in finite time).

    Args:
        x: input current ``[B, *features]``.
        state: :class:`QIFState`.
        params: :class:`QIFParams`.
        options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, QIFState(v'))``: spikes (or ``h - v_th`` if not binary) and the new state.
    """
    check_state_shape(x, state, "qif_step")
    state = detach_if_independent(state, options)
    p = params
    k = 1 - p.beta

    def charge(v: Tensor) -> Tensor:
        quad = p.a0 * (v - p.v_rest) * (v - p.v_c)
        return v + k * (x + quad) if options.decay_input else v + k * quad + x

    out, _, v = integrate(state.v, charge, p.v_th, p.v_reset, options)
    return out, QIFState(v)


class QIF(Neuron):
    """Quadratic integrate-and-fire layer.

    Math:
        See :func:`qif_step`. spikingjelly's ``QIFNode(tau, v_c, a0, v_threshold, v_rest,
        v_reset)`` is ``QIF(tau=tau, v_c=v_c, a0=a0, v_th=v_threshold, v_rest=v_rest,
        v_reset=v_reset)`` (``v_reset=None`` there is ``reset="soft"`` here), except that
        spikingjelly starts the membrane at ``v_reset`` (0 for a soft reset) and spikekit at
        ``v_rest``.

    Args:
        tau: membrane time constant (same unit as ``dt``); default 2.0. beta: ``1 - dt / tau``
            directly instead.
        a0: quadratic coefficient (> 0); default 1.
        v_c: critical voltage; default 0.8.
        v_th: threshold; default 1. v_reset: hard-reset potential; default -0.1.
        v_rest: resting (and initial) potential; default 0.
        dt: integration time step.
        reset, surrogate, detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input).
        learn: any of ``"tau"``/``"beta"``, ``"a0"``, ``"v_c"``, ``"v_th"``, ``"v_reset"``,
            ``"v_rest"``. ``a0`` is learnt as ``softplus(w)``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``QIFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> QIF(tau=2.0)(torch.full((4, 1, 1), 1.2)).flatten()
        tensor([0., 1., 0., 1.])
    """

    state_type = QIFState
    params_type = QIFParams
    step_fn = staticmethod(qif_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 2.0, tau="tau", doc="1 - dt/tau"),
        Param("a0", 1.0, kind="positive", doc="quadratic coefficient"),
        Param("v_c", 0.8, doc="critical voltage"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", -0.1, doc="hard-reset potential"),
        Param("v_rest", 0.0, doc="resting potential"),
    )

    def _rest(self, params: QIFParams) -> Tensor:
        return params.v_rest

    # why spikekit.to_nir refuses this neuron (the exporter names the module and this reason)
    nir_refusal = "NIR 1.0 has no quadratic integrate-and-fire neuron (its nodes are linear: IF, LIF, CubaLIF, LI, CubaLI, I)"
