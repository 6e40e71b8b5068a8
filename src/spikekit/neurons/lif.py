"""Leaky integrate-and-fire neuron (no synaptic current)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from spikekit import surrogate as _sg
from spikekit.neurons._base import (
    Neuron,
    Options,
    check_dt,
    check_threshold,
    decay_from,
    detach_if_independent,
    integrate,
    leak,
    options_from,
)

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

    family = "lif"
    state_type = LIFState
    params_type = LIFParams
    step_fn = staticmethod(lif_step)
    learn_aliases = {"tau": "beta", "beta": "beta", "v_th": "v_th", "v_reset": "v_reset", "v_leak": "v_leak"}
    ann_activation = staticmethod(F.leaky_relu)

    def __init__(
        self,
        tau: float | Tensor | None = None,
        *,
        beta: float | Tensor | None = None,
        dt: float = 1.0,
        v_th: float | Tensor = 1.0,
        v_reset: float | Tensor = 0.0,
        v_leak: float | Tensor = 0.0,
        reset: str = "hard",
        surrogate: str | _sg.Surrogate = "atan",
        detach_reset: bool = False,
        reset_delay: bool = False,
        decay_input: bool = True,
        binary: bool = True,
        time_dependent: bool = True,
        shape: int | Iterable[int] | str | None = None,
        learn: str | Iterable[str] = (),
        batch_first: bool = False,
        check_finite: bool = False,
    ) -> None:
        super().__init__()
        check_dt(dt, "LIF")
        options = options_from(
            surrogate=surrogate,
            reset=reset,
            detach_reset=detach_reset,
            reset_delay=reset_delay,
            decay_input=decay_input,
            binary=binary,
            time_dependent=time_dependent,
        )
        check_threshold(v_th, v_reset, reset, "LIF")
        self._setup(
            values={
                "beta": decay_from(tau, beta, dt, 2.0, ""),
                "v_th": v_th,
                "v_reset": v_reset,
                "v_leak": v_leak,
            },
            kinds={"beta": "decay"},
            options=options,
            shape=shape,
            learn=learn,
            batch_first=batch_first,
            check_finite=check_finite,
        )
