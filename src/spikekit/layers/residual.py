"""Residual connections for spiking networks, with SEW connect functions."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["Residual", "CONNECT"]


def _add(a: Tensor, s: Tensor) -> Tensor:
    return a + s


def _and(a: Tensor, s: Tensor) -> Tensor:
    return a * s


def _iand(a: Tensor, s: Tensor) -> Tensor:
    return (1.0 - a) * s


CONNECT: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"ADD": _add, "AND": _and, "IAND": _iand}


class Residual(nn.Module):
    """``connect(body(x), shortcut(x))``: a residual block over sequences.

    The connect functions of SEW-ResNet (Fang et al., NeurIPS 2021), for spike tensors
    ``A = body(x)`` and ``S = shortcut(x)``: ``ADD``: ``A + S``; ``AND``: ``A * S``;
    ``IAND``: ``(1 - A) * S``. A classic spiking ResNet block is
    ``nn.Sequential(Residual(body, shortcut, "ADD"), neuron)`` (add, then fire); a SEW block
    puts the neuron at the end of ``body`` (and of ``shortcut``) and connects spikes.

    Args:
        body: the residual branch.
        shortcut: the skip branch (``None``: identity).
        connect: ``"ADD"``, ``"AND"`` or ``"IAND"`` (case-insensitive).

    Shape:
        Anything both branches accept and map to equal shapes, e.g. ``[T, B, C, H, W]``.

    Example:
        >>> import torch
        >>> blk = Residual(torch.nn.Identity(), connect="IAND")
        >>> blk(torch.tensor([0.0, 1.0])).tolist()
        [0.0, 0.0]
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None, connect: str = "ADD") -> None:
        super().__init__()
        key = str(connect).upper()
        if key not in CONNECT:
            raise ValueError(f"Residual: connect must be one of {', '.join(CONNECT)}, got {connect!r}")
        self.body = body
        self.shortcut = shortcut
        self.connect = key

    def forward(self, xs: Tensor) -> Tensor:
        a = self.body(xs)
        s = xs if self.shortcut is None else self.shortcut(xs)
        if a.shape != s.shape:
            raise ValueError(
                f"Residual: body output {tuple(a.shape)} and shortcut output {tuple(s.shape)} differ; "
                f"give a shortcut that matches (e.g. 1x1 conv with stride)"
            )
        return CONNECT[self.connect](a, s)

    def extra_repr(self) -> str:
        return f"connect={self.connect!r}"
