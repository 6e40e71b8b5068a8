"""eve-mli's spiking neurons and surrogates, built as native spikekit objects.

``from spikekit.compat.eve import IFNode, LIFNode, surrogate_fn`` replaces
``from eve.core import IFNode, LIFNode`` (and ``eve.core.surrogate_fn``). The neurons take
eve-mli 0.1's arguments and defaults (``state`` first, ``voltage_threshold``,
``voltage_reset=None`` for a soft reset, ``surrogate_fn="Sigmoid"`` with eve's alpha 1,
``neuron_wise``, ``time_dependent``, ``binary``; ``LIFNode(tau=1.0)``) and are subclasses of
``spk.IF`` / ``spk.LIF`` that only map those arguments: the step function is inherited, so the
fused kernels, ``.scan``, ``.step`` and ``spk.record`` apply. eve-mli is never imported.

Calling convention: eve keeps the membrane inside the module (``node(x)`` is one step,
``model.reset()`` clears it). spikekit keeps no state in modules (DESIGN property 3), so a
compat node is called as every native neuron: ``node(x_seq)`` on ``[T, B, *features]`` runs the
whole sequence from eve's initial state (membrane 0); one step per call works inside
``with spikekit.stepwise(net):``, where ``spikekit.reset(net)`` is eve's ``model.reset()``.

Kept on purpose (see ``docs/migration/eve.md``): the surrogate gradient stays on in eval mode,
the node starts in spiking mode (eve starts non-spiking; use ``spikekit.spike``/``non_spike``),
a learnt LIF reset is two parameters (``v_reset`` and ``v_leak``), and eve's ``Erf`` and
``PiecewiseLeakyReLU`` gradients (which differ from the derivative of their own primitives)
are refused rather than reproduced.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd

from spikekit import surrogate as _sg
from spikekit.neurons.if_ import IF
from spikekit.neurons.lif import LIF

__all__ = ["IFNode", "LIFNode", "surrogate_fn"]


# ============================================================================ surrogates


def Sigmoid(alpha: float = 1.0) -> _sg.Surrogate:
    """eve ``surrogate_fn.Sigmoid(alpha=1)``: gradient ``alpha s (1 - s)``, ``s = sigmoid(alpha x)``.

    eve's default alpha is 1, where ``spikekit.surrogate.Sigmoid`` (and the name ``"sigmoid"``)
    defaults to spikingjelly's 4.

    Returns:
        ``spikekit.surrogate.Sigmoid(alpha)``.
    """
    return _sg.Sigmoid(alpha=float(alpha))


def ATan(alpha: float = 2.0) -> _sg.Surrogate:
    """eve ``surrogate_fn.ATan(alpha=2)``: gradient ``(alpha/2) / (1 + (pi/2 alpha x)^2)``.

    Returns:
        ``spikekit.surrogate.ATan(alpha)``.
    """
    return _sg.ATan(alpha=float(alpha))


def SoftSign(alpha: float = 2.0) -> _sg.Surrogate:
    """eve ``surrogate_fn.SoftSign(alpha=2)``: gradient ``alpha / (2 (1 + |alpha x|)^2)``.

    Returns:
        ``spikekit.surrogate.SoftSign(alpha)``.
    """
    return _sg.SoftSign(alpha=float(alpha))


def NonzeroSignLogAbs(alpha: float = 1.0) -> _sg.Surrogate:
    """eve ``surrogate_fn.NonzeroSignLogAbs(alpha=1)``: gradient ``1 / (1/alpha + |x|)``.

    Returns:
        ``spikekit.surrogate.NonzeroSignLogAbs(alpha)``.
    """
    return _sg.NonzeroSignLogAbs(alpha=float(alpha))


def PiecewiseQuadratic(alpha: float = 1.0) -> _sg.Surrogate:
    """eve ``surrogate_fn.PiecewiseQuadratic(alpha=1)``: gradient ``max(0, alpha - alpha^2 |x|)``.

    The gradient (all a spiking neuron uses) is eve's. eve's *primitive* (used only by a relaxed,
    ``spiking=False`` neuron) is the PiecewiseExp primitive; spikekit's is the integral of this
    gradient.

    Returns:
        ``spikekit.surrogate.PiecewiseQuadratic(alpha)``.
    """
    return _sg.PiecewiseQuadratic(alpha=float(alpha))


def _refused(name: str, why: str, use: str) -> Any:
    def make(*args: Any, **kwargs: Any) -> _sg.Surrogate:
        raise NotImplementedError(
            f"spikekit.compat.eve.surrogate_fn.{name}: {why}, which spikekit does not reproduce. "
            f"Use {use} (the true derivative of eve's primitive) explicitly as surrogate_fn"
        )

    make.__name__ = name
    return make


_SURROGATES = {f.__name__: f for f in (Sigmoid, ATan, SoftSign, NonzeroSignLogAbs, PiecewiseQuadratic)}
_REFUSED = {
    # eve 0.1.0's Erf backward has x where the derivative of its primitive has alpha, so its
    # gradient is negative below the threshold and zero at it
    "Erf": _refused(
        "Erf",
        "eve's backward is exp(-(alpha x)^2) x / sqrt(pi), not the derivative",
        "spikekit.surrogate.Erf(alpha)",
    ),
    # eve's backward is 1/w inside the window, twice the slope of its own primitive
    "PiecewiseLeakyReLU": _refused(
        "PiecewiseLeakyReLU",
        "eve's backward is 1/w inside |x| < w, twice the slope of its own primitive",
        "spikekit.surrogate.PiecewiseLeakyReLU(alpha=1/w, c=c)",
    ),
}

surrogate_fn = SimpleNamespace(**_SURROGATES, **_REFUSED)
"""eve's ``eve.core.surrogate_fn`` names, returning native spikekit surrogate objects."""


