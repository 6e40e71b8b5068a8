"""What every model shares: the common constructor arguments, the input check, neuron building."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from spikekit.neurons import Neuron, get_neuron

__all__ = ["SpikingModel", "make_neuron", "as_hw"]

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


class SpikingModel(nn.Module):
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
        image = xs.ndim == 5 and tuple(xs.shape[2:]) == (self.in_channels, *self.input_hw)
        flat = self.flat_input and xs.ndim == 3 and xs.shape[2] == self.in_features
        if not (image or flat):
            hint = ""
            if xs.ndim == 4:
                hint = " (a single image batch? add a time axis, e.g. xs.unsqueeze(0) or an encoder)"
            raise ValueError(f"{name}: expected input {self._expected()}, got {tuple(xs.shape)}{hint}")

    def forward(self, xs: Tensor) -> Tensor:
        """Per-step class outputs.

        Args:
            xs: ``[T, B, C, H, W]`` (or ``[B, T, ...]`` with ``batch_first``).

        Returns:
            ``[T, B, num_classes]`` (``[B, T, num_classes]`` with ``batch_first``).
        """
        self._check(xs)
        if self.batch_first:
            xs = xs.transpose(0, 1)
        out = self.forward_sequence(xs)
        return out.transpose(0, 1) if self.batch_first else out

    def forward_sequence(self, xs: Tensor) -> Tensor:
        """Time-first forward pass; implemented by subclasses."""
        raise NotImplementedError

    def _materialize(self) -> None:
        """Size lazy (``shape="infer"``) neurons with one dry run on a zero input."""
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
