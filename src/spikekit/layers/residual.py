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

    def nir_wiring(self) -> tuple[dict[str, nn.Module], list[tuple[str, str]]]:
        """NIR wiring of an ``ADD`` block: both branches end in ``output``, where NIR sums them.

        :func:`spikekit.to_nir` converts each child with its own mapping and joins them by
        these edges (``"input"`` and ``"output"`` are this module's own ends).

        NIR sums the edges that enter a node; ``AND`` / ``IAND`` multiply spikes, which
        no NIR node expresses, so they raise.

        Returns:
            ``(children, edges)``: child modules by name, and directed edges between the names.

        Shape:
            Unchanged.

        Raises:
            NotImplementedError: for ``connect="AND"`` or ``"IAND"``.

        Example:
            >>> Residual(nn.Identity()).nir_wiring()[1]
            [('input', 'body'), ('body', 'output'), ('input', 'output')]
        """
        if self.connect != "ADD":
            raise NotImplementedError(
                f"Residual(connect={self.connect!r}) has no NIR mapping: NIR sums the edges entering a "
                f"node, so only connect='ADD' is expressible"
            )
        children: dict[str, nn.Module] = {"body": self.body}
        edges = [("input", "body"), ("body", "output")]
        if self.shortcut is None:
            edges.append(("input", "output"))
        else:
            children["shortcut"] = self.shortcut
            edges += [("input", "shortcut"), ("shortcut", "output")]
        return children, edges
