"""What is saved describes itself (DESIGN.md property 6): neuron state_dicts and training checkpoints.

A neuron's ``state_dict`` carries its class, options, ``dt`` and parameter layout; loading it
into a neuron with other options names each difference. Learnt and fixed parameters load into
each other, lazy (``shape="infer"``) neurons save and load as torch's ``nn.Lazy*`` modules, and
a ``spikekit train`` checkpoint rebuilds its model with ``spikekit.load_model`` alone.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from typing import Any

import pytest
import torch
from neuron_registry import CASES, NeuronCase
from torch import nn
from torch.nn.parameter import is_lazy

import spikekit as spk
from spikekit import kernels
from spikekit.neurons._base import decode_description

# One case per registered neuron class (the option variants add nothing to saving and loading).
ONE_PER_CLASS: list[NeuronCase] = list({c.cls: c for c in reversed(CASES)}.values())
per_class = pytest.mark.parametrize("case", ONE_PER_CLASS, ids=[c.cls.__name__ for c in ONE_PER_CLASS])


@pytest.fixture(autouse=True)
def _reference_backend():
    with kernels.use("reference"):
        yield


def _xs(F: tuple[int, ...] = (3,), T: int = 5, B: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(T, B, *F, generator=g) * 1.5 - 0.2


def _perturb(n: nn.Module, seed: int = 1) -> None:
    """Move every learnt (unconstrained) parameter a little, so a load has something to carry."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in n.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _assert_params_equal(a: spk.Neuron, b: spk.Neuron) -> None:
    for name, x, y in zip(a.params_type._fields, a.params(), b.params(), strict=True):
        torch.testing.assert_close(x.detach(), y.detach(), msg=lambda m, name=name: f"{name}: {m}")


