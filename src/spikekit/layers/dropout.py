"""Dropout with one mask per sequence, shared over all time steps."""

from __future__ import annotations

import torch
from torch import Tensor

from spikekit.layers._mode import StepAware

__all__ = ["SequenceDropout"]


class SequenceDropout(StepAware):
    """Drop the same units at every time step of a sequence (spikingjelly's ``layer.Dropout``).

    Per-step masks (``nn.Dropout`` on ``[T, B, ...]``) let a unit's information leak through
    the steps where it happens to be kept; one mask per sequence drops the unit for the whole
    sequence. Kept values are scaled by ``1 / (1 - p)``; identity in eval mode.

    Args:
        p: drop probability in ``[0, 1)``.
        batch_first: inputs are ``[B, T, *features]``.

    Shape:
        ``[T, B, *features]`` -> same; the mask is ``[1, B, *features]``. Inside
        :func:`spikekit.stepwise` ``[B, *features]`` -> same, one mask drawn at the first step
        and kept until the block ends or :func:`spikekit.reset`.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> ys = SequenceDropout(0.5)(torch.ones(3, 1, 4))
        >>> bool((ys == ys[0]).all())
        True
    """

    def __init__(self, p: float = 0.5, *, batch_first: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"SequenceDropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.batch_first = bool(batch_first)

    def forward(self, xs: Tensor) -> Tensor:
        if self._stream is not None:
            if not self.training or self.p == 0.0:
                return xs
            mask = self._stream.state
            if mask is None or mask.shape != xs.shape:
                if mask is not None:
                    raise ValueError(
                        f"SequenceDropout: step shape {tuple(xs.shape)} differs from the mask "
                        f"{tuple(mask.shape)} drawn at the first step; call spikekit.reset(model) between sequences"
                    )
                keep = 1.0 - self.p
                mask = torch.empty_like(xs).bernoulli_(keep) / keep
                self._stream.state = mask
            return xs * mask
        if xs.ndim < 3:
            layout = "[B, T, *features]" if self.batch_first else "[T, B, *features]"
            raise ValueError(
                f"SequenceDropout: expected {layout}, got shape {tuple(xs.shape)}; for one time step "
                f"[B, *features] call the model inside `with spikekit.stepwise(model): ...`"
            )
        if not self.training or self.p == 0.0:
            return xs
        t_dim = 1 if self.batch_first else 0
        mask_shape = list(xs.shape)
        mask_shape[t_dim] = 1
        keep = 1.0 - self.p
        mask = torch.empty(mask_shape, dtype=xs.dtype, device=xs.device).bernoulli_(keep) / keep
        return xs * mask

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", batch_first=True" if self.batch_first else "")
