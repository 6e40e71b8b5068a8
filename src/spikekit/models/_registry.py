"""Name -> model constructor, the one table that ``create_model`` and the model tests read.

Like timm's registry: each family file decorates its constructors with
:func:`register_model`, and the tests iterate :func:`list_models` so a new model gets the
shape, layout, gradient and ANN-mode tests for free.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model.

    Attributes:
        name: registry name.
        fn: constructor taking the common keyword arguments (see :func:`create_model`).
        input_kind: ``"image"`` (needs ``[T, B, C, H, W]``) or ``"features"`` (also takes
            ``[T, B, features]``).
        reference: the network it reproduces (for documentation).
    """

    name: str
    fn: Callable[..., nn.Module]
    input_kind: str
    reference: str


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str, *, input_kind: str = "image", reference: str = ""
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model constructor under ``name``."""
    if input_kind not in ("image", "features"):
        raise ValueError(f"input_kind must be 'image' or 'features', got {input_kind!r}")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelInfo(name, fn, input_kind, reference)
        return fn

    return deco


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model (clear error listing names if unknown)."""
    _load_families()
    info = _MODELS.get(name)
    if info is None:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return info


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Every model takes the same keyword arguments, plus its own (see its constructor):
    ``num_classes=10``, ``in_channels``, ``input_size`` (int or ``(H, W)``; each model's
    default fits its reference data: 1 channel and 28 px for the MNIST tutorials, 3 channels
    and 32 px for VGG/ResNet, 8 px for ``digits_convnet``),
    ``neuron="lif"`` (a registered name or a :class:`~spikekit.neurons.Neuron` class),
    ``neuron_options=None`` (keyword arguments for every hidden neuron, overriding the
    model's defaults), ``batch_first=False``. The VGG and ResNet families also take
    ``norm_layer`` (``"bn"``, ``"tdbn"``, ``"bntt"`` or ``None``).

    Args:
        name: a name from :func:`list_models`.
        **kwargs: forwarded to the constructor.

    Returns:
        The model: ``[T, B, C, H, W]`` in (``[T, B, features]`` also for fully connected
        nets), per-step outputs ``[T, B, num_classes]`` out, for any ``T``.

    Example:
        >>> import torch
        >>> net = create_model("digits_convnet", input_size=8)
        >>> net(torch.rand(4, 2, 1, 8, 8)).shape
        torch.Size([4, 2, 10])
    """
    return model_info(name).fn(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern`` (e.g. ``"*vgg*"``)."""
    _load_families()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def _load_families() -> None:
    # The family modules register themselves on import; importing the package imports them,
    # this only covers someone importing this module directly.
    import spikekit.models  # noqa: F401