def _surrogate(surrogate: Any, kwargs: dict[str, Any], who: str) -> _sg.Surrogate:
    """eve's ``surrogate_fn`` (a name plus its ``**kwargs``) as a spikekit surrogate."""
    if isinstance(surrogate, _sg.Surrogate):
        if kwargs:
            raise TypeError(
                f"{who}: extra keywords {sorted(kwargs)} with a surrogate object; set them on the object"
            )
        return surrogate
    if isinstance(surrogate, str):
        make = _SURROGATES.get(surrogate) or _REFUSED.get(surrogate)
        if make is None:
            raise ValueError(
                f"{who}: unknown surrogate_fn {surrogate!r}; eve's names that spikekit keeps: "
                f"{', '.join(_SURROGATES)}, or pass a spikekit.surrogate object"
            )
        try:
            return make(**kwargs)
        except TypeError as e:
            raise TypeError(
                f"{who}: surrogate_fn={surrogate!r} does not take {sorted(kwargs)}: {e}"
            ) from None
    raise TypeError(
        f"{who}: surrogate_fn must be one of eve's names ({', '.join(_SURROGATES)}) or a spikekit "
        f"surrogate object; got {surrogate!r}. spikekit needs the surrogate's formula, not an "
        f"autograd Function"
    )


# ============================================================================ neurons


def _shape(state: Any, neuron_wise: bool, learnt: bool, who: str) -> tuple[int, ...] | None:
    """The per-neuron parameter shape eve derives from ``state`` (its filter layer).

    eve gives a Linear layer's ``C`` outputs ``C`` values on the last dim, and a convolution's
    ``C`` channels one value per channel (``(C, 1, 1)`` for 2-d, broadcast over space).
    """
    if not neuron_wise:
        return None
    if state is None:
        if learnt:
            raise ValueError(
                f"{who}(neuron_wise=True) with a learnable threshold or reset needs the neuron count: "
                f"pass state= the layer before (nn.Linear / nn.Conv2d), eve's State, an int C or a "
                f"shape tuple; or neuron_wise=False for one shared value"
            )
        return None  # all values equal and fixed: one shared value computes the same
    if isinstance(state, int):
        return (state,)
    if isinstance(state, tuple):
        return tuple(int(s) for s in state)
    layer = getattr(state, "filter_module", state)  # eve's State wraps the filter layer
    if isinstance(layer, nn.Module):
        for m in reversed(list(layer.modules())):  # the last filter layer, as eve's State picks
            if isinstance(m, nn.Linear):
                return (m.out_features,)
            if isinstance(m, _ConvNd):
                return (m.out_channels,) + (1,) * len(m.kernel_size)
    raise TypeError(
        f"{who}: state must be None, an int, a shape tuple, an nn.Linear/nn.ConvNd (or a module "
        f"containing one) or eve's State; got {type(state).__name__}"
    )


def _reset(voltage_reset: float | None) -> dict[str, Any]:
    """eve's ``voltage_reset=None`` is a soft reset (subtract the threshold)."""
    if voltage_reset is None:
        return {"reset": "soft", "v_reset": 0.0}
    return {"reset": "hard", "v_reset": voltage_reset}


def _learn(threshold: bool, reset: bool, voltage_reset: float | None, who: str) -> tuple[str, ...]:
    if reset and voltage_reset is None:
        # eve registers no reset parameter for a soft reset, so there is nothing to learn
        raise ValueError(f"{who}: learnable_reset=True needs a voltage_reset (a hard reset), got None")
    return (("v_th",) if threshold else ()) + (("v_reset",) if reset else ())


class _EveNode:
    """eve's fresh membrane (0, whatever ``voltage_reset`` is) on top of a native neuron."""

    # the generated signature of the native parent would hide eve's arguments
    __signature__ = None

    def _rest(self, params: Any) -> Tensor:
        return params.v_th * 0


