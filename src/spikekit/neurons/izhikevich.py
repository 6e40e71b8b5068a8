"""Izhikevich neuron: a quadratic membrane with a recovery variable (Izhikevich 2003)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from spikekit.neurons._base import Neuron, Param
from spikekit.neurons._math import Options, check_state_shape, detach_if_independent, integrate

__all__ = ["Izhikevich", "IzhikevichParams", "IzhikevichState", "izhikevich_step"]


class IzhikevichParams(NamedTuple):
    """Parameters of :func:`izhikevich_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta: ``1 - dt / tau``; the step scales both right-hand sides by ``1 - beta = dt / tau``.
        k2, k1, k0: the membrane polynomial ``k2 v^2 + k1 v + k0`` (0.04, 5, 140 in Izhikevich 2003).
        a: time scale of the recovery variable (relative to ``tau``).
        b: coupling of the recovery variable to the membrane.
        d: jump of the recovery variable at each spike.
        semi_implicit: which membrane the recovery variable integrates: 0 the one before the
            step (explicit Euler: Izhikevich 2003, norse), 1 the one just charged (spikingjelly).
        v_th: spike cut-off (30 mV in Izhikevich 2003).
        v_reset: reset potential (Izhikevich's ``c``).
        v_rest: initial membrane; the recovery variable starts at ``b v_rest``.
    """

    beta: Tensor
    k2: Tensor
    k1: Tensor
    k0: Tensor
    a: Tensor
    b: Tensor
    d: Tensor
    semi_implicit: Tensor
    v_th: Tensor
    v_reset: Tensor
    v_rest: Tensor


class IzhikevichState(NamedTuple):
    """State of :func:`izhikevich_step`: membrane ``v`` and recovery ``u``, ``[B, *features]``."""

    v: Tensor
    u: Tensor


def izhikevich_step(
    x: Tensor, state: IzhikevichState, params: IzhikevichParams, options: Options
) -> tuple[Tensor, IzhikevichState]:
    """One step of an Izhikevich neuron.

    Math:
        Forward Euler of Izhikevich (2003) ``tau dv/dt = k2 v^2 + k1 v + k0 - u + x``,
        ``tau du/dt = a (b v - u)``, with ``r = 1 - beta = dt / tau``:
        ``h = v + r (k2 v^2 + k1 v + k0 - u + x)`` (``decay_input``; else the input is added
        unscaled: ``h = v + r (k2 v^2 + k1 v + k0 - u) + x``); ``z = H(h - v_th)``;
        ``v'`` is ``h`` reset as in :func:`~spikekit.neurons.lif_step` (hard: ``v' = c =
        v_reset``); ``V = v + s (h - v)`` with ``s = semi_implicit``;
        ``u' = u + r a (b V - u) + d z``. ``v`` is the membrane the step charged from (with
        ``reset_delay``, after the delayed reset), and ``z`` keeps its gradient in the jump of
        ``u`` even with ``detach_reset`` (as spikingjelly).

    Args:
        x: input current ``[B, *features]``.
        state: :class:`IzhikevichState`.
        params: :class:`IzhikevichParams`.
        options: :class:`~spikekit.neurons.Options`.

    Returns:
        ``(z, IzhikevichState(v', u'))``.
    """
    check_state_shape(x, state, "izhikevich_step")
    state = detach_if_independent(state, options)
    p = params
    r = 1 - p.beta
    seen: list[Tensor] = []

    def charge(v: Tensor) -> Tensor:
        drive = p.k2 * (v * v) + p.k1 * v + p.k0 - state.u
        h = v + r * (drive + x) if options.decay_input else v + r * drive + x
        seen.extend((v, h))
        return h

    out, z, v = integrate(state.v, charge, p.v_th, p.v_reset, options)
    v0, h = seen
    vu = v0 + p.semi_implicit * (h - v0)
    u = state.u + r * p.a * (p.b * vu - state.u) + p.d * z
    return out, IzhikevichState(v, u)


class Izhikevich(Neuron):
    """Izhikevich spiking neuron layer (Izhikevich 2003, "Simple model of spiking neurons").

    The native convention is Izhikevich (2003) as norse implements it: the polynomial
    ``k2 v^2 + k1 v + k0`` and the recovery ``a (b v - u)``, explicit Euler, in mV with the
    defaults of the "tonic spiking" neuron (``a=0.02, b=0.2, c=-65, d=6``, start at -70 mV).

    Math:
        See :func:`izhikevich_step`.

        norse ``Izhikevich(create_izhikevich_spiking_behavior(a, b, c, d, v_rest, u_rest,
        tau_inv), dt=dt)`` with ``IzhikevichParameters(sq, mn, bias, v_th)`` is
        ``Izhikevich(tau=1/tau_inv, dt=dt, a=a, b=b, v_reset=c, d=d, k2=sq, k1=mn, k0=bias,
        v_th=v_th, v_rest=v_rest)`` (norse starts ``u`` at ``b u_rest``; pass a state if
        ``u_rest != v_rest``).

        spikingjelly's ``IzhikevichNode(tau, v_c, a0, v_threshold, v_reset, v_rest=vr, tau_w,
        a=A, b=B)`` (``tau a0 dv/dt = ... (v - vr)(v - v_c) - w + x``, ``w`` updated from the
        charged membrane) is ``Izhikevich(tau=tau, k2=a0, k1=-a0 (vr + v_c), k0=a0 vr v_c + A vr,
        a=tau/tau_w, b=A, d=B, semi_implicit=1, v_th=v_threshold, v_reset=v_reset)`` with
        ``dt=1``; its ``w`` is our ``u - A vr``, and it starts at ``v = v_reset, w = w_rest``.

    Args:
        tau: time constant of both equations (same unit as ``dt``); default 4 (with ``dt=1``
            a step of 0.25 ms, as norse's ``tau_inv=250, dt=1e-3``). beta: ``1 - dt / tau``.
        k2, k1, k0: membrane polynomial; default 0.04, 5, 140.
        a, b, d: recovery time scale, coupling and spike jump; default 0.02, 0.2, 6.
        semi_implicit: 0 (default, norse) or 1 (spikingjelly); see :class:`IzhikevichParams`.
        v_th: spike cut-off; default 30. v_reset: Izhikevich's ``c``; default -65.
        v_rest: initial membrane; default -70.
        dt: integration time step.
        reset, surrogate, detach_reset, reset_delay, decay_input, binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input).
        learn: any parameter name above (or ``"tau"`` for ``beta``).
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: ``IzhikevichState`` of
        ``[B, *features]``.

    Example:
        >>> import torch
        >>> z = Izhikevich()(torch.full((400, 1, 1), 10.0)).flatten()
        >>> z.nonzero().flatten().tolist()[:4]
        [15, 47, 193, 348]
    """

    state_type = IzhikevichState
    params_type = IzhikevichParams
    step_fn = staticmethod(izhikevich_step)
    parameters_decl = (
        Param("beta", 4.0, tau="tau", doc="1 - dt/tau"),
        Param("k2", 0.04, doc="quadratic coefficient"),
        Param("k1", 5.0, doc="linear coefficient"),
        Param("k0", 140.0, doc="constant term"),
        Param("a", 0.02, doc="recovery time scale"),
        Param("b", 0.2, doc="recovery coupling"),
        Param("d", 6.0, doc="recovery jump per spike"),
        Param("semi_implicit", 0.0, doc="recovery integrates the charged membrane (1) or the old one (0)"),
        Param("v_th", 30.0, doc="spike cut-off"),
        Param("v_reset", -65.0, doc="reset potential (c)"),
        Param("v_rest", -70.0, doc="initial membrane"),
    )

    def _rest(self, params: IzhikevichParams) -> Tensor:
        return params.v_rest

    def initial_state(self, x: Tensor) -> Any:
        """A fresh state: ``v = v_rest``, ``u = b v_rest`` (Izhikevich 2003, norse)."""
        st = super().initial_state(x)
        p = self._cast(self.params(), x)
        return IzhikevichState(st.v, st.u + p.b * p.v_rest)

    # why spikekit.to_nir refuses this neuron (the exporter names the module and this reason)
    nir_refusal = "NIR 1.0 has no Izhikevich neuron (its nodes are linear: IF, LIF, CubaLIF, LI, CubaLI, I)"
