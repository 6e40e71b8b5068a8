"""Plots are real PNG files that matplotlib reads back; plotting stays a lazy import."""

from __future__ import annotations

import os
import subprocess
import sys

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
