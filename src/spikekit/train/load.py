"""Rebuild a trained model from its checkpoint alone: :func:`load_model`.

A ``spikekit train`` checkpoint carries, next to the weights, a *model description*
(``ckpt["model_spec"]``, plain data): the registered model's name and keyword arguments, the
neuron and its options, the surrogate, the encoder and its settings, ``T``, the loss and
decoder, the precision and the dataset. Training builds its classifier from that description
(:func:`build_classifier`), and :func:`load_model` builds the same one from the checkpoint, so
the two cannot drift apart. Each neuron's ``state_dict`` also describes the neuron (see
:meth:`spikekit.neurons.Neuron.describe`), so a model rebuilt with other options fails to load
with the difference named instead of running with the wrong dynamics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spikekit.train.checkpoint import load_checkpoint
from spikekit.train.trainer import Classifier, get_encoder

__all__ = [
    "SPEC_FORMAT",
    "ENCODERS",
    "DECODERS",
    "model_spec",
    "plain_data",
    "build_classifier",
    "load_classifier",
    "load_model",
]

SPEC_FORMAT = "spikekit-model/1"

# What a model description may name (the tutorials' choices, by their libraries' names).
ENCODERS = ("direct", "poisson", "constant_current_lif", "none")
DECODERS = ("rate", "max_membrane")


class _Unrecordable(TypeError):
    """A configuration value that is not plain data (so it cannot go into a checkpoint)."""


def plain_data(value: Any, where: str = "config") -> Any:
    """``value`` as the plain data a ``weights_only`` checkpoint holds (tuples become lists).

    Args:
        value: strings, numbers, bools, ``None``, and lists, tuples and string-keyed dicts of them.
        where: the value's name, for the error.

    Returns:
        The same data with tuples turned into lists.

    Raises:
        TypeError: something else (a tensor, a surrogate object, a function), named by its path.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: plain_data(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise _Unrecordable(f"{where} is a {type(value).__name__}, not plain data")


def model_spec(
    cfg: dict[str, Any],
    *,
    num_classes: int,
    in_channels: int,
    input_size: Sequence[int],
    temporal: bool = False,
) -> dict[str, Any]:
    """The description of a run's classifier that :func:`build_classifier` rebuilds it from.

    Args:
        cfg: a resolved ``spikekit train`` configuration (``model``, ``neuron``,
            ``neuron_options``, ``model_options``, ``surrogate``, ``surrogate_alpha``,
            ``encoder``, ``resize``, ``normalize``, ``T``, ``loss``, ``decoder``, ``precision``,
            ``dataset``).
        num_classes: classes of the dataset.
        in_channels: channels (or features) of one sample.
        input_size: the network's input size ``(H, W)`` (after any resize) or ``(F,)``.
        temporal: the data is already ``[T, B, ...]`` (event frames): no encoder.

    Returns:
        Plain data: ``{"format", "model", "model_kwargs", "neuron", "neuron_options",
        "surrogate", "surrogate_alpha", "encoder", "resize", "normalize", "T", "loss",
        "decoder", "precision", "dataset"}``. When a value cannot be stored as plain data
        (e.g. a surrogate object in ``neuron_options`` from a Python caller), ``{"format",
        "unrecordable": why}`` instead: the run trains, and :func:`load_model` says why it
        cannot rebuild it.
    """
    normalize = cfg.get("normalize")
    spec = {
        "format": SPEC_FORMAT,
        "model": cfg["model"],
        "model_kwargs": {
            "num_classes": int(num_classes),
            "in_channels": int(in_channels),
            "input_size": [int(s) for s in input_size],
            **(cfg.get("model_options") or {}),
        },
        "neuron": cfg["neuron"],
        "neuron_options": dict(cfg.get("neuron_options") or {}),
        "surrogate": cfg.get("surrogate"),
        "surrogate_alpha": cfg.get("surrogate_alpha"),
        "encoder": "none" if temporal else cfg.get("encoder", "direct"),
        "resize": cfg.get("resize"),
        "normalize": None if normalize is None else [float(normalize[0]), float(normalize[1])],
        "T": cfg["T"],
        "loss": cfg.get("loss", "ce"),
        "decoder": cfg.get("decoder") or "rate",
        "precision": cfg.get("precision", "fp32"),
        "dataset": cfg.get("dataset"),
    }
    try:
        return plain_data(spec, "model_spec")
    except _Unrecordable as e:
        return {"format": SPEC_FORMAT, "unrecordable": str(e)}


class Encode:
    """A run's encoder as ``(x [B, ...], T) -> [T, B, ...]``, after the tutorial's transform.

    Upsampling to the network's input size (a preset's fallback to the digits) and
    ``(x - mean) / std`` normalisation. A plain class: picklable, no state.

    Args:
        name: ``"direct"``, ``"poisson"``, ``"constant_current_lif"`` or ``"none"``.
        resize: side to upsample square images to, or ``None``.
        normalize: ``(mean, std)`` or ``None``.
    """

    def __init__(self, name: str, resize: int | None, normalize: Sequence[float] | None = None) -> None:
        self.name, self.resize = name, resize
        self.normalize = None if normalize is None else (float(normalize[0]), float(normalize[1]))

    def __call__(self, x: Tensor, T: int) -> Tensor:
        """Encode ``x`` ``[B, ...]`` into ``[T, B, ...]``.

        Args:
            x: a batch of samples.
            T: time steps.

        Returns:
            The encoded sequence.
        """
        import torch.nn.functional as F

        from spikekit import encoding

        if self.resize is not None:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if self.normalize is not None:
            x = (x - self.normalize[0]) / self.normalize[1]
        if self.name == "constant_current_lif":
            return encoding.constant_current_lif(x, T)
        return get_encoder(self.name)(x, T)

    def __repr__(self) -> str:
        notes = [f"upsampled to {self.resize}x{self.resize}"] if self.resize else []
        notes += (
            [f"normalised by mean {self.normalize[0]}, std {self.normalize[1]}"] if self.normalize else []
        )
        return self.name + (f" ({', '.join(notes)})" if notes else "")


class MaxMembraneClassifier(Classifier):
    """norse's decoder: the class whose readout membrane peaks highest over time."""

    def metrics(self, outs: Tensor, y: Tensor) -> dict[str, Any]:
        """Loss, accuracy by ``argmax_c max_t outs`` and count.

        Args:
            outs: readout ``[T, B, C]``.
            y: labels ``[B]``.

        Returns:
            ``{"loss", "acc", "n"}``.
        """
        info = super().metrics(outs, y)
        info["acc"] = (outs.detach().float().max(0).values.argmax(-1) == y).float().mean()
        return info


def criterion(name: str) -> Any:
    """The loss by name; ``None`` (for ``"ce"``) is the trainer's CE of the time-mean output.

    Args:
        name: ``"ce"``, ``"mse_count"``, ``"mse_rate"`` or ``"ce_max_membrane"``.

    Returns:
        A loss ``(outs [T, B, C], y) -> loss``, or ``None``.
    """
    from spikekit import losses

    if name == "mse_count":
        return losses.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)  # snntorch quickstart
    if name == "mse_rate":
        return losses.mse_rate_loss()  # spikingjelly: MSE(rate, one-hot)
    if name == "ce_max_membrane":
        return losses.ce_max_membrane_loss()  # norse: nll(log_softmax(max_t v))
    return None


