"""Readout layers: a linear map into leaky integrators whose membrane is the output."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from spikekit.neurons import LI

__all__ = ["LILinear"]


class LILinear(nn.Module):
    """``nn.Linear`` followed by a leaky integrator (norse's ``LILinearCell``).

    Args:
        in_features, out_features, bias: as :class:`torch.nn.Linear`.
        **li_options: keyword arguments for :class:`~spikekit.neurons.LI` (``tau``, ``tau_syn``,
            ``dt``, ``decay_input``, ``batch_first``...).

    Shape:
        ``[T, B, in_features]`` -> membrane ``[T, B, out_features]``.

    Example:
        >>> import torch
        >>> LILinear(8, 3)(torch.rand(5, 2, 8)).shape
        torch.Size([5, 2, 3])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **li_options: Any) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.li = LI(**li_options)

    def forward(self, xs: Tensor) -> Tensor:
        return self.li(self.linear(xs))

    def nir_wiring(self) -> tuple[dict[str, nn.Module], list[tuple[str, str]]]:
        """NIR wiring: the linear map, then the leaky integrator.

        :func:`spikekit.to_nir` converts each child with its own mapping and joins them by
        these edges (``"input"`` and ``"output"`` are this module's own ends).

        Returns:
            ``(children, edges)``: child modules by name, and directed edges between the names.

        Shape:
            ``[in_features]`` -> ``[out_features]``.

        Example:
            >>> list(LILinear(4, 2).nir_wiring()[0])
            ['linear', 'li']
        """
        return {"linear": self.linear, "li": self.li}, [
            ("input", "linear"),
            ("linear", "li"),
            ("li", "output"),
        ]
