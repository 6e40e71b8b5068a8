"""Registry-driven model tests: every registered model, both layouts, T in {1, 4}."""

from __future__ import annotations

import contextlib
import copy
from unittest import mock

import pytest
import torch
from torch import nn

import spikekit as spk
from spikekit.layers import Recurrent
from spikekit.models import create_model, list_models, model_info

ALL = list_models()
B = 2


def small_kwargs(name: str) -> dict:
    """Constructor arguments that keep each model fast in tests (same architecture, fewer channels)."""
    if "vgg" in name:
        return dict(in_channels=3, input_size=32, width=8, hidden=16, pool_size=1)
    if "resnet" in name:
        return dict(in_channels=3, input_size=8, width=4, stem="cifar")
    if name == "digits_convnet":
        return dict(input_size=8)
    return {}


def build(name: str, seed: int = 0, **extra) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **{**small_kwargs(name), **extra})


def image_input(model: nn.Module, T: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(T, B, model.in_channels, *model.input_hw, generator=g)


def test_registry_lists_every_family():
    expected = {
        "digits_convnet",
        "eve_mnist",
        "norse_snn",
        "norse_convnet",
        "snntorch_convnet",
        "snntorch_fc",
        "spikingjelly_fc",
        *(f"spiking_vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
        *(f"{k}_resnet{d}" for k in ("spiking", "sew") for d in (18, 34)),
    }
    assert expected <= set(ALL)
    assert list_models("*vgg1[19]_bn") == ["spiking_vgg11_bn", "spiking_vgg19_bn"]


def test_unknown_model_lists_names():
    with pytest.raises(ValueError, match="digits_convnet"):
        create_model("resnet9000")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("T", [1, 4])
def test_forward_backward_both_layouts(name, T):
    net = build(name)
    xs = image_input(net, T)
    ys = net(xs)
    assert ys.shape == (T, B, net.num_classes)
    assert torch.isfinite(ys).all()
    (ys - 1).square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), pname
    # Some gradient flows (with T = 1 a deep net may emit no output spike yet, so not every layer).
    # norse's ConvNet has a ReLU on its last spikes: while that layer is silent no gradient passes
    # (the tutorial's network; relu=False is the variant that trains from silence).
    grads = lambda m: sum(float(p.grad.abs().sum()) for p in m.parameters())  # noqa: E731
    if name == "norse_convnet" and grads(net) == 0:
        net2 = build(name, relu=False)
        net2(xs).sub(1).square().mean().backward()
        assert grads(net2) > 0
    else:
        assert grads(net) > 0

    # The same weights with batch_first=True give the transposed result.
    net_bf = build(name, batch_first=True)
    net_bf.load_state_dict(net.state_dict())
    net.eval(), net_bf.eval()
    with torch.no_grad():
        torch.testing.assert_close(net_bf(xs.transpose(0, 1)), net(xs).transpose(0, 1))


@pytest.mark.parametrize("name", [n for n in ALL if model_info(n).input_kind == "features"])
def test_fc_models_take_flat_features(name):
    net = build(name).eval()
    xs = image_input(net, 3)
    with torch.no_grad():
        torch.testing.assert_close(net(xs.flatten(2)), net(xs))


@pytest.mark.parametrize("name", ["digits_convnet", "spiking_vgg11", "spikingjelly_fc"])
def test_wrong_input_shape_is_explained(name):
    net = build(name)
    x = torch.rand(B, net.in_channels, *net.input_hw)  # forgot the time axis
    with pytest.raises(ValueError, match=r"expected input \[T, B, .*add a time axis"):
        net(x)
    with pytest.raises(ValueError, match="got"):
        net(torch.rand(2, B, net.in_channels + 1, *net.input_hw))


def test_neuron_kind_and_options_reach_every_hidden_neuron():
    net = build("spiking_vgg11_bn", neuron="if", neuron_options={"v_th": 0.5, "surrogate": "sigmoid"})
    found = spk.neurons_of(net)
    assert len(found) == 8 + 2
    for _, m in found:
        assert isinstance(m, spk.IF)
        assert float(m.params().v_th) == 0.5
        assert type(m.options.surrogate).__name__ == "Sigmoid"
    with pytest.raises(TypeError, match="does not accept"):
        build("digits_convnet", neuron_options={"tauu": 3.0})


def test_model_defaults_yield_to_user_alternatives():
    # snntorch's default beta must not clash with a user tau (tau/beta are alternatives).
    net = build("snntorch_convnet", neuron_options={"tau": 4.0})
    assert float(net.body[1].params().beta) == pytest.approx(0.75)
    # Model defaults meaningless for IF (tau) are dropped rather than raising.
    assert isinstance(build("norse_convnet", neuron="if").lif0, spk.IF)


def test_snntorch_fc_learns_layer_and_neuron_betas():
    net = build("snntorch_fc")
    hidden, out = net.body[2], net.body[4]
    assert hidden.beta_logit.shape == () and hidden.beta_logit.requires_grad
    assert out.beta_logit.shape == (10,) and out.beta_logit.requires_grad
    assert float(hidden.params().beta.detach()) == pytest.approx(0.9)
    net(image_input(net, 4)).sum().backward()
    assert hidden.beta_logit.grad is not None and out.beta_logit.grad.shape == (10,)
    with pytest.raises(ValueError, match="decay"):
        build("snntorch_fc", neuron="if")


def test_eve_mnist_neurons_size_themselves_from_the_layer_before():
    net = build("eve_mnist", neuron="if")
    shapes = [m.shape for _, m in spk.neurons_of(net)]
    assert shapes == [(4, 14, 14), (8, 7, 7), (16, 4, 4), (16,)]
    # Materialised at construction, so an optimiser sees real tensors.
    assert not any(nn.parameter.is_lazy(t) for t in (*net.parameters(), *net.buffers()))
    shared = build("eve_mnist", neuron_wise=False)
    assert all(m.shape is None for _, m in spk.neurons_of(shared))


# ------------------------------------------------------------------ ANN (non-spiking) mode


class _Elman(nn.Module):
    """``h_t = act(x_t + W h_{t-1})``: what a Recurrent layer becomes in ANN mode."""

    def __init__(self, act: nn.Module, recurrent: nn.Module) -> None:
        super().__init__()
        self.act, self.recurrent = act, recurrent

    def forward(self, xs):
        h, out = torch.zeros_like(xs[0]), []
        for x in xs:
            h = self.act(x + self.recurrent(h))
            out.append(h)
        return torch.stack(out)


def _activation(neuron: spk.Neuron) -> nn.Module:
    if isinstance(neuron, spk.LI):
        return nn.Identity()
    if isinstance(neuron, spk.LIF):
        return nn.LeakyReLU(0.01)
    return nn.ReLU()


def relu_twin(model: nn.Module) -> nn.Module:
    """A deep copy with every neuron replaced by its plain activation module."""
    twin = copy.deepcopy(model)
    for m in list(twin.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, Recurrent):
                setattr(m, child_name, _Elman(_activation(child.neuron), child.recurrent))
            elif isinstance(child, spk.Neuron):
                setattr(m, child_name, _activation(child))
    assert not spk.neurons_of(twin)
    return twin


# The deeper VGG/ResNet variants repeat the same blocks; their forward pass is covered above.
ANN_CASES = [n for n in ALL if not any(d in n for d in ("vgg13", "vgg16", "vgg19", "resnet34"))]


@pytest.mark.parametrize("name", ANN_CASES)
def test_ann_mode_equals_relu_network(name):
    neuron = "lif" if name == "snntorch_fc" else "if"
    net = build(name, neuron=neuron).eval()
    twin = relu_twin(net).eval()
    xs = image_input(net, 3)
    with torch.no_grad():
        spiking = net(xs)
        spk.non_spike(net)
        torch.testing.assert_close(net(xs), twin(xs))
        assert not torch.allclose(spiking, twin(xs))  # the mode switch changed the computation
        spk.spike(net)
        torch.testing.assert_close(net(xs), spiking)


def _copy_weights(ours: nn.Module, theirs: nn.Module) -> None:
    # Our time-folded layers hold the torch module as `.module`; otherwise names are torchvision's.
    src = {k.replace(".module", ""): v for k, v in ours.state_dict().items()}
    theirs.load_state_dict({k: src[k] for k in theirs.state_dict()})


def _randomise_bn(net: nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))


