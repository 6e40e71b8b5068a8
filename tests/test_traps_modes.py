"""Issue 13, items 2 and 4: no batch read as time, and one model definition in both modes.

Sequence mode (the default) takes ``[T, B, *features]`` per call; :func:`spikekit.stepwise`
takes one step ``[B, *features]`` per call and carries the state. A call that could be
misread raises with the fix (naming ``stepwise`` or ``TimeDistributed``); the same model gives
the same per-step outputs in both modes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikekit as spk
from spikekit.layers import (
    BNTT2d,
    Flatten,
    MaxPool2d,
    SequenceDropout,
    TdBatchNorm2d,
    TimeDistributed,
)

T, B = 3, 2


def stepped(model: nn.Module, xs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``model`` run one step per call inside ``stepwise``, outputs stacked along ``dim``."""
    with spk.stepwise(model):
        return torch.stack([model(x) for x in xs.unbind(dim)], dim)


# ---------------------------------------------------------------- item 2: no batch-as-time
def test_snntorch_style_loop_outside_stepwise_raises_naming_stepwise():
    """The reported trap: Linear(4, 3) + LIF on [16, 4] ran with 16 as time and 3 as batch."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), spk.LIF())
    x = torch.rand(16, 4)
    with pytest.raises(ValueError, match=r"outside spikekit\.stepwise.*with spikekit\.stepwise\(model\)"):
        net(x)
    # the fix the message gives: the same loop inside stepwise carries the membrane
    with spk.stepwise(net):
        outs = torch.stack([net(x) for _ in range(5)])
    torch.testing.assert_close(outs, net(x.expand(5, 16, 4)))


def test_declared_or_inferred_shape_recognises_a_time_slice():
    with pytest.raises(ValueError, match=r"its features are \(3,\), so this is one time step.*stepwise"):
        spk.LIF(shape=3)(torch.rand(16, 3))
    lazy = spk.LIF(shape="infer")
    with pytest.raises(ValueError, match="stepwise"):  # the first call cannot be 2-D
        lazy(torch.rand(16, 3))
    lazy(torch.rand(T, B, 4, 5))  # sized by a sequence: features (4, 5)
    with pytest.raises(ValueError, match=r"its features are \(4, 5\).*stepwise"):
        lazy(torch.rand(B, 4, 5))


def test_scalar_features_are_declared_with_shape_empty():
    xs = torch.rand(5, B) * 2
    with pytest.raises(ValueError, match=r"shape=\(\)"):
        spk.LIF()(xs)
    torch.testing.assert_close(spk.LIF(shape=())(xs), spk.LIF().scan(xs)[0])  # scan says "sequence"


def test_time_distributed_slice_outside_stepwise_raises_naming_stepwise():
    td = TimeDistributed(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="stepwise"):
        td(torch.rand(B, 1, 6, 6))
    with spk.stepwise(td), pytest.raises(ValueError, match=r"inside spikekit\.stepwise.*xs\[t\]"):
        td(torch.rand(T, B, 1, 6, 6))


def test_zoo_model_given_one_step_names_stepwise():
    net = spk.create_model("digits_convnet")
    with pytest.raises(ValueError, match="stepwise"):
        net(torch.rand(B, 1, 8, 8))
    with spk.stepwise(net), pytest.raises(ValueError, match=r"one time step \[B, 1, 8, 8\]"):
        net(torch.rand(T, B, 1, 8, 8))


def test_reset_and_detach_state_outside_stepwise_raise():
    net = nn.Sequential(nn.Linear(4, 3), spk.LIF())
    for fn in (spk.reset, spk.detach_state):
        with pytest.raises(RuntimeError, match=r"not inside spikekit\.stepwise"):
            fn(net)
    with spk.stepwise(net):
        net(torch.rand(B, 4))
        spk.detach_state(net)
        spk.reset(net)
        assert net[1]._stream.state is None
    spk.reset(nn.Linear(2, 2))  # nothing that could carry state: nothing to say


def test_detach_state_handles_nested_recurrent_state():
    net = nn.Sequential(nn.Linear(4, 3), spk.layers.Recurrent(spk.LIF(), nn.Linear(3, 3)))
    with spk.stepwise(net):
        net(torch.rand(B, 4))
        spk.detach_state(net)
        assert not net[1].neuron._stream.state.neuron.v.requires_grad


# ---------------------------------------------------------------- item 4: layers in both modes
def test_flatten_and_pooling_give_the_same_step_in_both_modes():
    xs = torch.rand(T, B, 4, 6, 6)
    net = nn.Sequential(MaxPool2d(2), Flatten())
    seq = net(xs)
    assert seq.shape == (T, B, 36)
    torch.testing.assert_close(stepped(net, xs), seq)


def test_raw_torch_layers_on_a_sequence_name_time_distributed():
    xs = torch.rand(T, B, 1, 8, 8)
    for raw, fix in [
        (nn.Conv2d(1, 2, 3), r"TimeDistributed\(Conv2d"),
        (nn.MaxPool2d(2), r"spikekit\.layers\.MaxPool2d"),
        (nn.BatchNorm2d(1), r"TimeDistributed\(BatchNorm2d"),
        (nn.Flatten(), r"spikekit\.layers\.Flatten\(\)"),  # would silently merge B into features
    ]:
        net = nn.Sequential(raw, spk.LIF())
        with pytest.raises(ValueError, match=rf"at '0' got \[T, B, \*features\].*{fix}"):
            spk.check(net, xs)
        assert not raw._forward_pre_hooks  # the dry run leaves nothing behind
    good = nn.Sequential(TimeDistributed(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), spk.LIF(), Flatten())
    good.train()
    assert spk.check(good, xs).shape == (T, B, 72)
    assert good.training  # mode restored


def _small_cnn(norm: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        TimeDistributed(nn.Conv2d(1, 4, 3, padding=1)),
        norm,
        spk.LIF(),
        MaxPool2d(2),
        Flatten(),
        nn.Linear(4 * 4 * 4, 8),
        SequenceDropout(0.5),
        spk.LIF(shape="infer"),
        spk.layers.LILinear(8, 3),
    )


@pytest.mark.parametrize("norm", ["bn", "tdbn", "bntt"])
def test_hand_built_net_same_in_both_modes(norm):
    torch.manual_seed(0)
    layer = {
        "bn": lambda: TimeDistributed(nn.BatchNorm2d(4)),
        "tdbn": lambda: TdBatchNorm2d(4),
        "bntt": lambda: BNTT2d(4, num_steps=T),
    }[norm]()
    net = _small_cnn(layer)
    xs = torch.rand(T, B, 1, 8, 8) * 3
    net(xs)  # one training pass: non-trivial running statistics
    net.eval()
    torch.testing.assert_close(stepped(net, xs), net(xs))
    if norm == "bntt":  # the step index is carried state: reset starts again at BN 0
        with spk.stepwise(net):
            first = net(xs[0])
            net(xs[1])
            spk.reset(net)
            torch.testing.assert_close(net(xs[0]), first)


def test_sequence_dropout_keeps_one_mask_per_sequence_in_stepwise():
    torch.manual_seed(0)
    drop = SequenceDropout(0.5)
    with spk.stepwise(drop):
        ys = [drop(torch.ones(B, 16)) for _ in range(T)]
    for y in ys[1:]:
        torch.testing.assert_close(y, ys[0])


# ---------------------------------------------------------------- item 4: the zoo in both modes
# Every registered model except the deep VGG/ResNet variants (the same code as their smallest
# sibling, only slower); those run at a small input size.
ZOO = {
    "digits_convnet": {},
    "eve_mnist": {},
    "norse_convnet": {},
    "norse_snn": {},
    "snntorch_convnet": {},
    "snntorch_fc": {},
    "spikingjelly_fc": {},
    "spiking_vgg11": {"input_size": 32},
    "spiking_vgg11_bn": {"input_size": 32},
    "spiking_resnet18": {"input_size": 16},
    "sew_resnet18": {"input_size": 16},
}


def test_the_zoo_list_is_covered():
    deep = {n for n in spk.list_models() if n.startswith(("spiking_vgg", "sew_resnet", "spiking_resnet"))}
    assert set(spk.list_models()) - deep <= set(ZOO), "a new model: add it to ZOO"


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_same_in_sequence_and_stepwise(name):
    torch.manual_seed(0)
    net = spk.create_model(name, **ZOO[name]).eval()
    c, (h, w) = net.in_channels, net.input_hw
    xs = torch.rand(T, B, c, h, w) * 2
    with torch.no_grad():
        seq = net(xs)
        step = stepped(net, xs)
    assert seq.shape == (T, B, net.num_classes)
    torch.testing.assert_close(step, seq)


def test_batch_first_zoo_model_steps_on_batch_slices():
    torch.manual_seed(0)
    net = spk.create_model("digits_convnet", batch_first=True).eval()
    xs = torch.rand(B, T, 1, 8, 8) * 2
    with torch.no_grad():
        torch.testing.assert_close(stepped(net, xs, dim=1), net(xs))
