"""snetx's LIF neuron, surrogate and TET loss, built as native spikekit objects.

``from spikekit.compat.snetx import LIF, arc_tan, TETLoss`` replaces
``snetx.snn.neuron.LIF``, ``snetx.snn.algorithm.arc_tan`` and ``snetx.snn.algorithm.TETLoss``.
:class:`LIF` takes snetx 0.1's arguments and defaults and its batch-first calling convention
(``lif(x)`` on ``[B, T, *features]``, a plain function of its input), and is a subclass of
``spk.LIF`` that only maps them: snetx's ``tau`` divides the membrane each step, which is the
native ``beta = 1/tau`` (not the native ``tau``, whose decay is ``1 - 1/tau``). snetx is never
imported.

:func:`TETLoss` is snetx's formula, which differs from ``spikekit.losses.tet_loss`` (Deng et
al.'s TET with its MSE regulariser) although the name is the same: snetx mixes the criterion of
the time-averaged output (weight ``lamb``) with the criterion of every time step (``1 - lamb``).

Kept on purpose (see ``docs/migration/snetx.md``): ``alpha`` is read once, at construction (a
schedule goes through ``spikekit.surrogate.AlphaSchedule``), and a value exactly at the
threshold fires (snetx needs ``u > v_th``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from spikekit import surrogate as _sg
from spikekit.neurons.lif import LIF as _NativeLIF

__all__ = ["LIF", "arc_tan", "TETLoss", "TET"]


# ============================================================================ surrogates


def arc_tan(alpha: float = 4.0) -> _sg.Surrogate:
    """snetx ``algorithm.arc_tan`` with ``alpha``: gradient ``(alpha/2) / (1 + (pi/2 alpha x)^2)``.

    snetx passes ``arc_tan`` (an autograd Function) and ``alpha`` separately to its neuron;
    here ``arc_tan`` builds the surrogate from the alpha, and :class:`LIF` calls it that way.

    Returns:
        ``spikekit.surrogate.ATan(alpha)`` (snetx's default alpha is 4, spikekit's ATan's is 2).
    """
    return _sg.ATan(alpha=float(alpha))


def _alpha(alpha: Any, who: str) -> float:
    if type(alpha).__name__ == "EvolvedAlpha":
        # snetx's EvolvedAlpha changes with class-level epoch counters between calls; reading it
        # once would silently freeze the schedule
        raise TypeError(
            f"{who}: snetx's EvolvedAlpha schedule cannot be read once at construction. Build the "
            f"neuron with alpha=base and, each epoch, call spikekit.surrogate.AlphaSchedule(base=base, "
            f"epochs=EvolvedAlpha.epoch, e_max=EvolvedAlpha.e_max).apply(model, epoch)"
        )
    value = alpha() if callable(alpha) else alpha
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{who}: alpha must be a number or a function returning one, got {value!r}")
    return float(value)


# ============================================================================ neuron


class LIF(_NativeLIF):
    """snetx ``snn.neuron.LIF``: batch-first LIF whose membrane is divided by ``tau`` each step.

    Built as ``spk.LIF(beta=1/tau, v_th=v_th, v_reset=v_reset, v_leak=0, reset="hard",
    decay_input=False, detach_reset=detach, surrogate=sg(alpha), batch_first=True)``.

    Math:
        ``u = u_prev / tau + x``; ``s = H(u - v_th)``; ``u' = v_reset`` where ``s`` else ``u``.
        The membrane starts at 0 and decays towards 0.

    Args:
        tau: membrane divisor (>= 1): decay ``1/tau`` per step.
        v_th: threshold. v_reset: reset potential.
        sg: builds the surrogate from ``alpha``: :func:`arc_tan` (snetx's default) or a
            spikekit surrogate class (``spikekit.surrogate.Sigmoid``...).
        alpha: the surrogate's sharpness, a number or a function returning one (snetx's
            ``lambda: 4.0``); read once, at construction.
        detach: stop the gradient through the spike in the reset.

    Returns:
        ``lif(x)`` returns the spikes, shaped like ``x``.

    Shape:
        ``x``: ``[B, T, *features]`` (batch first, as snetx); output: same.

    Example:
        >>> import torch
        >>> LIF()(torch.full((1, 3, 1), 0.7)).flatten()
        tensor([0., 1., 0.])
    """

    # the generated signature of the native parent would hide snetx's arguments
    __signature__ = None

    def __init__(
        self,
        tau: float = 2.0,
        v_th: float = 1.0,
        v_reset: float = 0.0,
        sg: Callable[[float], _sg.Surrogate] = arc_tan,
        alpha: float | Callable[[], float] = 4.0,
        detach: bool = False,
    ) -> None:
        who = type(self).__name__
        if not (isinstance(tau, (int, float)) and tau >= 1):
            raise ValueError(
                f"{who}: tau must be a number >= 1 (the membrane is divided by tau each step, so "
                f"tau < 1 would make it grow), got {tau!r}"
            )
        surrogate = sg(_alpha(alpha, who)) if callable(sg) else sg
        if not isinstance(surrogate, _sg.Surrogate):
            raise TypeError(
                f"{who}: sg must build a spikekit surrogate from alpha (spikekit.compat.snetx.arc_tan, "
                f"or a spikekit.surrogate class such as spikekit.surrogate.Sigmoid); got {sg!r}. "
                f"snetx's own autograd Functions cannot be used: spikekit needs the formula"
            )
        super().__init__(
            beta=1.0 / float(tau),
            v_th=v_th,
            v_reset=v_reset,
            v_leak=0.0,
            reset="hard",
            decay_input=False,
            detach_reset=bool(detach),
            surrogate=surrogate,
            batch_first=True,
        )


# ============================================================================ loss


def TETLoss(
    criterion: Callable[[Tensor, Tensor], Tensor], target: Tensor, output: Tensor, lamb: float = 1e-3
) -> Tensor:
    """snetx ``algorithm.TETLoss``: ``lamb crit(mean_t out, y) + (1 - lamb) crit(out_t, y) over all t``.

    Not ``spikekit.losses.tet_loss``, which is Deng et al.'s TET (``(1 - lamb)`` times the mean
    per-step cross-entropy plus ``lamb`` times an MSE to a constant): snetx puts ``lamb`` on the
    criterion of the time-averaged output instead.

    Args:
        criterion: a loss taking ``(prediction, target)``, e.g. ``nn.CrossEntropyLoss()``.
        target: labels ``[B]`` (or any per-sample target ``[B, ...]``).
        output: batch-first outputs ``[B, T, C]``.
        lamb: weight of the time-averaged term.

    Returns:
        The loss, as ``criterion`` reduces it.

    Shape:
        ``output``: ``[B, T, C]``; ``target``: ``[B, ...]``; the per-step term sees
        ``[B * T, C]`` against the target repeated over time (sample-major, as snetx).
    """
    T = output.shape[1]
    # each sample's target repeated for its T steps, in the order output.flatten(0, 1) lists them
    repeated = target.unsqueeze(1).expand(target.shape[0], T, *target.shape[1:]).flatten(0, 1)
    averaged = criterion(output.mean(dim=1), target)
    per_step = criterion(output.flatten(0, 1), repeated)
    return lamb * averaged + (1 - lamb) * per_step


class TET:
    """snetx ``algorithm.TET``: :func:`TETLoss` with its criterion and ``lamb`` bound.

    Args:
        criterion: a loss taking ``(prediction, target)``.
        lamb: weight of the time-averaged term.

    Returns:
        ``TET(criterion)(target, output)`` returns :func:`TETLoss` ``(criterion, target, output, lamb)``.

    Shape:
        See :func:`TETLoss`.
    """

    def __init__(self, criterion: Callable[[Tensor, Tensor], Tensor], lamb: float = 1e-3) -> None:
        self.criterion = criterion
        self.lamb = lamb

    def __call__(self, target: Tensor, output: Tensor) -> Tensor:
        return TETLoss(self.criterion, target, output, self.lamb)