def build_classifier(spec: dict[str, Any]) -> Classifier:
    """Build the (untrained) classifier a model description describes.

    Args:
        spec: a dict from :func:`model_spec`.

    Returns:
        A :class:`~spikekit.train.Classifier` in training mode: ``.model`` from the model
        registry, its encoder, ``T`` and loss.

    Raises:
        ValueError: the description is unusable (unknown format, an unrecordable value, an
            unknown decoder) or the model cannot be built from it (the reason included).
    """
    import spikekit as spk
    from spikekit import models

    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        what = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"unknown model description {what!r} (expected {SPEC_FORMAT!r})")
    if "unrecordable" in spec:
        raise ValueError(f"the run's model could not be described in its checkpoint: {spec['unrecordable']}")
    kwargs = dict(spec["model_kwargs"])
    kwargs["input_size"] = tuple(kwargs["input_size"])
    try:
        net = models.create_model(
            spec["model"], neuron=spec["neuron"], neuron_options=spec["neuron_options"] or None, **kwargs
        )
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise ValueError(f"cannot build model {spec['model']!r}: {str(e).splitlines()[0]}") from None
    net.train()
    if spec["surrogate"] is not None:
        kw = {} if spec["surrogate_alpha"] is None else {"alpha": spec["surrogate_alpha"]}
        spk.set_surrogate(net, spec["surrogate"], **kw)
    encoder: Any = (
        "none" if spec["encoder"] == "none" else Encode(spec["encoder"], spec["resize"], spec["normalize"])
    )
    decoder = spec.get("decoder") or "rate"
    if decoder not in DECODERS:
        raise ValueError(f"decoder: expected one of {', '.join(DECODERS)}, got {decoder!r}")
    cls = Classifier if decoder == "rate" else MaxMembraneClassifier
    return cls(net, int(spec["T"]), encoder, criterion(spec["loss"]))


