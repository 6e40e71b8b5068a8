"""Plots of training runs and spiking activity, written straight to PNG files.

matplotlib is imported inside each function, and only its object-oriented ``Figure`` API is
used (no ``pyplot``), so importing this module or plotting never changes the user's backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "plot_curves",
    "plot_raster",
    "plot_membrane",
    "plot_firing_rates",
    "plot_sweep",
    "trace_sample",
    "run_plots",
]


def _figure(w: float = 6.4, h: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_curves(history: Sequence[Mapping[str, float]], path: str) -> str:
    """Loss and accuracy over epochs (train and test) from a trainer's history.

    Args:
        history: rows with ``epoch``, ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc``.
        path: PNG file to write.

    Returns:
        ``path``.
    """
    fig = _figure(9, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    ep = [r["epoch"] for r in history]
    for split in ("train", "test"):
        ax1.plot(ep, [r[f"{split}_loss"] for r in history], marker="o", label=split)
        ax2.plot(ep, [100 * r[f"{split}_acc"] for r in history], marker="o", label=split)
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax1.legend()
    ax2.legend()
    return _save(fig, path)


def plot_raster(spikes: Tensor, path: str, title: str = "spike raster", max_neurons: int = 200) -> str:
    """Spike raster of one sample.

    Args:
        spikes: ``[T, N]`` (features flattened) of 0/1 values.
        path: PNG file. title: axes title. max_neurons: plot at most this many neurons.

    Returns:
        ``path``.
    """
    # .cpu(): matplotlib takes numpy arrays, and a GPU run traces on the GPU.
    s = spikes.detach().float().cpu().reshape(spikes.shape[0], -1)[:, :max_neurons]
    t, n = torch.nonzero(s > 0, as_tuple=True)
    fig = _figure()
    ax = fig.subplots()
    ax.scatter(t.numpy(), n.numpy(), s=60, marker="|", linewidths=1.5, color="black")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(
        xlabel="time step",
        ylabel="neuron",
        title=title,
        xlim=(-0.5, s.shape[0] - 0.5),
        ylim=(-0.5, s.shape[1] - 0.5),
    )
    return _save(fig, path)


def plot_membrane(v: Tensor, path: str, title: str = "membrane potential") -> str:
    """Membrane traces ``v`` ``[T, N]`` of a few neurons (one line each)."""
    v = v.detach().float().cpu().reshape(v.shape[0], -1)
    fig = _figure()
    ax = fig.subplots()
    for i in range(min(v.shape[1], 20)):
        ax.plot(range(v.shape[0]), v[:, i].numpy(), marker=".", label=str(i))
    ax.set(xlabel="time step", ylabel="v", title=title)
    if v.shape[1] <= 20:
        ax.legend(fontsize="small", ncols=2)
    return _save(fig, path)


def plot_firing_rates(rates: Mapping[str, float], path: str) -> str:
    """Bar chart of mean firing rate (spikes per neuron per step) of each spiking layer."""
    fig = _figure()
    ax = fig.subplots()
    names = list(rates)
    ax.bar(range(len(names)), [rates[k] for k in names])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set(ylabel="spikes / neuron / step", title="firing rate per layer")
    return _save(fig, path)


def plot_sweep(
    curves: Mapping[str, Sequence[float]], path: str, title: str = "test accuracy over epochs"
) -> str:
    """Accuracy-over-epochs lines, one per configuration (eve-mli's comparison plot)."""
    fig = _figure(8, 5)
    ax = fig.subplots()
    import matplotlib

    markers = "os^vD<>px*h"
    colours = matplotlib.colormaps["tab20"]  # 20 distinct colours: a sweep has ~17 lines
    for i, (name, accs) in enumerate(curves.items()):
        ax.plot(
            range(1, len(accs) + 1),
            [100 * a for a in accs],
            marker=markers[i % len(markers)],
            color=colours(i % 20),
            label=name,
        )
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize="small", ncols=2)
    return _save(fig, path)


@torch.no_grad()
def trace_sample(model: nn.Module, xs: Tensor) -> dict[str, Any]:
    """Run ``model`` on ``xs`` ``[T, B, ...]`` and collect every neuron's outputs and state traces.

    Both come from :func:`spikekit.record`, which every neuron reports to however it is
    called: a forward hook would miss a neuron a wrapper steps directly (the one inside
    ``Recurrent`` is called through ``neuron.step``, never ``neuron(...)``).

    Args:
        model: the model (run in eval mode, restored afterwards).
        xs: its input.

    Returns:
        ``{"outputs": {name: [T, B, ...]}, "states": Recording, "y": model output}``; outputs
        and states are time-first whatever the neuron's ``batch_first``.
    """
    import spikekit as spk

    was = model.training
    model.eval()
    try:
        with spk.record(model) as rec:
            y = model(xs)
    finally:
        model.train(was)
    return {"outputs": dict(rec.spikes), "states": rec, "y": y}


def run_plots(
    model: nn.Module, xs: Tensor, history: Sequence[Mapping[str, float]], out_dir: str
) -> dict[str, str]:
    """Every plot a training run leaves: curves, rasters, output membranes, firing rates.

    Args:
        model: the trained model (``[T, B, ...] -> [T, B, C]``).
        xs: one encoded test sample ``[T, 1, ...]``.
        history: the trainer's per-epoch rows.
        out_dir: folder for the PNG files.

    Returns:
        ``{plot name: path}``.
    """
    import spikekit as spk

    paths = {}
    if history:
        paths["curves"] = plot_curves(history, os.path.join(out_dir, "curves.png"))
    tr = trace_sample(model, xs)
    spiking = [n for n, m in spk.neurons_of(model) if m.options.surrogate is not None and n in tr["outputs"]]
    if spiking:
        first, last = spiking[0], spiking[-1]
        paths["raster_hidden"] = plot_raster(
            tr["outputs"][first][:, 0],
            os.path.join(out_dir, "raster_hidden.png"),
            f"spikes: hidden layer {first}",
        )
        paths["raster_output"] = plot_raster(
            tr["outputs"][last][:, 0],
            os.path.join(out_dir, "raster_output.png"),
            f"spikes: last spiking layer {last}",
        )
        rates = {n: float(tr["outputs"][n].float().mean()) for n in spiking}
        paths["firing_rates"] = plot_firing_rates(rates, os.path.join(out_dir, "firing_rates.png"))
    names = [n for n, _ in spk.neurons_of(model)]
    if names and names[-1] in tr["states"]:
        paths["membrane_output"] = plot_membrane(
            tr["states"][names[-1]].v[:, 0],
            os.path.join(out_dir, "membrane_output.png"),
            f"membrane: output layer {names[-1]}",
        )
    return paths
