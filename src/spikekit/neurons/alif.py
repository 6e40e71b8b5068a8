"""Adaptive LIF: a LIF neuron whose threshold rises with each spike and decays back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

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

    family = "alif"
    state_type = ALIFState
    params_type = ALIFParams
    step_fn = staticmethod(alif_step)
    learn_aliases = {
        "tau": "beta",
        "beta": "beta",
        "tau_adapt": "rho",
        "rho": "rho",
        "adapt": "adapt",
        "v_th": "v_th",
        "v_reset": "v_reset",
        "v_leak": "v_leak",
    }

    def __init__(
        self,
        tau: float | Tensor | None = None,
        *,
        beta: float | Tensor | None = None,
        tau_adapt: float | Tensor | None = None,
        rho: float | Tensor | None = None,
        adapt: float | Tensor = 1.8,
        dt: float = 1.0,
        v_th: float | Tensor = 1.0,
        v_reset: float | Tensor = 0.0,
        v_leak: float | Tensor = 0.0,
        reset: str = "hard",
        surrogate: str | _sg.Surrogate = "atan",
        detach_reset: bool = False,
        decay_input: bool = True,
        binary: bool = True,
        time_dependent: bool = True,
        shape: int | Iterable[int] | str | None = None,
        learn: str | Iterable[str] = (),
        batch_first: bool = False,
        check_finite: bool = False,
    ) -> None:
        super().__init__()
        check_dt(dt, "ALIF")
        options = options_from(
            surrogate=surrogate,
            reset=reset,
            detach_reset=detach_reset,
            reset_delay=False,
            decay_input=decay_input,
            binary=binary,
            time_dependent=time_dependent,
        )
        check_threshold(v_th, v_reset, reset, "ALIF")
        self._setup(
            values={
                "beta": decay_from(tau, beta, dt, 10.0, ""),
                "v_th": v_th,
                "v_reset": v_reset,
                "v_leak": v_leak,
                "rho": decay_from(tau_adapt, rho, dt, 200.0, "_adapt"),
                "adapt": adapt,
            },
            kinds={"beta": "decay", "rho": "decay"},
            options=options,
            shape=shape,
            learn=learn,
            batch_first=batch_first,
            check_finite=check_finite,
        )
