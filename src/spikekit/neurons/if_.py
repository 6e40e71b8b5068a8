"""Integrate-and-fire neuron (no leak)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, detach_if_independent, integrate

__all__ = ["IF", "IFParams", "IFState", "if_step"]


class IFParams(NamedTuple):
    """Parameters of :func:`if_step`: threshold ``v_th`` and hard-reset potential ``v_reset``."""

    v_th: Tensor
    v_reset: Tensor


class IFState(NamedTuple):
    """State of :func:`if_step`: membrane ``v`` of shape ``[B, *features]``."""

    v: Tensor


def if_step(x: Tensor, state: IFState, params: IFParams, options: Options) -> tuple[Tensor, IFState]:
    """One step of an integrate-and-fire neuron.

    Math:
        ``h = v + x``; ``z = H(h - v_th)``; reset as in :func:`~spikekit.neurons.lif_step`.

    Args:
        x: input ``[B, *features]``. state: :class:`IFState`. params: :class:`IFParams`.
        options: :class:`~spikekit.neurons.Options` (``decay_input`` is ignored).

    Returns:
        ``(z, IFState(v'))``.
    """
    state = detach_if_independent(state, options)
    out, _, v = integrate(state.v, lambda v: v + x, params.v_th, params.v_reset, options)
    return out, IFState(v)


class IF(Neuron):
    """Integrate-and-fire neuron layer (eve-mli/spikingjelly ``IFNode``).

    Math:
        See :func:`if_step`. A fresh state starts at ``v_reset`` for a hard reset and at 0
        otherwise (spikingjelly's convention).

    Args:
        v_th: threshold. v_reset: hard-reset potential.
        reset: ``"hard"``, ``"soft"`` or ``"none"``.
        surrogate: a :class:`~spikekit.surrogate.Surrogate` or its name.
        detach_reset, reset_delay, binary, time_dependent: see :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input, like ``nn.LazyLinear``). learn: any of ``"v_th"``, ``"v_reset"``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf input.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``IFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> IF()(torch.full((4, 1, 1), 0.5)).flatten()
        tensor([0., 1., 0., 1.])
    """

    state_type = IFState
    params_type = IFParams
    step_fn = staticmethod(if_step)
    parameters_decl = (
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
    )
    options_used = tuple(o for o in Neuron.options_used if o != "decay_input")
    base_options = Options(decay_input=False)

    def _rest(self, params: Any) -> Tensor:
        return params.v_reset if self.options.reset == "hard" else params.v_reset * 0
