"""Resonate-and-fire neuron: a damped oscillator that spikes on its real part (Izhikevich 2001)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from spikekit.neurons._base import Neuron, Param, check_dt
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate

__all__ = ["RF", "RFParams", "RFState", "rf_step"]

_DEFAULT_OMEGA = 0.5


class RFParams(NamedTuple):
    """Parameters of :func:`rf_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta: damping per step, ``1 - dt / tau`` (``1 + dt b`` with Izhikevich's ``b = -1/tau``).
        omega_dt: rotation per step, ``omega dt`` (``omega``: angular frequency).
        v_th: firing threshold on the real part.
        v_reset: reset potential of the real part (hard reset).
    """

    beta: Tensor
    omega_dt: Tensor
    v_th: Tensor
    v_reset: Tensor


class RFState(NamedTuple):
    """State of :func:`rf_step`: real part ``v`` and imaginary part ``i``, ``[B, *features]``."""

    v: Tensor
    i: Tensor


def rf_step(x: Tensor, state: RFState, params: RFParams, options: Options) -> tuple[Tensor, RFState]:
    """One step of a resonate-and-fire neuron.

    Math:
        Izhikevich (2001): ``dz/dt = (b + i omega) z + I`` for ``z = v + i y`` (here the
        imaginary part is called ``i``), ``b = -1/tau < 0``. Forward Euler with step ``dt``:
        ``h = beta v - omega_dt i + g x`` (``g = 1 - beta`` if ``decay_input``, else 1) and
        ``i' = omega_dt v + beta i``, with ``beta = 1 - dt / tau`` and ``omega_dt = omega dt``;
        ``z = H(h - v_th)``; ``v'`` is ``h`` reset as in :func:`~spikekit.neurons.lif_step`.
        Only the real part is reset (so every reset kind and ``reset_delay`` apply; with
        ``reset_delay`` ``i'`` sees the membrane after the delayed reset); the imaginary part
        keeps the phase. Without input the oscillation decays only while
        ``beta^2 + omega_dt^2 < 1`` (forward Euler amplifies an undamped rotation).

    Args:
        x: input current ``[B, *features]``.
        state: :class:`RFState`.
        params: :class:`RFParams`.
        options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, RFState(v', i'))``.
    """
    check_state_shape(x, state, "rf_step")
    state = detach_if_independent(state, options)
    p = params
    g = 1 - p.beta if options.decay_input else 1
    seen: list[Tensor] = []

    def charge(v: Tensor) -> Tensor:
        seen.append(v)
        return p.beta * v - p.omega_dt * state.i + g * x

    out, _, v = integrate(state.v, charge, p.v_th, p.v_reset, options)
    return out, RFState(v, p.omega_dt * seen[0] + p.beta * state.i)


class RF(Neuron):
    """Resonate-and-fire layer (Izhikevich 2001, "Resonate-and-fire neurons").

    Sub-threshold, the neuron is a damped oscillator of angular frequency ``omega``: it responds
    most to inputs arriving at its own period, and an inhibitory pulse can make it fire
    (rebound). None of the peer libraries has it.

    Math:
        See :func:`rf_step`. The paper's ``(b, omega)`` with step ``dt`` are ``tau = -1/b``
        and ``omega``; its input ``I`` with Euler weight ``dt`` is ``decay_input=False`` with
        ``x = dt I``.

    Args:
        tau: damping time constant (same unit as ``dt``); default 5. beta: ``1 - dt / tau``.
        omega: angular frequency (radians per unit of ``dt``); default 0.5. omega_dt: the
            rotation per step instead (``omega dt``).
        v_th: threshold; default 1. v_reset: hard-reset potential of the real part; default 0.
        dt: integration time step.
        reset, surrogate, detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input).
        learn: any of ``"tau"``/``"beta"``, ``"omega"``/``"omega_dt"``, ``"v_th"``, ``"v_reset"``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``RFState`` of ``[B, *features]``.

    Example:
        >>> import torch
        >>> RF(decay_input=False)(torch.full((8, 1, 1), 0.6)).flatten()
        tensor([0., 1., 0., 0., 1., 0., 0., 0.])
    """

    state_type = RFState
    params_type = RFParams
    step_fn = staticmethod(rf_step)
    positional = ("tau",)
    parameters_decl = (
        Param("beta", 5.0, tau="tau", doc="damping per step"),
        Param("omega_dt", _DEFAULT_OMEGA, doc="rotation per step (omega dt)"),
        Param("v_th", 1.0, doc="threshold"),
        Param("v_reset", 0.0, doc="hard-reset potential"),
    )

    def __init__(self, *args: Any, omega: float | Tensor | None = None, **kwargs: Any) -> None:
        # omega is continuous time like tau: the stored parameter is omega * dt.
        if omega is not None and kwargs.get("omega_dt") is not None:
            raise ValueError(
                f"RF: give either omega or omega_dt, not both (got {omega}, {kwargs['omega_dt']})"
            )
        if kwargs.get("omega_dt") is None:
            dt = kwargs.get("dt", 1.0)
            check_dt(dt, "RF")
            kwargs["omega_dt"] = (_DEFAULT_OMEGA if omega is None else omega) * dt
        super().__init__(*args, **kwargs)

    @classmethod
    def _keywords(cls) -> dict[str, Any]:
        kw = super()._keywords()
        return {"omega": None, **{k: (None if k == "omega_dt" else v) for k, v in kw.items()}}

    @classmethod
    def learnable_names(cls) -> dict[str, str]:
        return {**super().learnable_names(), "omega": "omega_dt"}

    def _rest(self, params: RFParams) -> Tensor:
        return torch.zeros_like(params.v_th)

    # why spikekit.to_nir refuses this neuron (the exporter names the module and this reason)
    nir_refusal = "NIR 1.0 has no resonate-and-fire (complex, oscillating) neuron"
