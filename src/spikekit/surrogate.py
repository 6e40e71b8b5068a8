"""Surrogate gradients: small frozen value objects and the one spike autograd Function.

A surrogate describes a smooth, step-like function ``primitive(x)`` whose derivative
``grad(x)`` replaces the (zero almost everywhere) derivative of the Heaviside step
``H(x) = 1[x >= 0]`` in the backward pass. ``x`` is always ``h - v_th``: the charged
membrane minus the threshold.

Every surrogate is a frozen dataclass, so it is hashable (usable as a kernel cache key),
picklable, printable and comparable. Because it holds no tensors and no module state,
one instance can be shared by any number of neurons without surprises; to change the
sharpness, build a new one (``dataclasses.replace(s, alpha=8.0)``) or use
:class:`AlphaSchedule`.

Reference behaviour (each matches the named library's formula for the same ``alpha``):

==========================  =================================================
``Sigmoid(alpha)``          spikingjelly/eve-mli ``Sigmoid``, snntorch ``sigmoid(slope)``
``ATan(alpha)``             spikingjelly/eve-mli ``ATan``, snntorch ``atan``, snetx ``arc_tan``
``FastSigmoid(alpha)``      snntorch ``fast_sigmoid(slope)``; SuperSpike (norse ``super``,
                            whose 1.1.0 backward ignores alpha, i.e. ``alpha=1``)
``PiecewiseQuadratic``      spikingjelly/eve-mli ``PiecewiseQuadratic`` (gradient)
``SoftSign``                spikingjelly/eve-mli ``SoftSign``
``NonzeroSignLogAbs``       spikingjelly/eve-mli ``NonzeroSignLogAbs``
``Erf``                     spikingjelly ``Erf`` (eve-mli's backward has a bug, see ``Erf``)
``PiecewiseLeakyReLU``      spikingjelly ``PiecewiseLeakyReLU(w=1/alpha, c)``
``PiecewiseExp``            spikingjelly ``PiecewiseExp``
``Triangle``                norse ``triangle``
``StraightThrough``         snntorch ``straight_through_estimator``
``Boxcar``                  rectangular window of unit area
==========================  =================================================
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "Surrogate",
    "Sigmoid",
    "ATan",
    "FastSigmoid",
    "PiecewiseQuadratic",
    "SoftSign",
    "NonzeroSignLogAbs",
    "Erf",
    "PiecewiseLeakyReLU",
    "PiecewiseExp",
    "Triangle",
    "StraightThrough",
    "Boxcar",
    "spike",
    "get",
    "names",
    "AlphaSchedule",
]


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``surrogate.grad`` backward. The only spike Function in the package.

    Written in the ``setup_context`` form with a generated vmap rule, so ``torch.func``
    (``grad``, ``vjp``, ``vmap``) and the kernel generator's tracer can go through it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, surrogate: Surrogate) -> Tensor:  # type: ignore[override]
        return (x >= 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        x, surrogate = inputs
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x), None


def spike(x: Tensor, surrogate: Surrogate) -> Tensor:
    """Emit spikes ``H(x) = 1[x >= 0]`` with the surrogate's gradient in backward.

    Args:
        x: membrane minus threshold, any shape, floating point.
        surrogate: the surrogate whose ``grad`` is used in the backward pass.

    Returns:
        Tensor of zeros and ones with the dtype and shape of ``x``.

    Example:
        >>> import torch
        >>> spike(torch.tensor([-0.5, 0.0, 0.5]), ATan())
        tensor([0., 1., 1.])
    """
    return _SpikeFunction.apply(x, surrogate)


@dataclass(frozen=True)
class Surrogate:
    """Base class: a step-like ``primitive`` and its derivative ``grad``.

    Args:
        alpha: sharpness; larger means a narrower, taller gradient.

    Subclasses implement ``primitive`` and ``grad`` with ``grad == d primitive / dx``
    (tested for every subclass against autograd and finite differences).
    """

    alpha: float = 1.0
    aliases: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool):
            raise TypeError(
                f"{type(self).__name__}: alpha must be a real number, got {type(self.alpha).__name__}"
            )
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"{type(self).__name__}: alpha must be finite and > 0, got {self.alpha}")

    def primitive(self, x: Tensor) -> Tensor:
        """The smooth function whose derivative is :meth:`grad` (used when ``spiking=False``)."""
        raise NotImplementedError

    def grad(self, x: Tensor) -> Tensor:
        """The surrogate derivative ``d primitive / dx`` used in the backward pass."""
        raise NotImplementedError

    def __call__(self, x: Tensor, spiking: bool = True) -> Tensor:
        """Spikes with surrogate gradient (``spiking=True``) or the smooth primitive."""
        return spike(x, self) if spiking else self.primitive(x)


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """``primitive = sigmoid(alpha x)``; ``grad = alpha s (1 - s)``.

    spikingjelly's default is ``alpha=4``, eve-mli's ``alpha=1``, snntorch's ``slope=25``.
    """

    alpha: float = 4.0

    def primitive(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.alpha * x)

    def grad(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)


@dataclass(frozen=True)
class ATan(Surrogate):
    """``primitive = atan(pi/2 alpha x)/pi + 1/2``; ``grad = (alpha/2) / (1 + (pi/2 alpha x)^2)``."""

    alpha: float = 2.0
    aliases: ClassVar[tuple[str, ...]] = ("arctan",)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.atan((math.pi / 2) * self.alpha * x) / math.pi + 0.5

    def grad(self, x: Tensor) -> Tensor:
        return (self.alpha / 2) / (1 + ((math.pi / 2) * self.alpha * x) ** 2)


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """SuperSpike: ``grad = 1 / (alpha |x| + 1)^2``; ``primitive = x / (1 + alpha|x|) + 1/alpha``.

    Same gradient as snntorch ``fast_sigmoid(slope=alpha)`` (default 25) and the SuperSpike
    paper. norse's ``method="super"`` in 1.1.0 ignores its ``alpha`` and equals
    ``FastSigmoid(alpha=1)``. spikingjelly's ``SuperSpike(alpha)`` is ``alpha / (1 + |x|)^2``
    (alpha scales the height instead of the width): equal to ours only at ``alpha=1``.
    """

    alpha: float = 25.0
    aliases: ClassVar[tuple[str, ...]] = ("superspike", "super")

    def primitive(self, x: Tensor) -> Tensor:
        return x / (1 + self.alpha * x.abs()) + 1 / self.alpha

    def grad(self, x: Tensor) -> Tensor:
        return 1 / (self.alpha * x.abs() + 1) ** 2


@dataclass(frozen=True)
class PiecewiseQuadratic(Surrogate):
    """``grad = max(0, alpha - alpha^2 |x|)``, a triangle of unit area and half-width ``1/alpha``."""

    alpha: float = 1.0

    def primitive(self, x: Tensor) -> Tensor:
        a = self.alpha
        inner = -(a**2) / 2 * x * x.abs() + a * x + 0.5
        return torch.where(x > 1 / a, torch.ones_like(x), torch.where(x < -1 / a, torch.zeros_like(x), inner))

    def grad(self, x: Tensor) -> Tensor:
        return torch.clamp(self.alpha - self.alpha**2 * x.abs(), min=0)


@dataclass(frozen=True)
class SoftSign(Surrogate):
    """``primitive = (softsign(alpha x) + 1)/2``; ``grad = alpha / (2 (1 + |alpha x|)^2)``."""

    alpha: float = 2.0

    def primitive(self, x: Tensor) -> Tensor:
        ax = self.alpha * x
        return (ax / (1 + ax.abs()) + 1) / 2

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha / (2 * (1 + (self.alpha * x).abs()) ** 2)


@dataclass(frozen=True)
class NonzeroSignLogAbs(Surrogate):
    """``primitive = sgn(x) log(alpha |x| + 1)`` with ``sgn(0) = 1``; ``grad = 1 / (1/alpha + |x|)``.

    The primitive is unbounded (not a step); it is what spikingjelly and eve-mli use.
    """

    alpha: float = 1.0

    def primitive(self, x: Tensor) -> Tensor:
        sign = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
        return sign * torch.log(self.alpha * sign * x + 1)

    def grad(self, x: Tensor) -> Tensor:
        return 1 / (1 / self.alpha + x.abs())


@dataclass(frozen=True)
class Erf(Surrogate):
    """``primitive = erfc(-alpha x)/2``; ``grad = alpha/sqrt(pi) exp(-(alpha x)^2)``.

    Matches spikingjelly. eve-mli 0.1.0's ``erf`` backward multiplies by ``x`` instead of
    ``alpha`` (so its gradient has the wrong sign for ``x < 0``), which is why its tutorial
    reports 26.7 % accuracy with Erf; we implement the correct derivative.
    """

    alpha: float = 2.0

    def primitive(self, x: Tensor) -> Tensor:
        return torch.special.erfc(-self.alpha * x) / 2

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha / math.sqrt(math.pi) * torch.exp(-((self.alpha * x) ** 2))


@dataclass(frozen=True)
class PiecewiseLeakyReLU(Surrogate):
    """Linear ramp of half-width ``w = 1/alpha`` with leak ``c`` outside.

    ``grad = 1/(2w)`` for ``|x| < w`` else ``c`` (spikingjelly ``PiecewiseLeakyReLU(w, c)``;
    eve-mli's backward uses ``1/w`` inside, inconsistent with its own primitive).
    """

    alpha: float = 1.0
    c: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.c) and self.c >= 0):
            raise ValueError(f"PiecewiseLeakyReLU: c must be finite and >= 0, got {self.c}")

    def primitive(self, x: Tensor) -> Tensor:
        w, c = 1 / self.alpha, self.c
        return torch.where(x < -w, c * x + c * w, torch.where(x > w, c * x - c * w + 1, x / (2 * w) + 0.5))

    def grad(self, x: Tensor) -> Tensor:
        w = 1 / self.alpha
        return torch.where(x.abs() < w, torch.full_like(x, 1 / (2 * w)), torch.full_like(x, self.c))


@dataclass(frozen=True)
class PiecewiseExp(Surrogate):
    """``grad = (alpha/2) exp(-alpha |x|)`` (spikingjelly ``PiecewiseExp``)."""

    alpha: float = 1.0

    def primitive(self, x: Tensor) -> Tensor:
        e = torch.exp(-self.alpha * x.abs()) / 2
        return torch.where(x >= 0, 1 - e, e)

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha / 2 * torch.exp(-self.alpha * x.abs())


@dataclass(frozen=True)
class Triangle(Surrogate):
    """``grad = alpha max(0, 1 - |x|)``: peak ``alpha`` at threshold, width 1 (norse ``triangle``)."""

    alpha: float = 0.3
    aliases: ClassVar[tuple[str, ...]] = ("triangular",)

    def primitive(self, x: Tensor) -> Tensor:
        xc = x.clamp(-1, 1)
        return self.alpha * torch.where(xc < 0, (xc + 1) ** 2 / 2, 1 - (1 - xc) ** 2 / 2)

    def grad(self, x: Tensor) -> Tensor:
        return self.alpha * torch.clamp(1 - x.abs(), min=0)


@dataclass(frozen=True)
class StraightThrough(Surrogate):
    """Pass the gradient straight through, scaled by ``alpha``: ``grad = alpha``, ``primitive = alpha x``.

    snntorch's ``straight_through_estimator`` is ``alpha=1``.
    """

    alpha: float = 1.0
    aliases: ClassVar[tuple[str, ...]] = ("ste", "straightthroughestimator")

    def primitive(self, x: Tensor) -> Tensor:
        return self.alpha * x

    def grad(self, x: Tensor) -> Tensor:
        return torch.full_like(x, self.alpha)


@dataclass(frozen=True)
class Boxcar(Surrogate):
    """Rectangular window of unit area: ``grad = alpha`` for ``|x| < 1/(2 alpha)``, else 0."""

    alpha: float = 1.0
    aliases: ClassVar[tuple[str, ...]] = ("rectangular", "rect")

    def primitive(self, x: Tensor) -> Tensor:
        return torch.clamp(self.alpha * x + 0.5, 0, 1)

    def grad(self, x: Tensor) -> Tensor:
        return torch.where((self.alpha * x).abs() < 0.5, torch.full_like(x, self.alpha), torch.zeros_like(x))


_ALL: tuple[type[Surrogate], ...] = (
    Sigmoid,
    ATan,
    FastSigmoid,
    PiecewiseQuadratic,
    SoftSign,
    NonzeroSignLogAbs,
    Erf,
    PiecewiseLeakyReLU,
    PiecewiseExp,
    Triangle,
    StraightThrough,
    Boxcar,
)


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


_BY_NAME: dict[str, type[Surrogate]] = {}
for _cls in _ALL:
    for _n in (_cls.__name__, *_cls.aliases):
        _BY_NAME[_key(_n)] = _cls


def names() -> list[str]:
    """Class names of all built-in surrogates."""
    return [c.__name__ for c in _ALL]


def get(surrogate: str | Surrogate, **kwargs: float) -> Surrogate:
    """Resolve a surrogate from an instance or a (case/underscore-insensitive) name.

    Args:
        surrogate: an instance (returned as is when no kwargs) or a name such as
            ``"atan"``, ``"fast_sigmoid"``, ``"SuperSpike"``, ``"PiecewiseQuadratic"``.
        **kwargs: fields for the surrogate, e.g. ``alpha=4.0``.

    Returns:
        A :class:`Surrogate` instance.

    Raises:
        ValueError: the name is unknown (the message lists the known names).
        TypeError: neither a string nor a Surrogate was given.

    Example:
        >>> get("arctan", alpha=4.0)
        ATan(alpha=4.0)
    """
    if isinstance(surrogate, Surrogate):
        return dataclasses.replace(surrogate, **kwargs) if kwargs else surrogate
    if isinstance(surrogate, str):
        cls = _BY_NAME.get(_key(surrogate))
        if cls is None:
            raise ValueError(f"unknown surrogate {surrogate!r}; expected one of {', '.join(names())}")
        return cls(**kwargs)
    raise TypeError(
        f"surrogate must be a spikekit.surrogate.Surrogate or its name, got {type(surrogate).__name__}"
    )


@dataclass(frozen=True)
class AlphaSchedule:
    """Surrogate sharpness that grows over training (snetx ``EvolvedAlpha``, IM-Loss).

    ``alpha(epoch) = base * (1 + e_max * epoch / epochs)``. No class-level state: call
    :meth:`apply` with the model and the epoch you are in; it touches only that model.

    Args:
        base: alpha at epoch 0.
        epochs: total number of epochs (the epoch at which ``alpha = base (1 + e_max)``).
        e_max: relative growth at the last epoch.

    Example:
        >>> sched = AlphaSchedule(base=4.0, epochs=10)
        >>> sched.alpha(0), sched.alpha(5)
        (4.0, 6.0)
    """

    base: float
    epochs: int
    e_max: float = 1.0

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"AlphaSchedule: base must be > 0, got {self.base}")
        if not (isinstance(self.epochs, int) and self.epochs > 0):
            raise ValueError(f"AlphaSchedule: epochs must be a positive int, got {self.epochs!r}")

    def alpha(self, epoch: int) -> float:
        """The sharpness to use during ``epoch`` (0-based)."""
        if epoch < 0:
            raise ValueError(f"AlphaSchedule: epoch must be >= 0, got {epoch}")
        return self.base * (1 + self.e_max * epoch / self.epochs)

    def apply(self, model: nn.Module, epoch: int) -> float:
        """Give every neuron in ``model`` its surrogate with ``alpha(epoch)``; returns that alpha."""
        # Duck-typed (a neuron is a module with dataclass ``options`` holding a surrogate), so
        # this leaf module never imports the neurons.
        a = self.alpha(epoch)
        for m in model.modules():
            opts = getattr(m, "options", None)
            if dataclasses.is_dataclass(opts) and isinstance(getattr(opts, "surrogate", None), Surrogate):
                m.options = dataclasses.replace(
                    m.options, surrogate=dataclasses.replace(m.options.surrogate, alpha=a)
                )
        return a