def test_ann_mode_spiking_resnet18_equals_torchvision():
    tvm = pytest.importorskip("torchvision.models")
    net = build("spiking_resnet18", neuron="if", input_size=16, stem="imagenet", width=64).eval()
    _randomise_bn(net)
    ref = tvm.resnet18(num_classes=10).eval()
    _copy_weights(net, ref)
    xs = torch.rand(2, B, 3, 16, 16)
    with torch.no_grad():
        spk.non_spike(net)
        want = torch.stack([ref(x) for x in xs])
        torch.testing.assert_close(net(xs), want, rtol=1e-4, atol=1e-5)


def test_ann_mode_spiking_vgg_bn_equals_torchvision_vgg():
    vgg = pytest.importorskip("torchvision.models.vgg")
    net = build("spiking_vgg11_bn", neuron="if").eval()
    _randomise_bn(net)
    cfg = [c if c == "M" else c // 8 for c in vgg.cfgs["A"]]  # torchvision's vgg11 layer list, width 8
    with _no_init():
        ref = vgg.VGG(vgg.make_layers(cfg, batch_norm=True), num_classes=10)
    # torchvision hard-codes a 7x7 pool and 4096-wide head; give it ours (same structure, small).
    ref.avgpool = nn.AdaptiveAvgPool2d(1)
    ref.classifier = nn.Sequential(
        nn.Linear(64, 16),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(16, 10),
    )
    ref.eval()
    _copy_weights(net, ref)
    xs = image_input(net, 2)
    with torch.no_grad():
        spk.non_spike(net)
        torch.testing.assert_close(net(xs), torch.stack([ref(x) for x in xs]), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ parameter counts


@contextlib.contextmanager
def _no_init():
    """Skip weight initialisation: counting 140M parameters must not cost seconds of RNG."""
    with contextlib.ExitStack() as st:
        for cls in (nn.Linear, nn.Conv2d):
            st.enter_context(mock.patch.object(cls, "reset_parameters", lambda self: None))
        for f in ("kaiming_normal_", "normal_", "constant_", "uniform_"):
            st.enter_context(mock.patch.object(nn.init, f, lambda t, *a, **k: t))
        yield


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", [n for n in ALL if "vgg" in n or "resnet" in n], ids=lambda n: n)
def test_parameter_count_equals_torchvision(name):
    tvm = pytest.importorskip("torchvision.models")
    tv_name = name.replace("spiking_", "").replace("sew_", "")
    with _no_init():
        ours = create_model(name, num_classes=100, in_channels=3, input_size=224)
        ref = getattr(tvm, tv_name)(num_classes=100)
    assert _count(ours) == _count(ref)
    theirs = {k for k in ref.state_dict()}
    mine = {k.replace(".module", "") for k in ours.state_dict()}
    assert theirs <= mine  # same tensors under the same names (plus the neurons' constants)


@pytest.mark.slow
def test_deep_models_run_for_many_steps():
    # snetx's spiking VGG only runs for T = 1; ours folds time and runs for any T.
    net = build("spiking_vgg16_bn")
    assert net(image_input(net, 7)).shape == (7, B, 10)
    net = build("sew_resnet34", connect="IAND")
    assert net(image_input(net, 5)).shape == (5, B, 10)


def test_spikingjelly_fc_matches_spikingjelly():
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    net = build("spikingjelly_fc").eval()
    ref = nn.Sequential(
        layer.Flatten(step_mode="m"),
        layer.Linear(784, 10, bias=False, step_mode="m"),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m"),
    )
    ref[1].weight.data.copy_(net.body[1].weight.data)
    xs = 3 * torch.rand(6, B, 1, 28, 28, requires_grad=True)
    ours = net(xs)
    theirs = ref(xs)
    functional.reset_net(ref)
    assert ours.sum() > 0
    torch.testing.assert_close(ours, theirs)
    g1 = torch.autograd.grad((ours * torch.arange(10.0)).sum(), xs)[0]
    g2 = torch.autograd.grad((ref(xs) * torch.arange(10.0)).sum(), xs)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
