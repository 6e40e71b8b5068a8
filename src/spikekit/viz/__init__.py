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
    "most_active",
    "raster_image",
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


def _integer_ticks(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(history: Sequence[Mapping[str, float]], path: str) -> str:
    """Loss and accuracy over epochs (train and test) from a trainer's history.

    Every epoch is a marker (a one-epoch run shows its values as labelled points, not an empty
    line) and the epoch axis has integer ticks only.

    Args:
        history: rows with ``epoch``, ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc``.
        path: PNG file to write.

    Returns:
        ``path``.
    """
    fig = _figure(9, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    ep = [int(r["epoch"]) for r in history]
    for split, marker in (("train", "o"), ("test", "s")):
        losses = [r[f"{split}_loss"] for r in history]
        accs = [100 * r[f"{split}_acc"] for r in history]
        ax1.plot(ep, losses, marker=marker, label=split)
        ax2.plot(ep, accs, marker=marker, label=split)
        if len(ep) == 1:  # one point per curve: print its value next to it
            ax1.annotate(f"{losses[0]:.3f}", (ep[0], losses[0]), textcoords="offset points", xytext=(6, 4))
            ax2.annotate(f"{accs[0]:.1f}%", (ep[0], accs[0]), textcoords="offset points", xytext=(6, 4))
    for ax in (ax1, ax2):
        _integer_ticks(ax.xaxis)
        if len(ep) == 1:
            ax.set_xlim(ep[0] - 1, ep[0] + 1)
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    return _save(fig, path)


def most_active(spikes: Tensor, max_neurons: int = 200) -> tuple[Tensor, str]:
    """The neurons of a raster worth showing: the most active ones, kept in index order.

    Args:
        spikes: ``[T, *features]`` of one sample (features are flattened).
        max_neurons: show at most this many.

    Returns:
        ``(indices, description)``: flat neuron indices (ascending) and a sentence saying what
        was selected (e.g. ``"the 200 most active of 2048 neurons (1500 silent)"``).

    Example:
        >>> idx, what = most_active(torch.tensor([[0.0, 1, 0, 1], [0, 1, 0, 0]]), max_neurons=2)
        >>> idx.tolist(), what
        ([1, 3], 'all 2 active of 4 neurons (2 silent)')
    """
    s = spikes.detach().float().reshape(spikes.shape[0], -1)
    counts = (s != 0).sum(0)
    n, active = s.shape[1], int((counts > 0).sum())
    silent = f"{n - active} silent"
    if n <= max_neurons:
        return torch.arange(n), f"all {n} neurons ({silent})"
    if active <= max_neurons:
        idx = torch.nonzero(counts > 0).flatten()
        return idx, f"all {active} active of {n} neurons ({silent})"
    # stable sort: ties keep the lower index, so the selection is reproducible
    idx = torch.sort(torch.argsort(counts, descending=True, stable=True)[:max_neurons]).values
    return idx, f"the {max_neurons} most active of {n} neurons ({silent})"


def plot_raster(spikes: Tensor, path: str, title: str = "spike raster", max_neurons: int = 200) -> str:
    """Spike raster of one sample, showing the most active neurons; the title says which.

    Args:
        spikes: ``[T, N]`` (or ``[T, *features]``, flattened) of 0/1 values.
        path: PNG file.
        title: first line of the axes title (the second states the neuron selection).
        max_neurons: plot at most this many neurons (the most active, see :func:`most_active`).

    Returns:
        ``path``.
    """
    # .cpu(): matplotlib takes numpy arrays, and a GPU run traces on the GPU.
    s = spikes.detach().float().cpu().reshape(spikes.shape[0], -1)
    idx, what = most_active(s, max_neurons)
    s = s[:, idx]
    t, row = torch.nonzero(s > 0, as_tuple=True)
    fig = _figure()
    ax = fig.subplots()
    ax.scatter(t.numpy(), row.numpy(), s=60, marker="|", linewidths=1.5, color="black")
    _integer_ticks(ax.xaxis)
    _integer_ticks(ax.yaxis)
    if s.shape[1] < 30:  # few rows: label them with the neurons' own indices
        ax.set_yticks(range(s.shape[1]), [str(int(i)) for i in idx])
    total = int((s > 0).sum())
    ax.set(
        xlabel="time step",
        ylabel="neuron" if len(idx) == spikes[0].numel() else "neuron (selected, in index order)",
        title=f"{title}\n{what}; {total} spikes" if total else f"{title}\n{what}; no spikes in this sample",
        xlim=(-0.5, s.shape[0] - 0.5),
        ylim=(-0.5, max(s.shape[1], 1) - 0.5),
    )
    return _save(fig, path)


def raster_image(spikes: Tensor, max_neurons: int = 128, min_width: int = 256) -> Tensor:
    """A raster as an image tensor (no matplotlib): rows are neurons, columns time steps.

    Used for TensorBoard (``add_image(..., dataformats="HW")``): spikes are white on black, the
    most active neurons (:func:`most_active`) in index order, each step widened to at least
    ``min_width`` pixels in all.

    Args:
        spikes: ``[T, *features]`` of one sample.
        max_neurons: at most this many rows.
        min_width: widen each time step so the image is at least this wide.

    Returns:
        ``[rows, T * k]`` uint8 tensor with values 0 or 255.
    """
    s = spikes.detach().float().cpu().reshape(spikes.shape[0], -1)
    idx, _ = most_active(s, max_neurons)
    if idx.numel() == 0:  # a silent layer: an all-black image of the first neurons, not an empty one
        idx = torch.arange(min(s.shape[1], max_neurons))
    img = (s[:, idx].T > 0).to(torch.uint8) * 255
    k = max(1, -(-min_width // max(img.shape[1], 1)))
    return img.repeat_interleave(k, dim=1).repeat_interleave(2, dim=0)


def plot_membrane(
    v: Tensor, path: str, title: str = "membrane potential", target: int | None = None, max_lines: int = 20
) -> str:
    """Membrane traces ``v`` ``[T, N]`` of a few neurons (one line each), integer time ticks.

    For a readout layer (one neuron per class) pass ``target``: the true class's trace is drawn
    thick and labelled ``(true)``, and the title names the true class and the prediction (the
    class with the largest mean membrane).

    Args:
        v: ``[T, N]`` (features flattened) membrane values of one sample.
        path: PNG file.
        title: axes title.
        target: the sample's true class (its neuron index), or ``None``.
        max_lines: draw at most this many neurons (the true class is always among them).

    Returns:
        ``path``.
    """
    v = v.detach().float().cpu().reshape(v.shape[0], -1)
    show = list(range(min(v.shape[1], max_lines)))
    if target is not None and target not in show and 0 <= target < v.shape[1]:
        show[-1] = target
    fig = _figure()
    ax = fig.subplots()
    steps = range(v.shape[0])
    for i in show:
        true = i == target
        ax.plot(
            steps,
            v[:, i].numpy(),
            marker=".",
            label=f"{i} (true)" if true else str(i),
            linewidth=3.0 if true else 1.0,
            color="black" if true else None,
            zorder=3 if true else 2,
        )
    if target is not None:
        pred = int(v.mean(0).argmax())
        verdict = "correct" if pred == target else "wrong"
        title = f"{title}\ntrue class {target} (thick), predicted {pred} ({verdict})"
    _integer_ticks(ax.xaxis)
    ax.set(xlabel="time step", ylabel="v", title=title)
    if len(show) <= 20:
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
    _integer_ticks(ax.xaxis)
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
    model: nn.Module,
    xs: Tensor,
    history: Sequence[Mapping[str, float]],
    out_dir: str,
    target: int | None = None,
) -> dict[str, str]:
    """Every plot a training run leaves: curves, rasters, output membranes, firing rates.

    ``raster_hidden`` shows the first spiking layer that spikes for this sample;
    ``raster_output`` the last spiking layer, or, when that one is silent for this sample,
    the last one that is not (the title says so). Both show the most active neurons and say
    how many of how many.

    Args:
        model: the trained model (``[T, B, ...] -> [T, B, C]``).
        xs: one encoded test sample ``[T, 1, ...]``.
        history: the trainer's per-epoch rows.
        out_dir: folder for the PNG files.
        target: the sample's true class, marked on the readout's membrane plot.

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
        out = tr["outputs"]
        active = [n for n in spiking if bool((out[n][:, 0] != 0).any())]
        hidden = active[0] if active else spiking[0]
        paths["raster_hidden"] = plot_raster(
            out[hidden][:, 0], os.path.join(out_dir, "raster_hidden.png"), f"spikes: layer {hidden}"
        )
        last = spiking[-1]
        title = f"spikes: last spiking layer {last}"
        if last not in active and active:
            title = f"spikes: layer {active[-1]} (the last spiking layer {last} is silent here)"
            last = active[-1]
        paths["raster_output"] = plot_raster(
            out[last][:, 0], os.path.join(out_dir, "raster_output.png"), title
        )
        rates = {n: float(out[n].float().mean()) for n in spiking}
        paths["firing_rates"] = plot_firing_rates(rates, os.path.join(out_dir, "firing_rates.png"))
    names = [n for n, _ in spk.neurons_of(model)]
    if names and names[-1] in tr["states"]:
        paths["membrane_output"] = plot_membrane(
            tr["states"][names[-1]].v[:, 0],
            os.path.join(out_dir, "membrane_output.png"),
            f"membrane: output layer {names[-1]}",
            target=target,
        )
    return paths
