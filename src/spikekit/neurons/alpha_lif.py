"""Alpha-current LIF: the membrane is a scaled difference of two exponentially decaying currents."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from spikekit.neurons._base import Neuron, Options, Param, _host
from spikekit.neurons._math import check_state_shape, detach_if_independent, fire

__all__ = ["AlphaLIF", "AlphaLIFParams", "AlphaLIFState", "alpha_lif_step"]


class AlphaLIFParams(NamedTuple):
    """Parameters of :func:`alpha_lif_step`; scalars or per-neuron tensors ``[*features]``.

    Attributes:
        beta_exc: decay of the excitatory current, ``1 - dt / tau_exc``.
        beta_inh: decay of the inhibitory current, ``1 - dt / tau_inh`` (below ``beta_exc``).
        v_th: firing threshold.
    """

    beta_exc: Tensor
    beta_inh: Tensor
    v_th: Tensor


class AlphaLIFState(NamedTuple):
    """State of :func:`alpha_lif_step`: membrane ``v``, excitatory ``i_exc`` and inhibitory
    ``i_inh`` currents, each ``[B, *features]``."""

    v: Tensor
    i_exc: Tensor
    i_inh: Tensor


def alpha_lif_step(
    x: Tensor, state: AlphaLIFState, params: AlphaLIFParams, options: Options
) -> tuple[Tensor, AlphaLIFState]:
    """One step of the alpha-current LIF neuron (snntorch ``Alpha`` semantics).

    Each input enters an excitatory current with a slow decay and, negated, an inhibitory
    current with a fast decay; their sum, scaled so that a unit input peaks near 1, is the
    membrane. A single input therefore raises the membrane gradually and lets it fall back:
    an alpha-shaped (difference-of-exponentials) response.

    Math:
        ``r = H(v - v_th)`` (the previous step's spike; detached with ``detach_reset``);
        ``e = beta_exc i_exc + x``; ``n = beta_inh i_inh - x``;
        ``v' = c (e + n)`` with ``c = log(beta_exc) / (log(beta_inh) - log(beta_exc)) + 1``.
        Reset (always delayed by one step, as snntorch): ``"hard"`` multiplies ``e``, ``n`` and
        ``v'`` by ``1 - r``; ``"soft"`` gives ``e - r v_th``, ``n (1 - r)`` and
        ``v' + r i_inh``; ``"none"`` leaves them. ``z = H(v' - v_th)``.

    Args:
        x: input current ``[B, *features]``.
        state: :class:`AlphaLIFState`.
        params: :class:`AlphaLIFParams`.
        options: :class:`~spikekit.neurons.Options` (``reset``, ``detach_reset``, ``surrogate``,
            ``spiking``, ``binary``, ``time_dependent``).

    Returns:
        ``(z, AlphaLIFState(v', e, n))``: spikes (or ``v' - v_th`` if not binary) and the new state.
    """
    check_state_shape(x, state, "alpha_lif_step")
    state = detach_if_independent(state, options)
    p = params
    log_exc = torch.log(p.beta_exc)
    scale = log_exc / (torch.log(p.beta_inh) - log_exc) + 1
    e = p.beta_exc * state.i_exc + x
    n = p.beta_inh * state.i_inh - x
    v = scale * (e + n)
    if options.reset != "none":
        r = fire(state.v - p.v_th, options)
        if options.detach_reset:
            r = r.detach()
        if options.reset == "hard":
            keep = 1 - r
            e, n, v = e * keep, n * keep, v * keep
        else:
            e, n, v = e - r * p.v_th, n * (1 - r), v + r * state.i_inh
    z = fire(v - p.v_th, options)
    out = z if options.binary else v - p.v_th
    return out, AlphaLIFState(v, e, n)


class AlphaLIF(Neuron):
    """Alpha-current leaky integrate-and-fire layer (snntorch's ``Alpha`` neuron).

    Math:
        See :func:`alpha_lif_step`. The reset always acts one step late (the membrane carried
        is the pre-reset value, as snntorch's). ``beta_exc`` must exceed ``beta_inh`` for a
        positive input to raise the membrane, and ``beta_inh < 1``.

    Args:
        tau_exc: excitatory time constant (default 10, ``beta_exc = 1 - dt / tau_exc``).
        beta_exc: excitatory decay instead. tau_inh: inhibitory time constant (default 5).
        beta_inh: inhibitory decay instead. dt: integration time step. v_th: threshold.
        reset: ``"hard"`` (zero the currents and membrane, the default), ``"soft"`` or ``"none"``.
        surrogate, detach_reset (default ``True``), binary, time_dependent: see
            :class:`~spikekit.neurons.Options`.
        shape: per-neuron parameter shape (``"infer"``: sized by the first input).
        learn: any of ``"tau_exc"``/``"beta_exc"``, ``"tau_inh"``/``"beta_inh"``, ``"v_th"``.
        batch_first: take and return ``[B, T, *features]``. check_finite: raise on NaN/inf.

    Shape:
        ``xs``: ``[T, B, *features]``; output: same; state: :class:`AlphaLIFState` of
        ``[B, *features]``.

    Example:
        >>> import torch
        >>> n = AlphaLIF(beta_exc=0.9, beta_inh=0.8, v_th=10.0)
        >>> _, s = n.scan(torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1))
        >>> round(s.v.item(), 4)
        0.3221
    """

    state_type = AlphaLIFState
    params_type = AlphaLIFParams
    step_fn = staticmethod(alpha_lif_step)
    positional = ("tau_exc",)
    parameters_decl = (
        Param("beta_exc", 10.0, tau="tau_exc", doc="excitatory current decay"),
        Param("beta_inh", 5.0, tau="tau_inh", doc="inhibitory current decay"),
        Param("v_th", 1.0, doc="threshold"),
    )
    options_used = ("surrogate", "reset", "detach_reset", "binary", "time_dependent")
    base_options = Options(reset="hard", reset_delay=True, detach_reset=True, decay_input=False)

    @classmethod
    def check_values(cls, values: dict[str, Any], options: Options, who: str) -> None:
        """Refuse decays that make the membrane scale undefined or negative-going."""
        super().check_values(values, options, who)
        exc, inh = _host(values["beta_exc"]), _host(values["beta_inh"])
        if exc is not None and inh is not None:
            if bool((inh >= 1).any()) or bool((inh <= 0).any()) or bool((exc <= 0).any()):
                raise ValueError(
                    f"{who}: beta_inh must lie in (0, 1) and beta_exc > 0 (the membrane scale "
                    f"takes their logarithms); got beta_exc={values['beta_exc']}, beta_inh={values['beta_inh']}"
                )
            if bool((exc <= inh).any()):
                raise ValueError(
                    f"{who}: beta_exc must be greater than beta_inh (tau_exc > tau_inh), else a "
                    f"positive input lowers the membrane; got beta_exc={values['beta_exc']}, "
                    f"beta_inh={values['beta_inh']}"
                )

    def _rest(self, params: AlphaLIFParams) -> Tensor:
        return torch.zeros_like(params.v_th)

    # why spikekit.to_nir refuses this neuron (the exporter names the module and this reason)
    nir_refusal = "its membrane is a scaled difference of an excitatory and an inhibitory current with a reset on all three, and NIR 1.0 has no such neuron"
