"""Leaky integrator: the non-spiking readout (norse ``LICell``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from torch import Tensor

from spikekit.neurons._base import (
    Neuron,
    Options,
    check_dt,
    decay_from,
    detach_if_independent,
    leak,
)

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

    family = "li"
    state_type = LIState
    params_type = LIParams
    step_fn = staticmethod(li_step)
    learn_aliases = {
        "tau": "beta",
        "beta": "beta",
        "tau_syn": "beta_syn",
        "beta_syn": "beta_syn",
        "v_leak": "v_leak",
    }

    @staticmethod
    def ann_activation(x: Tensor) -> Tensor:
        return x

    def __init__(
        self,
        tau: float | Tensor | None = None,
        *,
        beta: float | Tensor | None = None,
        tau_syn: float | Tensor | None = 5.0,
        beta_syn: float | Tensor | None = None,
        dt: float = 1.0,
        v_leak: float | Tensor = 0.0,
        decay_input: bool = True,
        time_dependent: bool = True,
        shape: int | Iterable[int] | str | None = None,
        learn: str | Iterable[str] = (),
        batch_first: bool = False,
        check_finite: bool = False,
    ) -> None:
        super().__init__()
        check_dt(dt, "LI")
        if beta_syn is not None:
            tau_syn = None
        syn = 0.0 if tau_syn is None and beta_syn is None else decay_from(tau_syn, beta_syn, dt, 5.0, "_syn")
        self._setup(
            values={"beta": decay_from(tau, beta, dt, 10.0, ""), "beta_syn": syn, "v_leak": v_leak},
            kinds={"beta": "decay", "beta_syn": "decay"},
            options=Options(
                surrogate=None, reset="none", decay_input=decay_input, time_dependent=time_dependent
            ),
            shape=shape,
            learn=learn,
            batch_first=batch_first,
            check_finite=check_finite,
        )