def load_classifier(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Classifier:
    """Rebuild a trained classifier (model with its weights, encoder, ``T``, loss) from a checkpoint.

    Args:
        path: a ``last.pt`` / ``best.pt`` written by ``spikekit train``.
        device: where to put it.

    Returns:
        The :class:`~spikekit.train.Classifier`, in eval mode: ``clf(clf.encode(x))`` gives
        ``[T, B, C]`` for a raw batch ``x``.

    Raises:
        CheckpointError: the file is missing, truncated, or not plain data.
        ValueError: not a training checkpoint, no model description in it (written before
            spikekit recorded one, or by a :class:`~spikekit.train.Trainer` given none), or
            the rebuilt model does not fit the saved weights (each difference named).
    """
    path = os.fspath(path)
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != "spikekit-train/1":
        raise ValueError(f"{path!r} is not a spikekit training checkpoint (format {ckpt.get('format')!r})")
    spec = ckpt.get("model_spec")
    if spec is None:
        raise ValueError(
            f"checkpoint {path!r} has no model description (it was written by an older spikekit, or by "
            f"a Trainer given no model_spec); build the model yourself and load ckpt['model'] into it "
            f"with load_state_dict"
        )
    try:
        clf = build_classifier(spec)
    except ValueError as e:
        raise ValueError(f"checkpoint {path!r}: {e}") from None
    try:
        clf.model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        detail = "; ".join(line.strip() for line in str(e).splitlines()[1:] if line.strip()) or str(e)
        raise ValueError(
            f"checkpoint {path!r}: the model its description builds ({spec['model']}, neuron "
            f"{spec['neuron']}, neuron_options {spec['neuron_options']}) does not fit its weights: {detail}"
        ) from None
    return clf.to(device).eval()


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model trained by ``spikekit train`` from its checkpoint alone, weights included.

    Nothing has to be restated: the registered model, its size, the neuron and its options and
    the surrogate come from the checkpoint's model description; each neuron then checks the
    options it was saved with.

    Args:
        path: a ``last.pt`` / ``best.pt`` written by ``spikekit train``.
        device: where to put the model.

    Returns:
        The network ``[T, B, *input] -> [T, B, num_classes]``, in eval mode. Its encoder and
        ``T`` come with :func:`load_classifier`.

    Raises:
        CheckpointError: the file is missing, truncated, or not plain data.
        ValueError: no usable model description, or it does not fit the weights (see
            :func:`load_classifier`).

    Example:
        >>> import spikekit as spk  # doctest: +SKIP
        >>> net = spk.load_model("runs/train/best.pt")  # doctest: +SKIP
    """
    return load_classifier(path, device).model
