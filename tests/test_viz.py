"""Plots are real PNG files that matplotlib reads back; plotting stays a lazy import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import spikekit as spk
from spikekit import viz

PNG = b"\x89PNG\r\n\x1a\n"


def _valid_png(path: str) -> tuple[int, ...]:
    import matplotlib.image as mpimg

    with open(path, "rb") as f:
        assert f.read(8) == PNG
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0  # not a blank canvas
    return img.shape


def test_run_plots_writes_every_plot(tmp_path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 12),
        spk.LIF(tau=2.0),
        nn.Linear(12, 4),
        spk.LIF(tau=2.0),
        nn.Linear(4, 3),
        spk.LI(tau=2.0, tau_syn=None),
    )
    xs = torch.rand(10, 1, 6) * 3
    hist = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "test_loss": 1.2 / e,
            "train_acc": 0.5 + e / 10,
            "test_acc": 0.4 + e / 10,
        }
        for e in (1, 2, 3)
    ]
    paths = viz.run_plots(net, xs, hist, str(tmp_path))
    assert set(paths) == {"curves", "raster_hidden", "raster_output", "firing_rates", "membrane_output"}
    for p in paths.values():
        assert os.path.dirname(p) == str(tmp_path)
        _valid_png(p)
    assert net.training  # plotting put the model back in its mode


def test_trace_sample_collects_spikes_and_membranes() -> None:
    net = nn.Sequential(nn.Linear(2, 3), spk.LIF(tau=2.0), nn.Linear(3, 2), spk.LI(tau=2.0, tau_syn=None))
    tr = viz.trace_sample(net, torch.ones(5, 1, 2))
    assert tr["outputs"]["1"].shape == (5, 1, 3) and set(tr["outputs"]["1"].unique().tolist()) <= {0.0, 1.0}
    assert tr["states"]["3"].v.shape == (5, 1, 2)
    assert torch.equal(tr["states"]["3"].v, tr["y"])  # LI readout outputs its membrane


def test_sweep_plot(tmp_path) -> None:
    p = viz.plot_sweep({"IF": [0.5, 0.8], "LIF": [0.6, 0.9]}, str(tmp_path / "s.png"))
    _valid_png(p)


def test_imports_stay_light() -> None:
    # torch itself may import tqdm, so only count what our packages add on top of torch.
    code = (
        "import sys, torch\n"
        "before = set(sys.modules)\n"
        "import spikekit.viz, spikekit.train, spikekit.data, spikekit.train.cli\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new & {'matplotlib', 'torchvision', 'tonic', 'sklearn', 'tensorboard', 'tqdm', 'h5py'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _capture(monkeypatch) -> list:
    """Keep each figure a plot function saves, to check its axes."""
    figs: list = []
    real = viz._save

    def save(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(viz, "_save", save)
    return figs


def test_most_active_selection_is_stated() -> None:
    s = torch.zeros(4, 300)
    s[:, 250] = 1
    s[0, 7] = 1
    s[1:3, 100] = 1
    idx, what = viz.most_active(s, max_neurons=2)
    assert idx.tolist() == [100, 250] and what == "the 2 most active of 300 neurons (297 silent)"
    idx, what = viz.most_active(s, max_neurons=10)
    assert idx.tolist() == [7, 100, 250] and what == "all 3 active of 300 neurons (297 silent)"
    img = viz.raster_image(s, max_neurons=10, min_width=16)
    assert img.dtype == torch.uint8 and img.shape == (6, 16) and int(img[4, 0]) == 255  # 2 px rows
    # A silent layer wider than max_neurons still gives an image (TensorBoard refuses empty ones).
    silent = viz.raster_image(torch.zeros(4, 300), max_neurons=10, min_width=16)
    assert silent.shape == (20, 16) and int(silent.max()) == 0


def test_plots_have_integer_ticks_selection_and_true_class(tmp_path, monkeypatch) -> None:
    figs = _capture(monkeypatch)
    spikes = torch.zeros(7, 2048)
    spikes[::2, 1500:1510] = 1
    viz.plot_raster(spikes, str(tmp_path / "r.png"), "hidden")
    (ax,) = figs[-1].axes
    assert "all 10 active of 2048 neurons (2038 silent)" in ax.get_title()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert ax.get_yticklabels()[0].get_text() == "1500"  # rows named by neuron index
    viz.plot_membrane(torch.randn(7, 3).cumsum(0), str(tmp_path / "m.png"), "readout", target=2)
    (ax,) = figs[-1].axes
    assert "true class 2" in ax.get_title() and all(float(t).is_integer() for t in ax.get_xticks())
    assert [line.get_label() for line in ax.get_lines()] == ["0", "1", "2 (true)"]
    p = viz.plot_curves(
        [{"epoch": 1, "train_loss": 0.9, "test_loss": 1.1, "train_acc": 0.6, "test_acc": 0.5}],
        str(tmp_path / "c.png"),
    )
    _valid_png(p)
    for ax in figs[-1].axes:
        assert all(float(t).is_integer() for t in ax.get_xticks())
        assert all(line.get_marker() not in (None, "None", "") for line in ax.get_lines())
        assert len(ax.texts) == 2  # a one-epoch run prints its values


def test_run_plots_names_a_silent_output_layer(tmp_path, monkeypatch) -> None:
    figs = _capture(monkeypatch)
    net = nn.Sequential(nn.Linear(3, 5), spk.LIF(tau=2.0), nn.Linear(5, 4), spk.LIF(tau=2.0))
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.fill_(-1.0)  # the last spiking layer never fires
    viz.run_plots(net, torch.full((6, 1, 3), 5.0), [], str(tmp_path), target=1)
    titles = [f.axes[0].get_title() for f in figs]
    assert any("layer 1 (the last spiking layer 3 is silent here)" in t for t in titles)
    assert any("true class 1" in t for t in titles)


def test_tensorboard_activity_hparams_and_purge_on_resume(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from spikekit.train.logger import MetricsLogger

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), spk.LIF(tau=2.0), nn.Linear(6, 2), spk.LI(tau=2.0, tau_syn=None))
    xs = torch.rand(5, 4, 3) * 3

    def rows(n: int, loss: float) -> list[dict[str, float]]:
        return [{"epoch": e, "train_loss": loss / e, "test_acc": 0.5} for e in range(1, n + 1)]

    first = MetricsLogger(str(tmp_path), hparams={"lr": 0.1, "model": "mlp", "sizes": [1, 2], "none": None})
    first.watch(net, xs)
    for n in (1, 2, 3):
        first.log(rows(n, 1.0))
    first.close()
    # Resumed from epoch 1 (e.g. best.pt) after the first attempt had logged 3 epochs.
    again = MetricsLogger(str(tmp_path), start_epoch=1)
    again.watch(net, xs)
    for n in (2, 3):
        again.log(rows(n, 10.0))
    assert again.log_activity(net, xs, 1) == {}  # an earlier attempt's epoch: skipped
    again.close()

    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    loss = acc.Scalars("train_loss")
    assert [e.step for e in loss] == [1, 2, 3]  # one point per epoch, the resumed run's after 1
    assert [round(e.value, 4) for e in loss] == [1.0, 5.0, round(10 / 3, 4)]
    tags = acc.Tags()
    assert [e.step for e in acc.Scalars("activity/rate/1")] == [1, 2, 3]
    assert {"activity/rate_per_neuron/1", "activity/membrane/1", "activity/membrane/3"} <= set(
        tags["histograms"]
    )
    assert "activity/raster/1" in tags["images"] and [e.step for e in acc.Images("activity/raster/1")] == [
        1,
        2,
        3,
    ]
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