def _roundtrip(sd: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ---------------------------------------------------------------- 1. options travel with the weights


def test_other_options_fail_to_load_naming_each_field_and_both_values() -> None:
    saved = spk.LIF(reset="soft", surrogate="sigmoid").state_dict()
    with pytest.raises(RuntimeError) as e:
        spk.LIF().load_state_dict(saved)  # hard reset, atan: "All keys matched" on main
    msg = str(e.value)
    assert "reset: checkpoint 'soft', this module 'hard'" in msg
    assert "surrogate: checkpoint Sigmoid(alpha=4.0), this module ATan(alpha=2.0)" in msg
    # Inside a model the message names the module; every neuron's differences come in one error.
    net = nn.Sequential(nn.Linear(2, 3), spk.LIF(dt=0.5, tau=2.0), spk.IF(detach_reset=True))
    other = nn.Sequential(nn.Linear(2, 3), spk.LIF(tau=2.0), spk.IF())
    with pytest.raises(RuntimeError) as e:
        other.load_state_dict(net.state_dict())
    msg = str(e.value)
    assert "LIF '1'" in msg and "dt: checkpoint 0.5, this module 1.0" in msg
    assert "IF '2'" in msg and "detach_reset: checkpoint True, this module False" in msg
    with pytest.raises(RuntimeError, match="class: checkpoint 'LIF', this module 'IF'"):
        spk.IF().load_state_dict(spk.LIF().state_dict())
    with pytest.raises(ValueError, match="reset: checkpoint 'soft', this module 'hard'"):
        spk.LIF().set_extra_state(saved["_extra_state"])


@per_class
def test_description_is_plain_data_and_loads_with_weights_only(case: NeuronCase) -> None:
    n = case.make(shape=(3,), learn=case.learnable[:1])
    sd = _roundtrip(n.state_dict())  # weights_only=True: strings, numbers, bools, lists, dicts only
    assert isinstance(sd["_extra_state"], torch.Tensor)  # every state_dict value stays a tensor
    d = decode_description(sd["_extra_state"])
    assert d == n.describe() and d["class"] == case.cls.__name__ and d["dt"] == n.dt
    assert d["shape"] == [3] and d["batch_first"] is False
    learnt = n.learnable_names()[case.learnable[0]]
    assert d["params"][learnt] == {"learnt": True, "shape": [3]}
    assert set(d["params"]) == set(n.params_type._fields)
    assert set(d["options"]) == {f.name for f in spk.Options.__dataclass_fields__.values()}
    if n.options.surrogate is not None:
        s = n.options.surrogate
        assert d["options"]["surrogate"]["name"] == type(s).__name__
        assert d["options"]["surrogate"]["alpha"] == s.alpha
    twin = case.make(shape=(3,), learn=case.learnable[:1])
    assert not twin.load_state_dict(sd).missing_keys
    _assert_params_equal(n, twin)


def test_a_state_dict_from_before_descriptions_still_loads_strictly() -> None:
    # Decision: a missing description is not an error (nothing to check against), so the
    # checkpoints written before this change keep loading with strict=True.
    src = spk.LIF(tau=3.0, reset="soft")
    old = {k: v for k, v in src.state_dict().items() if k != "_extra_state"}
    n = spk.LIF(reset="soft")
    result = n.load_state_dict(old)
    assert not result.missing_keys and not result.unexpected_keys
    _assert_params_equal(src, n)
    # The documented way to load tensors into a neuron with other options on purpose.
    spk.LIF().load_state_dict(old)


def test_spiking_mode_is_not_part_of_the_identity() -> None:
    relaxed = spk.LIF()
    spk.neurons._base.replace_options(relaxed, spiking=False)  # a mode, as non_spike
    spk.LIF().load_state_dict(relaxed.state_dict())


# ---------------------------------------------------------------- 2. learnt <-> fixed


@per_class
@pytest.mark.parametrize("shape", [None, (3,)], ids=["scalar", "per-neuron"])
def test_learnt_and_fixed_parameters_load_into_each_other(case: NeuronCase, shape: Any) -> None:
    learnt = case.make(shape=shape, learn=case.learnable)
    _perturb(learnt)
    fixed = case.make(shape=shape)
    assert not fixed.load_state_dict(learnt.state_dict()).missing_keys  # beta_logit -> beta
    _assert_params_equal(learnt, fixed)
    back = case.make(shape=shape, learn=case.learnable)
    back.load_state_dict(fixed.state_dict())  # beta -> beta_logit
    _assert_params_equal(fixed, back)
    assert {n for n, p in back.named_parameters()} == {n for n, p in learnt.named_parameters()}
    xs = _xs()
    torch.testing.assert_close(fixed.scan(xs)[1], learnt.scan(xs)[1])


def test_every_parameter_kind_is_covered() -> None:
    kinds = {
        p.kind
        for c in ONE_PER_CLASS
        for p in c.cls.parameters_decl
        if p.name in {c.cls.learnable_names()[n] for n in c.learnable}
    }
    assert kinds == {"decay", "positive", "real"}


def test_a_fixed_value_outside_the_learnt_range_is_refused_by_name() -> None:
    with pytest.raises(RuntimeError, match=r"beta is fixed in the checkpoint with values in \[1, 1\]"):
        spk.LIF(learn="tau").load_state_dict(spk.LIF(beta=1.0).state_dict())


# ---------------------------------------------------------------- 3. lazy neurons


@per_class
def test_lazy_neuron_state_dict_before_first_call(case: NeuronCase) -> None:
    lazy = case.make(shape="infer", learn=case.learnable[:1])
    sd = lazy.state_dict()  # raised "Attempted to use an uninitialized parameter" on main
    assert set(sd) == set(case.make(learn=case.learnable[:1]).state_dict())
    assert all(is_lazy(v) for k, v in sd.items() if k != "_extra_state")
    assert decode_description(sd["_extra_state"])["shape"] == "infer"
    again = case.make(shape="infer", learn=case.learnable[:1])
    again.load_state_dict(sd)  # unsized into unsized, as nn.LazyLinear
    assert again.describe()["shape"] == "infer"


@per_class
def test_loading_a_sized_state_materialises_a_lazy_neuron(case: NeuronCase) -> None:
    src = case.make(shape=(2, 3), learn=case.learnable)
    _perturb(src)
    for learn in (case.learnable, ()):  # also learnt -> fixed while materialising
        lazy = case.make(shape="infer", learn=learn)
        lazy.load_state_dict(src.state_dict())
        assert lazy.shape == (2, 3) and lazy.describe()["shape"] == [2, 3]
        _assert_params_equal(src, lazy)
        xs = _xs(F=(2, 3))
        torch.testing.assert_close(lazy.scan(xs)[1], src.scan(xs)[1])
        lazy.reset_parameters()  # back to the constructor's numbers, at the loaded size
        _assert_params_equal(lazy, case.make(shape=(2, 3), learn=learn))


def test_lazy_neuron_in_a_model_loads_like_nn_lazy_modules() -> None:
    trained = nn.Sequential(nn.Linear(4, 3), spk.LIF(shape=(3,), learn="tau"))
    _perturb(trained)
    fresh = nn.Sequential(nn.LazyLinear(3), spk.LIF(shape="infer", learn="tau"))
    fresh.load_state_dict(trained.state_dict())
    xs = torch.rand(5, 2, 4)
    torch.testing.assert_close(fresh(xs), trained(xs))


# ---------------------------------------------------------------- 4. reset_parameters


@per_class
def test_reset_parameters_restores_the_constructor_values(case: NeuronCase) -> None:
    for kw in ({}, {"shape": (3,), "learn": case.learnable}):
        n = case.make(**kw)
        want = [t.detach().clone() for t in n.params()]
        _perturb(n)
        with torch.no_grad():
            for b in n.buffers():
                b.add_(0.1)
        n.reset_parameters()
        for name, a, b in zip(n.params_type._fields, want, n.params(), strict=True):
            torch.testing.assert_close(b.detach(), a, msg=lambda m, name=name: f"{name}: {m}")
        with torch.device("meta"):
            m = case.make(**kw)
        m.to_empty(device="cpu")
        m.reset_parameters()
        _assert_params_equal(m, case.make(**kw))


# ---------------------------------------------------------------- 5. training checkpoints


@pytest.fixture(scope="module")
def soft_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny ``spikekit train`` run with neuron options, a learnt tau and a surrogate."""
    from spikekit.train.cli import main

    out = tmp_path_factory.mktemp("soft") / "run"
    argv = ["train", "--epochs", "1", "-T", "2", "--max-batches", "2", "--no-progress", "--no-plots",
            "--model", "snntorch_fc", "--neuron-opt", "reset=soft", "--neuron-opt", 'learn=["tau"]',
            "--surrogate", "sigmoid", "--encoder", "poisson", "--device", "cpu", "--out-dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    base = argv[: argv.index("--neuron-opt")] + argv[argv.index("--surrogate") :]
    return {"path": out / "last.pt", "argv": argv, "base": base, "out": out}


def test_checkpoint_records_the_whole_configuration(soft_run: dict[str, Any]) -> None:
    ck = torch.load(soft_run["path"], weights_only=True)
    assert ck["config"]["neuron_options"] == {"reset": "soft", "learn": ["tau"]}  # dropped on main
    spec = ck["model_spec"]
    assert spec["model"] == "snntorch_fc" and spec["neuron"] == "lif"
    assert spec["neuron_options"] == {"reset": "soft", "learn": ["tau"]}
    assert spec["model_kwargs"] == {"num_classes": 10, "in_channels": 1, "input_size": [8, 8]}
    assert (spec["surrogate"], spec["encoder"], spec["T"], spec["precision"], spec["dataset"]) == (
        "sigmoid",
        "poisson",
        2,
        "fp32",
        "digits",
    )
    described = [decode_description(v) for k, v in ck["model"].items() if k.endswith("_extra_state")]
    assert described and all(d["options"]["reset"] == "soft" for d in described)


def test_load_model_rebuilds_the_trained_model_from_the_file_alone(soft_run: dict[str, Any]) -> None:
    net = spk.load_model(soft_run["path"])
    ck = torch.load(soft_run["path"], weights_only=True)
    sd = net.state_dict()
    assert set(sd) == set(ck["model"])
    for k, v in ck["model"].items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(sd[k], v), k
    neurons = [m for m in net.modules() if isinstance(m, spk.Neuron)]
    assert neurons and all(m.options.reset == "soft" for m in neurons)
    assert all(isinstance(m.options.surrogate, spk.surrogate.Sigmoid) for m in neurons)
    assert all("beta" in m._learnt for m in neurons) and not net.training
    clf = spk.train.load_classifier(soft_run["path"])
    assert clf.T == 2 and repr(clf.encoder) == "poisson"
    xs = clf.encode(torch.rand(3, 1, 8, 8))
    torch.testing.assert_close(clf.model(xs), net(xs))


def test_load_model_names_a_mismatch_and_a_missing_description(soft_run: dict[str, Any], tmp_path) -> None:
    ck = torch.load(soft_run["path"], weights_only=True)
    ck["model_spec"]["neuron_options"]["reset"] = "hard"  # a description that does not fit the weights
    torch.save(ck, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="reset: checkpoint 'soft', this module 'hard'"):
        spk.load_model(tmp_path / "tampered.pt")
    del ck["model_spec"]
    torch.save(ck, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="has no model description"):
        spk.load_model(tmp_path / "old.pt")


def test_resume_with_other_neuron_options_fails_with_the_difference(soft_run: dict[str, Any], capsys) -> None:
    from spikekit.train.cli import main

    argv = [
        *soft_run["base"],
        "--neuron-opt",
        "reset=hard",
        "--epochs",
        "2",
        "--resume",
        str(soft_run["path"]),
    ]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "differs from the checkpoint" in err and "hard" in err and "--resume-override" in err
    # forced through, the neurons themselves refuse the weights and name the option
    assert main([*argv, "--resume-override"]) == 2
    err = capsys.readouterr().err
    assert "reset: checkpoint 'soft', this module 'hard'" in err


def test_a_checkpoint_from_before_descriptions_still_resumes(soft_run: dict[str, Any]) -> None:
    from spikekit.train import Trainer, load_checkpoint

    ck = load_checkpoint(soft_run["path"])
    ck["model"] = {k: v for k, v in ck["model"].items() if not k.endswith("_extra_state")}
    del ck["model_spec"]
    clf = spk.train.load_classifier(soft_run["path"]).train()
    opt = torch.optim.AdamW(clf.parameters(), 5e-3, weight_decay=1e-4)
    trainer = Trainer(clf, opt, [], progress=False)
    trainer.load_state_dict(ck)
    assert trainer.epoch == 1


def test_load_model_is_a_lazy_top_level_attribute() -> None:
    code = (
        "import sys, spikekit as spk; assert 'spikekit.train' not in sys.modules; "
        "assert 'load_model' in dir(spk); f = spk.load_model; "
        "from spikekit.train.load import load_model; assert f is load_model"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_a_loaded_checkpoint_deploys_through_torch_export_and_onnx(
    soft_run: dict[str, Any], tmp_path
) -> None:
    """Issue 14, item 5: the trained model leaves through torch.export with the fused op (a
    dynamic T) and through ONNX (the reference scan unrolled for a static T)."""
    net = spk.load_model(soft_run["path"])
    xs = torch.rand(5, 3, 1, 8, 8)
    T = torch.export.Dim("T", min=2, max=64)
    with kernels.use("numba"):  # this file's other tests run the reference scan
        ep = torch.export.export(net, (xs,), dynamic_shapes=({0: T},))
    fused = [n for n in ep.graph_module.graph.nodes if "fused_scan" in str(n.target)]
    assert len(fused) == sum(isinstance(m, spk.Neuron) for m in net.modules())
    for steps in (3, 11):
        x = torch.rand(steps, 3, 1, 8, 8)
        torch.testing.assert_close(ep.module()(x), net(x))
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "trained.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (xs,), str(path), dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: xs.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), net(xs).detach(), rtol=1e-5, atol=1e-6)
