"""What every model shares: the common constructor arguments, the input check, neuron building."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from spikekit.layers._mode import StepAware
from spikekit.neurons import Neuron, get_neuron

__all__ = ["NORM_LAYERS", "SpikingModel", "as_hw", "make_neuron", "make_norm", "warm_start_batchnorm"]

# The batch norms a conv model can put after each conv (``norm_layer=``); ``None`` for none.
NORM_LAYERS = ("bn", "tdbn", "bntt")

# Pairs of alternative constructor arguments: a user value for one drops the default of the other.
_ALTERNATIVES = {"tau": "beta", "beta": "tau", "tau_syn": "beta_syn", "beta_syn": "tau_syn"}


def as_hw(input_size: int | tuple[int, int]) -> tuple[int, int]:
    """``input_size`` as ``(H, W)``; raises on non-positive sizes."""
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(hw) != 2 or not all(isinstance(s, int) and s > 0 for s in hw):
        raise ValueError(f"input_size must be a positive int or (H, W), got {input_size!r}")
    return hw  # type: ignore[return-value]


def make_neuron(
    neuron: str | type[Neuron],
    neuron_options: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    **fixed: Any,
) -> Neuron:
    """Build one neuron: the model's ``defaults``, then ``fixed`` choices, then the user's options.

    Defaults the chosen neuron does not accept are dropped (a model's ``tau`` default means
    nothing for ``IF``), so one model definition works with every neuron. User options are
    passed as given, so a misspelt option fails loudly.

    Args:
        neuron: registered name (``"lif"``, ``"if"``, ...) or a neuron class.
        neuron_options: the user's keyword arguments (win over everything else).
        defaults: the model's reference values (e.g. snntorch's ``beta=0.5``).
        **fixed: structural choices of the model (e.g. ``shape="infer"``).

    Returns:
        A fresh neuron module.
    """
    cls = get_neuron(neuron)
    accepted = inspect.signature(cls).parameters
    user = dict(neuron_options or {})
    kwargs = {k: v for k, v in (defaults or {}).items() if k in accepted}
    kwargs.update({k: v for k, v in fixed.items() if k in accepted})
    for k in user:
        alt = _ALTERNATIVES.get(k)
        if alt is not None:
            kwargs.pop(alt, None)
    kwargs.update(user)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise TypeError(
            f"{cls.__name__} does not accept option(s) {unknown}; "
            f"it takes: {', '.join(k for k in accepted if k != 'self')}"
        )
    return cls(**kwargs)


def check_norm_layer(norm_layer: str | None) -> str | None:
    """Normalise a ``norm_layer`` choice (case, ``"none"`` -> ``None``); raises on unknown names."""
    if norm_layer is None or (isinstance(norm_layer, str) and norm_layer.lower() == "none"):
        return None
    if not isinstance(norm_layer, str) or norm_layer.lower() not in NORM_LAYERS:
        raise ValueError(f"norm_layer must be one of {', '.join(NORM_LAYERS)} or None, got {norm_layer!r}")
    return norm_layer.lower()


def make_norm(
    norm_layer: str | None, channels: int, *, num_steps: int, alpha: float = 1.0, v_th: float = 1.0
) -> nn.Module | None:
    """One batch norm over ``[T, B, C, H, W]`` (``None`` when ``norm_layer`` is ``None``).

    * ``"bn"``: ``nn.BatchNorm2d`` over the time-folded batch (statistics over ``T * B``; held
      as ``.module`` so parameter names match torchvision's).
    * ``"tdbn"``: :class:`~spikekit.layers.TdBatchNorm2d` (the same statistics, scaled by
      ``alpha * v_th``; tdBN uses ``alpha = 1/sqrt(2)`` before a residual addition).
    * ``"bntt"``: :class:`~spikekit.layers.BNTT2d`, one BN per step, for ``T <= num_steps``.
    """
    from spikekit.layers import BNTT2d, TdBatchNorm2d, TimeDistributed

    kind = check_norm_layer(norm_layer)
    if kind is None:
        return None
    if kind == "bn":
        return TimeDistributed(nn.BatchNorm2d(channels))
    if kind == "tdbn":
        return TdBatchNorm2d(channels, alpha=alpha, v_th=v_th)
    return BNTT2d(channels, num_steps)


def neuron_threshold(neuron_options: Mapping[str, Any] | None) -> float:
    """The user's ``v_th`` when it is a plain number (tdBN scales to it), else 1."""
    v = (neuron_options or {}).get("v_th", 1.0)
    return float(v) if isinstance(v, (int, float)) else 1.0


def warm_start_batchnorm(model: nn.Module) -> nn.Module:
    """Make every batch norm's running estimates an unbiased average from the first batch on.

    Why: torch's estimates start at mean 0 / variance 1 and move by ``momentum`` (0.1) per
    training batch, so after ``n`` batches they still hold ``0.9**n`` of that start. A short run
    on a small set (the embedded digits: 12 batches of 128 per epoch) ends with
    ``0.9**24 = 8 %`` of variance 1 in an estimate whose true value is ~0.02: evaluation then
    divides by a standard deviation 2-3x too large, no neuron reaches threshold, and the test
    accuracy is chance (10 %) while the training accuracy is 93 %. Time folding is not the
    cause (statistics over ``T * B`` equal those over ``B`` for repeated input).

    The fix blends batch ``n`` in with ``max(momentum, 1/n)``: a cumulative average for the
    first ``1/momentum`` batches (no trace of the start values), torch's EMA after. A forward
    pre-hook, so parameter names, ``state_dict`` and torchvision parity are unchanged.

    Args:
        model: any module; its ``BatchNorm*d`` submodules with running statistics and a
            momentum are changed in place (tdBN and BNTT hold ``nn.BatchNorm2d`` too).

    Returns:
        ``model``.
    """
    for m in model.modules():
        if (
            isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats
            and m.momentum is not None
            and not hasattr(m, "_base_momentum")
        ):
            m._base_momentum = float(m.momentum)  # type: ignore[assignment]
            m.register_forward_pre_hook(_warm_momentum_hook)
    return model


def _warm_momentum_hook(bn: nn.Module, args: Any) -> None:
    # Under torch.compile the hook steps aside (a momentum read from num_batches_tracked is
    # data-dependent there): the usual moving average runs.
    if not bn.training or torch.compiler.is_compiling():
        return
    # A Python count, read from the buffer once (a resumed run continues it): reading the
    # buffer every batch would wait for the GPU at every batch norm.
    n = getattr(bn, "_warm_seen", None)
    if n is None:
        n = int(bn.num_batches_tracked)
    n += 1  # torch adds one to num_batches_tracked, then blends this batch in with ``momentum``
    bn._warm_seen = n
    bn.momentum = max(bn._base_momentum, 1.0 / n)


class SpikingModel(StepAware):
    """Base class of the zoo: checks the input, handles ``batch_first``, returns ``[T, B, classes]``.

    Subclasses build their layers in ``__init__`` and implement :meth:`forward_sequence` on
    time-first input. Models whose neurons size themselves lazily (``shape="infer"``) call
    :meth:`_materialize` at the end of ``__init__``, so their parameters exist before an
    optimiser is built.

    Args:
        num_classes: outputs per step. in_channels: input channels. input_size: ``H`` or ``(H, W)``.
        batch_first: take ``[B, T, ...]`` and return ``[B, T, num_classes]``.
        flat_input: also accept ``[T, B, C * H * W]`` (fully connected nets).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        input_size: int | tuple[int, int],
        batch_first: bool,
        flat_input: bool = False,
    ) -> None:
        super().__init__()
        for k, v in (("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{k} must be a positive int, got {v!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_hw = as_hw(input_size)
        self.batch_first = bool(batch_first)
        self.flat_input = flat_input

    @property
    def in_features(self) -> int:
        """``C * H * W``."""
        return self.in_channels * self.input_hw[0] * self.input_hw[1]

    def _expected(self) -> str:
        t, b = ("B", "T") if self.batch_first else ("T", "B")
        c, (h, w) = self.in_channels, self.input_hw
        out = f"[{t}, {b}, {c}, {h}, {w}]"
        if self.flat_input:
            out += f" or [{t}, {b}, {self.in_features}]"
        return out

    def _check(self, xs: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(xs, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(xs).__name__}")
        if not xs.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {xs.dtype}")
        lead = 1 if self.streaming else 2  # inside spikekit.stepwise a call is one step [B, ...]
        image = xs.ndim == lead + 3 and tuple(xs.shape[lead:]) == (self.in_channels, *self.input_hw)
        flat = self.flat_input and xs.ndim == lead + 1 and xs.shape[lead] == self.in_features
        if not (image or flat):
            if self.streaming:
                c, (h, w) = self.in_channels, self.input_hw
                want = f"[B, {c}, {h}, {w}]" + (f" or [B, {self.in_features}]" if self.flat_input else "")
                raise ValueError(
                    f"{name}: inside spikekit.stepwise one call is one time step {want}, got "
                    f"{tuple(xs.shape)}; call it once per step with xs[t]"
                )
            hint = ""
            if xs.ndim == 4:
                hint = (
                    " (one time step? run it inside `with spikekit.stepwise(model): ...`; a single image "
                    "batch? add a time axis, e.g. xs.unsqueeze(0) or an encoder)"
                )
            raise ValueError(f"{name}: expected input {self._expected()}, got {tuple(xs.shape)}{hint}")

    def forward(self, xs: Tensor) -> Tensor:
        """Per-step class outputs.

        Args:
            xs: ``[T, B, C, H, W]`` (or ``[B, T, ...]`` with ``batch_first``).

        Returns:
            ``[T, B, num_classes]`` (``[B, T, num_classes]`` with ``batch_first``).
        """
        self._check(xs)
        if self.streaming:  # one step [B, ...]: every layer of the body is in stepwise mode too
            return self.forward_sequence(xs)
        if self.batch_first:
            xs = xs.transpose(0, 1)
        out = self.forward_sequence(xs)
        return out.transpose(0, 1) if self.batch_first else out

    def forward_sequence(self, xs: Tensor) -> Tensor:
        """Time-first forward pass; implemented by subclasses."""
        raise NotImplementedError

    def _materialize(self) -> None:
        """Size lazy (``shape="infer"``) neurons with one dry run on a zero input, and make the
        batch norms' running estimates unbiased (:func:`warm_start_batchnorm`). Every model
        calls this at the end of ``__init__``, so both apply to the whole zoo."""
        warm_start_batchnorm(self)
        lazy = any(nn.parameter.is_lazy(t) for t in (*self.parameters(), *self.buffers()))
        if not lazy:
            return
        was_training = self.training
        self.eval()  # keep batch-norm running statistics untouched by the dry run
        try:
            with torch.no_grad():
                xs = torch.zeros(1, 1, self.in_channels, *self.input_hw)
                self.forward_sequence(xs)
        finally:
            self.train(was_training)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, in_channels={self.in_channels}, input_size={self.input_hw}"
            + (", batch_first=True" if self.batch_first else "")
        )


class SequentialModel(SpikingModel):
    """A :class:`SpikingModel` whose body is one ``nn.Sequential`` over time-first tensors."""

    def __init__(self, body: nn.Sequential, **common: Any) -> None:
        super().__init__(**common)
        self.body = body
        self._materialize()

    def forward_sequence(self, xs: Tensor) -> Tensor:
        return self.body(xs)
