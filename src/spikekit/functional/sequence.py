"""The one check-and-normalise step for sequences entering the functional API."""

from __future__ import annotations

from torch import Tensor

__all__ = ["time_first"]


def time_first(xs: Tensor, who: str, batch_first: bool = False) -> Tensor:
    """Validate a sequence and return it time-first ``[T, B, *features]`` as floating point.

    Args:
        xs: ``[T, B, *features]`` (or ``[B, T, *features]`` with ``batch_first``).
        who: the caller's name, used in error messages.
        batch_first: whether ``xs`` is batch-first.

    Returns:
        The time-first view (integer/bool input converted to float).

    Raises:
        TypeError: ``xs`` is not a tensor.
        ValueError: fewer than 2 dims, or no time steps.
    """
    layout = "[B, T, *features]" if batch_first else "[T, B, *features]"
    if not isinstance(xs, Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor {layout}, got {type(xs).__name__}")
    if xs.ndim < 2:
        raise ValueError(
            f"{who}: expected a sequence {layout} (at least 2 dims), got shape {tuple(xs.shape)}"
        )
    if batch_first:
        xs = xs.transpose(0, 1)
    if xs.shape[0] == 0:
        raise ValueError(f"{who}: the sequence has no time steps (T = 0), shape {tuple(xs.shape)}")
    return xs if xs.is_floating_point() else xs.float()
