"""Batch normalisation over time: threshold-dependent BN (tdBN) and per-step BN (BNTT)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikekit.layers._mode import StepAware, sequence_hint, slice_hint

__all__ = ["TdBatchNorm2d", "BNTT2d"]


def _check_seq(xs: Tensor, who: str, channels: int, streaming: bool = False) -> None:
    """``[T, B, C, H, W]`` in sequence mode, ``[B, C, H, W]`` inside ``stepwise``."""
    ndim = 4 if streaming else 5
    want = f"[B, {channels}, H, W] (one step, inside stepwise)" if streaming else f"[T, B, {channels}, H, W]"
    if isinstance(xs, Tensor) and xs.ndim == 9 - ndim and xs.shape[-3] == channels:
        hint = sequence_hint if streaming else slice_hint
        raise ValueError(hint(who, tuple(xs.shape)).replace(": ", f": expected {want}; ", 1))
    if not isinstance(xs, Tensor) or xs.ndim != ndim or xs.shape[-3] != channels:
        got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
        raise ValueError(f"{who}: expected {want}, got {got}")


class TdBatchNorm2d(nn.BatchNorm2d, StepAware):
    """Threshold-dependent batch norm (tdBN, Zheng et al., AAAI 2021).

    Statistics are taken per channel over time, batch and space jointly, and the normalised
    value is scaled by ``alpha * v_th`` so pre-activations match the neurons' threshold.

    Math:
        ``y = gamma * alpha * v_th * (x - mean) / sqrt(var + eps) + beta`` with mean and
        (biased) var over ``(T, B, H, W)`` in training, running estimates in eval.
        Computed as ``alpha v_th (BN(x) - beta) + beta`` so torch's BN does the statistics.

    Args:
        num_features: channels ``C``.
        alpha: scale factor (the paper uses ``1`` and ``1/sqrt(2)`` before residual additions).
        v_th: threshold of the neurons that follow.
        eps, momentum, affine, track_running_stats: as :class:`torch.nn.BatchNorm2d`.

    Shape:
        ``[T, B, C, H, W]`` -> same; inside :func:`spikekit.stepwise` ``[B, C, H, W]`` -> same
        (in training mode the statistics are then over that step's batch only; in eval mode
        both forms give the same result).

    Example:
        >>> import torch
        >>> bn = TdBatchNorm2d(3, alpha=0.5)
        >>> y = bn(torch.randn(4, 2, 3, 5, 5))
        >>> round(float(y.detach().std(dim=(0, 1, 3, 4), unbiased=False)[0]), 3)
        0.5
    """

    def __init__(
        self,
        num_features: int,
        *,
        alpha: float = 1.0,
        v_th: float = 1.0,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.alpha = float(alpha)
        self.v_th = float(v_th)

    def forward(self, xs: Tensor) -> Tensor:
        _check_seq(xs, "TdBatchNorm2d", self.num_features, self.streaming)
        if self.streaming:
            return self._scaled(super().forward(xs))
        lead = xs.shape[:2]
        return self._scaled(super().forward(xs.flatten(0, 1))).unflatten(0, lead)

    def _scaled(self, y: Tensor) -> Tensor:
        scale = self.alpha * self.v_th
        if self.bias is None:
            return scale * y
        b = self.bias[:, None, None]
        return scale * (y - b) + b

    def extra_repr(self) -> str:
        return super().extra_repr() + f", alpha={self.alpha}, v_th={self.v_th}"


class BNTT2d(StepAware):
    """Batch norm through time (BNTT, Kim & Panda 2021): a separate BN for every time step.

    Step ``t`` is normalised with statistics over ``(B, H, W)`` of that step only, and has its
    own affine parameters and running estimates.

    Args:
        num_features: channels ``C``.
        num_steps: the number of BNs; inputs may have at most this many steps.
        eps, momentum, affine: as :class:`torch.nn.BatchNorm2d`.

    Shape:
        ``[T, B, C, H, W]`` with ``T <= num_steps`` -> same. Inside :func:`spikekit.stepwise`
        ``[B, C, H, W]`` -> same, the ``t``-th call since the block began (or since
        :func:`spikekit.reset`) using the ``t``-th BN.

    Example:
        >>> import torch
        >>> BNTT2d(3, num_steps=4)(torch.randn(4, 2, 3, 5, 5)).shape
        torch.Size([4, 2, 3, 5, 5])
    """

    def __init__(
        self,
        num_features: int,
        num_steps: int,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(num_steps, int) or num_steps <= 0:
            raise ValueError(f"BNTT2d: num_steps must be a positive int, got {num_steps!r}")
        self.num_features = num_features
        self.bns = nn.ModuleList(
            nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=affine) for _ in range(num_steps)
        )

    def forward(self, xs: Tensor) -> Tensor:
        _check_seq(xs, "BNTT2d", self.num_features, self.streaming)
        if self._stream is not None:
            t = self._stream.state or 0  # the step index is this layer's carried state
            if t >= len(self.bns):
                raise ValueError(
                    f"BNTT2d: step {t + 1} inside stepwise but the layer has {len(self.bns)} per-step "
                    f"BNs; call spikekit.reset(model) between sequences, or build it with num_steps >= T"
                )
            self._stream.state = t + 1
            return self.bns[t](xs)
        if xs.shape[0] > len(self.bns):
            raise ValueError(
                f"BNTT2d: input has T={xs.shape[0]} steps but the layer has {len(self.bns)} per-step BNs "
                f"(num_steps={len(self.bns)}); build it with num_steps >= T"
            )

        return torch.stack([bn(x) for bn, x in zip(self.bns, xs.unbind(0), strict=False)])