class IFNode(_EveNode, IF):
    """eve-mli ``IFNode``: integrate-and-fire with eve's arguments and defaults.

    Built as ``spk.IF(v_th=voltage_threshold, v_reset=voltage_reset, reset="hard",
    detach_reset=True, surrogate=<surrogate_fn>, time_dependent=..., binary=...)``;
    ``voltage_reset=None`` is ``reset="soft"``. eve's reset never carries a gradient (it
    compares without a surrogate), hence ``detach_reset=True``.

    Math:
        ``h = v + x``; output ``H(h - v_th)`` (or ``h - v_th`` when ``binary=False``); ``v' = v_reset``
        where ``h >= v_th`` (hard) or ``v' = h - v_th`` (soft), else ``h``. The membrane starts at 0.

    Args:
        state: where eve reads the neuron count for ``neuron_wise``: the layer before
            (``nn.Linear``, ``nn.Conv2d``), eve's ``State``, an int, a shape tuple, or ``None``.
        voltage_threshold: threshold. voltage_reset: reset potential, or ``None`` for soft.
        learnable_threshold, learnable_reset: learn ``v_th`` / ``v_reset``.
        time_dependent: ``False`` detaches the membrane between steps.
        neuron_wise: one value per neuron (eve's default) instead of one shared value.
        surrogate_fn: eve's name (``"Sigmoid"``, ``"ATan"``, ``"SoftSign"``,
            ``"NonzeroSignLogAbs"``, ``"PiecewiseQuadratic"``) or a spikekit surrogate.
        binary: ``False`` outputs ``h - v_th`` instead of spikes.
        **kwargs: the surrogate's arguments (``alpha``), as eve.

    Returns:
        ``node(x_seq)`` returns the output sequence, shaped like the input.

    Shape:
        ``[T, B, *features]`` (one step ``[B, *features]`` inside ``spikekit.stepwise``).

    Example:
        >>> import torch
        >>> IFNode()(torch.full((3, 1, 1), 0.6)).flatten()
        tensor([0., 1., 0.])
    """

    def __init__(
        self,
        state: Any = None,
        voltage_threshold: float = 1.0,
        voltage_reset: float | None = 0.0,
        learnable_threshold: bool = False,
        learnable_reset: bool = False,
        time_dependent: bool = True,
        neuron_wise: bool = True,
        surrogate_fn: str | _sg.Surrogate = "Sigmoid",
        binary: bool = True,
        **kwargs: Any,
    ) -> None:
        who = type(self).__name__
        learn = _learn(learnable_threshold, learnable_reset, voltage_reset, who)
        super().__init__(
            v_th=voltage_threshold,
            detach_reset=True,
            surrogate=_surrogate(surrogate_fn, kwargs, who),
            time_dependent=bool(time_dependent),
            binary=bool(binary),
            shape=_shape(state, neuron_wise, bool(learn), who),
            learn=learn,
            **_reset(voltage_reset),
        )


class LIFNode(_EveNode, LIF):
    """eve-mli ``LIFNode``: leaky integrate-and-fire with eve's arguments and defaults.

    Built as ``spk.LIF(tau=tau, v_leak=voltage_reset, decay_input=True, ...)`` with the mapping
    of :class:`IFNode`: eve leaks towards ``voltage_reset`` (towards 0 with a soft reset).
    eve's default ``tau=1.0`` means no memory (``v' = x + v_reset - ...``, decay 0).

    Math:
        ``h = v + (x - (v - v_reset)) / tau``; output and reset as :class:`IFNode`.

    Args:
        tau: membrane time constant (>= 1; decay ``1 - 1/tau``), keyword only as in eve.
        learnable_reset: learns ``v_reset`` and ``v_leak``, two parameters starting equal (eve
            ties them into one).
        state, voltage_threshold, voltage_reset, learnable_threshold, time_dependent, neuron_wise, surrogate_fn, binary, **kwargs: see :class:`IFNode`.

    Returns:
        ``node(x_seq)`` returns the output sequence, shaped like the input.

    Shape:
        ``[T, B, *features]`` (one step ``[B, *features]`` inside ``spikekit.stepwise``).
    """

    def __init__(
        self,
        state: Any = None,
        voltage_threshold: float = 1.0,
        voltage_reset: float | None = 0.0,
        learnable_threshold: bool = False,
        learnable_reset: bool = False,
        time_dependent: bool = True,
        neuron_wise: bool = True,
        surrogate_fn: str | _sg.Surrogate = "Sigmoid",
        binary: bool = True,
        *,
        tau: float = 1.0,
        **kwargs: Any,
    ) -> None:
        who = type(self).__name__
        learn = _learn(learnable_threshold, learnable_reset, voltage_reset, who)
        if learnable_reset:
            learn = (*learn, "v_leak")  # eve's reset is also its leak potential
        reset = _reset(voltage_reset)
        super().__init__(
            tau=tau,
            v_th=voltage_threshold,
            v_leak=reset["v_reset"],
            decay_input=True,
            detach_reset=True,
            surrogate=_surrogate(surrogate_fn, kwargs, who),
            time_dependent=bool(time_dependent),
            binary=bool(binary),
            shape=_shape(state, neuron_wise, bool(learn), who),
            learn=learn,
            **reset,
        )
