"""Apply stateless layers to sequences by folding time into the batch.

Convolutions, pooling and normalisation have no notion of time: running them on ``T * B``
samples at once is the same as a Python loop over the ``T`` steps, only faster (one large
kernel call instead of ``T`` small ones). This is spikingjelly's ``SeqToANNContainer`` and
snetx's ``Tosnn``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from spikekit.layers._mode import StepAware, sequence_hint, slice_hint

__all__ = ["TimeDistributed", "Flatten", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "feature_ndim"]


def feature_ndim(module: nn.Module) -> int | None:
    """Number of per-sample feature dims ``module`` expects (``3`` for ``Conv2d``), if known.

    Used to recognise a single time step ``[B, *features]`` (inside :func:`spikekit.stepwise`)
    from a sequence ``[T, B, *features]``; ``None`` when the module does not say.
    """
    if isinstance(module, nn.Sequential):
        for m in module:
            n = feature_ndim(m)
            if n is not None:
                return n
        return None
    if isinstance(module, nn.modules.conv._ConvNd):
        return len(module.kernel_size) + 1
    if isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
        return 3
    if isinstance(module, (nn.BatchNorm3d, nn.InstanceNorm3d)):
        return 4
    name = type(module).__name__
    if "Pool" in name and name[-2:] in ("1d", "2d", "3d"):
        return int(name[-2]) + 1
    return None


class TimeDistributed(StepAware):
    """Apply ``module`` (or several, in sequence) to every time step by folding T into the batch.

    The modules must treat samples independently (convolution, pooling, linear, dropout,
    batch norm whose statistics are then taken over ``T * B`` samples, as in tdBN).

    Args:
        *modules: one module, or several applied in order (wrapped in ``nn.Sequential``).
        batch_first: inputs are ``[B, T, *features]``; only error messages depend on it, because
            folding two leading dims gives the same result in either order.

    Shape:
        input ``[T, B, *in_features]`` -> output ``[T, B, *out_features]``; inside
        :func:`spikekit.stepwise` one step ``[B, *in_features]`` -> ``[B, *out_features]`` (the
        module runs on it as is). If the wrapped module declares its sample rank (convolutions,
        pooling, 2d/3d batch norm), a step given in sequence mode, or a sequence given inside
        ``stepwise``, raises with the fix instead of folding the batch into time.

    Example:
        >>> import torch
        >>> conv = TimeDistributed(torch.nn.Conv2d(1, 4, 3, padding=1))
        >>> conv(torch.rand(5, 2, 1, 8, 8)).shape
        torch.Size([5, 2, 4, 8, 8])
    """

    def __init__(self, *modules: nn.Module, batch_first: bool = False) -> None:
        super().__init__()
        if not modules:
            raise ValueError("TimeDistributed needs at least one module")
        for m in modules:
            if not isinstance(m, nn.Module):
                raise TypeError(f"TimeDistributed expects nn.Module arguments, got {type(m).__name__}")
        self.module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)
        self.batch_first = bool(batch_first)
        self._sample_ndim = feature_ndim(self.module)

    def forward(self, xs: Tensor) -> Tensor:
        """Run the module on ``xs`` with time folded into the batch.

        Args:
            xs: ``[T, B, *features]`` (``[B, T, *features]`` with ``batch_first``).

        Returns:
            The module's output per step, with the two leading dims restored.
        """
        if not isinstance(xs, Tensor):
            raise TypeError(f"TimeDistributed: expected a torch.Tensor, got {type(xs).__name__}")
        who = f"TimeDistributed({type(self.module).__name__})"
        if self.streaming:  # one time step [B, *features]: nothing to fold
            if self._sample_ndim is not None and xs.ndim != self._sample_ndim + 1:
                raise ValueError(sequence_hint(who, tuple(xs.shape)))
            return self.module(xs)
        if self._sample_ndim is not None and xs.ndim == self._sample_ndim + 1:
            raise ValueError(slice_hint(who, tuple(xs.shape)))
        if xs.ndim < 3 or (self._sample_ndim is not None and xs.ndim != self._sample_ndim + 2):
            layout = "[B, T, *features]" if self.batch_first else "[T, B, *features]"
            want = "" if self._sample_ndim is None else f" with {self._sample_ndim} feature dims"
            raise ValueError(
                f"TimeDistributed({type(self.module).__name__}): expected {layout}{want}, "
                f"got shape {tuple(xs.shape)}"
            )
        lead = xs.shape[:2]
        return self.module(xs.flatten(0, 1)).unflatten(0, lead)

    def extra_repr(self) -> str:
        return "batch_first=True" if self.batch_first else ""

    def nir_wiring(self) -> tuple[dict[str, nn.Module], list[tuple[str, str]]]:
        """NIR wiring: the wrapped module alone (NIR nodes act on one time step, as here).

        :func:`spikekit.to_nir` converts each child with its own mapping and joins them by
        these edges (``"input"`` and ``"output"`` are this module's own ends).

        Returns:
            ``(children, edges)``: child modules by name, and directed edges between the names.

        Shape:
            Unchanged: NIR nodes see one sample ``[*features]``; time and batch are implicit.

        Example:
            >>> TimeDistributed(nn.Conv2d(1, 2, 3)).nir_wiring()[1]
            [('input', 'module'), ('module', 'output')]
        """
        return {"module": self.module}, [("input", "module"), ("module", "output")]


class Flatten(StepAware):
    """Flatten the features of every sample at every step, in either mode.

    ``nn.Flatten()`` would merge the batch into the features of a sequence; this layer keeps the
    leading dims: time and batch in sequence mode, batch inside :func:`spikekit.stepwise`.

    Shape:
        ``[T, B, *f]`` -> ``[T, B, prod(f)]`` (``[B, T, ...]`` likewise); inside ``stepwise``
        ``[B, *f]`` -> ``[B, prod(f)]``.

    Example:
        >>> import torch
        >>> Flatten()(torch.zeros(4, 2, 3, 5, 5)).shape
        torch.Size([4, 2, 75])
    """

    def forward(self, xs: Tensor) -> Tensor:
        lead = 1 if self.streaming else 2
        if not isinstance(xs, Tensor) or xs.ndim < lead + 1:
            got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
            layout = "[B, *features] (one step, inside stepwise)" if lead == 1 else "[T, B, *features]"
            fix = (
                ""
                if lead == 1
                else "; for one time step [B, *features] call the model inside `with spikekit.stepwise(model): ...`"
            )
            raise ValueError(f"Flatten: expected {layout}, got {got}{fix}")
        return xs.flatten(lead)

    # ------------------------------------------------------------------ NIR exchange
    nir_nodes: ClassVar[tuple[str, ...]] = ("Flatten",)

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        """This layer as a ``nir.Flatten`` of every feature dim of a sample.

        Args:
            dt: unused (a stateless layer). shape: the per-sample input shape ``[*features]``.

        Returns:
            ``nir.Flatten(input_type=shape, start_dim=0, end_dim=-1)`` (NIR dims exclude the batch).

        Shape:
            ``[*features]`` -> ``[prod(features)]``.

        Example:
            >>> Flatten().to_nir(1.0, (2, 3, 4)).output_type["output"].tolist()
            [24]
        """
        import nir
        import numpy as np

        return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)

    @classmethod
    def from_nir(cls, node: Any, dt: float, **options: Any) -> nn.Module:
        """The module for a ``nir.Flatten`` node: this layer for a full flatten, else ``nn.Flatten``.

        Args:
            node: the ``nir.Flatten`` node (dims of a sample, without the batch). dt: unused.
            **options: unused.

        Returns:
            :class:`Flatten`, or ``nn.Flatten(start_dim + 1, end_dim + 1)`` over ``[B, *features]``.

        Example:
            >>> import nir
            >>> Flatten.from_nir(nir.Flatten(input_type=None, start_dim=0, end_dim=-1), dt=1.0)
            Flatten()
        """
        start, end = int(node.start_dim), int(node.end_dim)
        if start == 0 and end == -1:
            return cls()
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)


class MaxPool2d(TimeDistributed):
    """Spike max-pooling over ``[T, B, C, H, W]`` (``nn.MaxPool2d`` per step; a pooled spike is
    1 iff any spike in the window is 1).

    Example:
        >>> import torch
        >>> MaxPool2d(2)(torch.rand(3, 2, 4, 8, 8)).shape
        torch.Size([3, 2, 4, 4, 4])
    """

    def __init__(
        self, kernel_size: int, stride: int | None = None, padding: int = 0, *, batch_first: bool = False
    ) -> None:
        super().__init__(nn.MaxPool2d(kernel_size, stride, padding), batch_first=batch_first)


class AvgPool2d(TimeDistributed):
    """Average pooling over ``[T, B, C, H, W]`` (``nn.AvgPool2d`` per step)."""

    def __init__(
        self, kernel_size: int, stride: int | None = None, padding: int = 0, *, batch_first: bool = False
    ) -> None:
        super().__init__(nn.AvgPool2d(kernel_size, stride, padding), batch_first=batch_first)


class AdaptiveAvgPool2d(TimeDistributed):
    """Adaptive average pooling over ``[T, B, C, H, W]`` to ``output_size`` per step."""

    def __init__(self, output_size: int | tuple[int, int], *, batch_first: bool = False) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(output_size), batch_first=batch_first)
