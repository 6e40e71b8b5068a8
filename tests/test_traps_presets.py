"""Issue 13, items 6 and 7: each trap found on main has a test here that fails on that main.

* Poisson's norse form (``f_max``) takes any real input and draws norse's spikes (float32/64).
* Every VGG/ResNet builds with its own defaults (3 channels, 32 px) and with each ``norm_layer``.
* ``spikekit.viz`` / ``.data`` / ``.train`` / ``.compat`` / ``.bench`` are attributes after
  ``import spikekit``, which still imports no plotting or dataset library.
* Batch-norm running estimates carry no trace of their start values after a short run.
* Each preset builds its tutorial's network, encoder, loss and decoder on the embedded digits,
  prints every substitution, and a short run of the two BatchNorm/upsampling presets tests
  well above chance.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import spikekit as spk
from spikekit import encoding as E
from spikekit import losses
from spikekit.layers import BNTT2d, TdBatchNorm2d
from spikekit.models import create_model, list_models
from spikekit.train import cli
from spikekit.train.checkpoint import load_checkpoint

CONV_ZOO = [n for n in list_models() if "vgg" in n or "resnet" in n]


# ----------------------------------------------------------------------------- Poisson (norse form)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_poisson_f_max_takes_real_input_and_draws_as_norse(dtype: torch.dtype) -> None:
    enc = pytest.importorskip("norse.torch.functional.encode")
    norse_module = pytest.importorskip("norse.torch")
    # norse's MNIST tutorial feeds Normalize((0.1307,), (0.3081,)) images: values in about [-0.4, 2.8]
    x = (torch.rand(4, 30, generator=torch.Generator().manual_seed(0)) - 0.1307) / 0.3081
    x = x.to(dtype)
    for f_max, dt in ((100.0, 1e-3), (300.0, 1e-3)):
        ours = E.poisson(x, 25, torch.Generator().manual_seed(5), f_max=f_max, dt=dt)
        ref = enc.poisson_encode(x, 25, f_max=f_max, dt=dt, generator=torch.Generator().manual_seed(5))
        assert ours.dtype == dtype
        assert torch.equal(ours.float(), ref)
        torch.manual_seed(9)
        mod = E.Poisson(25, f_max=f_max, dt=dt)(x)
        torch.manual_seed(9)
        assert torch.equal(mod.float(), norse_module.PoissonEncoder(25, f_max=f_max, dt=dt)(x))
    # p <= 0 never spikes, p >= 1 always does
    z = E.poisson(torch.tensor([[-3.0, 5.0]], dtype=dtype), 10, f_max=1000.0)
    assert z[:, 0, 0].sum() == 0 and z[:, 0, 1].sum() == 10


def test_poisson_f_max_float64_in_unit_range_matches_norse() -> None:
    enc = pytest.importorskip("norse.torch.functional.encode")
    x = torch.rand(3, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = E.poisson(x, 30, torch.Generator().manual_seed(2), f_max=500.0)
    ref = enc.poisson_encode(x, 30, f_max=500.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(ours.float(), ref)


def test_poisson_probability_form_still_checks_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.poisson(torch.tensor([[-0.5]]), 3)


# ----------------------------------------------------------------------------- model zoo


@pytest.mark.parametrize("name", CONV_ZOO)
def test_conv_zoo_builds_with_its_own_defaults(name: str) -> None:
    with torch.device("meta"):  # full-size VGGs: shapes only, no 500 MB of weights
        net = create_model(name)
    assert net.in_channels == 3 and net.input_hw == (32, 32)


def _small(name: str) -> dict:
    return (
        dict(width=4, hidden=8, pool_size=1) if "vgg" in name else dict(width=4, stem="cifar", input_size=8)
    )


@pytest.mark.parametrize("norm", ["bn", "tdbn", "bntt", None])
@pytest.mark.parametrize("name", ["spiking_vgg11", "spiking_vgg11_bn", "spiking_resnet18", "sew_resnet18"])
def test_norm_layer_choice(name: str, norm: str | None) -> None:
    net = create_model(name, norm_layer=norm, norm_steps=4, **_small(name))
    kinds = {type(m) for m in net.modules()}
    # BNTT holds plain BatchNorm2d per step, so plain BN counts only without BNTT
    present = {
        "bn": nn.BatchNorm2d in kinds and BNTT2d not in kinds,
        "tdbn": TdBatchNorm2d in kinds,
        "bntt": BNTT2d in kinds,
    }
    assert {k for k, v in present.items() if v} == ({norm} if norm else set())
    xs = torch.rand(3, 2, 3, *net.input_hw)
    net(xs).sum().backward()


def test_norm_layer_unknown_name_is_explained() -> None:
    with pytest.raises(ValueError, match="norm_layer must be one of bn, tdbn, bntt"):
        create_model("spiking_vgg11", norm_layer="layernorm")


def test_batchnorm_running_stats_are_unbiased_after_a_short_run() -> None:
    # 12 training batches (one epoch of the digits at batch 128): torch's EMA still holds
    # 0.9**12 = 28 % of the start value 1; the warm start holds none of it.
    net = create_model("eve_mnist", neuron="if")
    net.train()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(12):
            net(0.1 * torch.rand(2, 16, 1, 28, 28, generator=g))
    bn = net.body[0].module[1]
    conv = net.body[0].module[0]
    with torch.no_grad():
        h = conv(0.1 * torch.rand(32, 1, 28, 28, generator=g))
    true_var = h.var(dim=(0, 2, 3))
    assert torch.allclose(bn.running_var, true_var, rtol=0.25), (bn.running_var, true_var)


# ----------------------------------------------------------------------------- lazy submodules


def test_lazy_submodule_attributes_keep_import_light() -> None:
    code = (
        "import sys, spikekit\n"
        "heavy = ('matplotlib', 'torchvision', 'tonic', 'sklearn', 'spikekit.train', 'spikekit.viz')\n"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
        "for name in ('viz', 'data', 'train', 'compat', 'bench'):\n"
        "    assert getattr(spikekit, name).__name__ == 'spikekit.' + name\n"
        "assert 'viz' in dir(spikekit)\n"
        "try:\n"
        "    spikekit.no_such_thing\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_thing' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


# ----------------------------------------------------------------------------- presets

# preset -> (model name, model class name, encoder, criterion type or None for CE, decoder, input side)
TUTORIALS = {
    "eve-mnist": ("eve_mnist", "SequentialModel", "poisson", None, "rate", 28),
    "norse-mnist-conv": (
        "norse_convnet", "NorseConvNet", "constant_current_lif", losses.ce_max_membrane_loss, "max_membrane", 28
    ),
    "snntorch-quickstart": ("snntorch_convnet", "SequentialModel", "direct", losses.mse_count_loss, "rate", 28),
    "spikingjelly-lif-fc": ("spikingjelly_fc", "SequentialModel", "poisson", losses.mse_rate_loss, "rate", 8),
    "snetx-vgg-cifar10": ("spiking_vgg11_bn", "SpikingVGG", "direct", None, "rate", 32),
}  # fmt: skip


def _fallback_config(preset: str, tmp_path) -> dict:
    p = argparse.ArgumentParser()
    cli.add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(
        ["train", "--preset", preset, "--data-dir", str(tmp_path / "empty"), "--device", "cpu"]
    )
    return cli.resolve_config(args)


@pytest.mark.parametrize("preset", sorted(TUTORIALS))
def test_preset_builds_the_tutorials_pieces_and_prints_substitutions(preset: str, tmp_path) -> None:
    model, cls_name, encoder, criterion, decoder, side = TUTORIALS[preset]
    cfg = _fallback_config(preset, tmp_path)
    said: list[str] = []
    bundle = cli._load_data(cfg, said.append)
    clf = cli._build(cfg, bundle, said.append)
    text = "\n".join(said)
    assert cfg["model"] == model and type(clf.model).__name__ == cls_name
    assert clf.model.input_hw == (side, side)
    assert "substitution: dataset:" in text and "the embedded digits" in text
    assert f"-> {side}x{side}" in text if side != 8 else "kept" in text
    if preset == "snetx-vgg-cifar10":
        assert "channels: 3 -> 1" in text
    if preset == "norse-mnist-conv":  # the tutorial's Normalize((0.1307,), (0.3081,)): else no input spikes
        assert "normalised by mean 0.1307, std 0.3081" in repr(clf.encoder)
    if cfg["batch_size"] != cli.PRESETS[preset]["batch_size"]:
        assert f"batch size: {cli.PRESETS[preset]['batch_size']} -> {cfg['batch_size']}" in text
    assert repr(clf.encoder).startswith(encoder)
    if criterion is None:
        assert clf.criterion.__name__ == "rate_cross_entropy"
    else:
        assert isinstance(clf.criterion, criterion)
    assert cfg["decoder"] == decoder
    # the whole pipeline runs on a digits batch: encoded input fits the tutorial's network
    x, _ = next(iter(bundle.test))
    with torch.no_grad():
        xs = clf.encode(x[:2])
        assert tuple(xs.shape[2:]) == (1, side, side)
        out = clf.model.eval()(xs[:3])
    assert out.shape == (3, 2, 10)


def test_spikingjelly_preset_uses_mse_on_rates_not_cross_entropy(tmp_path) -> None:
    cfg = _fallback_config("spikingjelly-lif-fc", tmp_path)
    clf = cli._build(cfg, cli._load_data(cfg, lambda *a: None), lambda *a: None)
    zs = torch.zeros(10, 1, 10)
    zs[:, 0, 3] = 1.0  # fires at every step for class 3: rate equals the one-hot label
    assert clf.criterion(zs, torch.tensor([3])).item() == 0.0


def test_norse_preset_decodes_by_max_membrane(tmp_path) -> None:
    cfg = _fallback_config("norse-mnist-conv", tmp_path)
    clf = cli._build(cfg, cli._load_data(cfg, lambda *a: None), lambda *a: None)
    outs = torch.zeros(4, 1, 3)
    outs[0, 0, 2] = 5.0  # class 2: one high peak (mean 1.25)
    outs[:, 0, 1] = torch.tensor([1.0, 2.0, 2.0, 2.0])  # class 1: the higher mean (1.75)
    assert outs.mean(0).argmax(-1).item() == 1 and outs.max(0).values.argmax(-1).item() == 2
    assert clf.metrics(outs, torch.tensor([2]))["acc"].item() == 1.0


@pytest.mark.parametrize("preset", ["snntorch-quickstart", "eve-mnist"])
def test_short_preset_run_tests_well_above_chance(preset: str, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--preset", preset, "--data-dir", str(tmp_path / "empty"), "--epochs", "1", "-T", "6",
            "--batch-size", "32", "--lr", "5e-3", "--no-plots", "--no-progress", "--device", "cpu",
            "--out-dir", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["model"] == TUTORIALS[preset][0]
    assert ck["history"][-1]["test_acc"] > 0.3, ck["history"]  # chance is 0.1
    assert "substitution:" in capsys.readouterr().out


def test_spikekit_namespace_has_models_defaults_documented() -> None:
    # create_model's docstring names the per-model defaults (no longer 1 channel / 28 px for all)
    assert "32 px for VGG/ResNet" in " ".join((spk.create_model.__doc__ or "").split())
