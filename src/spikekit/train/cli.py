"""``spikekit train`` and ``spikekit sweep``.

:func:`add_parser` registers both on the ``spikekit`` command's sub-parsers; :func:`main`
runs them on their own (``python -m spikekit.train.cli train ...``). Configuration is
``DEFAULTS``, then a ``--preset``, then the options given on the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import types
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

__all__ = ["add_parser", "main", "DEFAULTS", "PRESETS", "resolve_config", "run_train", "run_sweep"]

# The default run: conv SNN, direct encoding, T=4 on the embedded digits (about a minute on 2 cores).
DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "data_dir": None,
    "download": False,
    "augment": True,
    "model": "digits_convnet",
    "neuron": "lif",
    "neuron_options": {},
    "model_options": {},
    "surrogate": None,
    "surrogate_alpha": None,
    "encoder": "direct",
    "loss": "ce",
    "decoder": "rate",
    "T": 4,
    "epochs": 10,
    "batch_size": 64,
    "lr": 5e-3,
    "optimizer": "adamw",
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "clip_grad": None,
    "precision": "fp32",  # fp32, bf16 or fp16 (autocast); older configs say "bf16": true
    "tbptt": None,
    "deterministic": False,
    "seed": 0,
    "out_dir": "runs/train",
    "resume": None,
    "plots": True,
    "progress": True,
    "max_batches": None,
    "num_workers": 0,
    "device": "auto",
}

# Each reference tutorial's experiment: its network, neuron, surrogate, encoder, loss, decoder,
# optimiser and schedule (see /work/shared/references and the model docstrings). Without the
# real data a preset runs the same network on the embedded digits: `fallback_size` upsamples the
# 8x8 digits to the side the network's shapes need (None: the network takes 8x8 as it is), and
# `fallback_epochs` caps the epochs (unless --epochs is given) and `fallback_batch_size` sets the
# batch size (unless --batch-size is given): the digits have 1437 training images, 42x fewer than
# MNIST, so the tutorial's batch would leave a handful of updates per epoch (12 at 128) and a
# short run at chance. Each substitution is printed.
PRESETS: dict[str, dict[str, Any]] = {
    # eve-mli: 3 x (conv s2 + BN + IF), linear-IF-linear; Poisson input, CE of the time-mean output.
    "eve-mnist": {
        "dataset": "mnist", "model": "eve_mnist", "neuron": "if", "surrogate": "sigmoid",
        "encoder": "poisson", "loss": "ce", "decoder": "rate", "T": 5, "epochs": 10, "batch_size": 128,
        "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0, "schedule": "none", "fallback_epochs": 5,
        "fallback_batch_size": 32, "fallback_size": 28, "augment": False,
    },
    # norse: ConvNet(alpha=80) of current-based LIFs (norse's method="super" ignores alpha: FastSigmoid(1)),
    # ConstantCurrentLIFEncoder(48), decode = log_softmax(max_t v), nll loss, Adam 1e-3, batch 256.
    # Its transform normalises with MNIST's mean and std: without it no pixel (<= 1) drives the
    # encoder's LIF (threshold 1) to a spike, and nothing learns.
    "norse-mnist-conv": {
        "dataset": "mnist", "model": "norse_convnet", "neuron": "cubalif", "surrogate": "superspike",
        "surrogate_alpha": 1.0, "encoder": "constant_current_lif", "loss": "ce_max_membrane",
        "decoder": "max_membrane", "normalize": (0.1307, 0.3081), "T": 48, "epochs": 5, "batch_size": 256, "lr": 1e-3,
        "optimizer": "adam", "weight_decay": 0.0, "schedule": "none", "fallback_epochs": 2,
        "fallback_batch_size": 32, "fallback_size": 28, "augment": False,
    },
    # snntorch quickstart: conv5(8)-pool-Leaky-conv5(16)-pool-Leaky-linear-Leaky (beta 0.9),
    # fast_sigmoid(25), direct input for 25 steps, mse_count_loss(0.8, 0.2), spike-count decoding.
    "snntorch-quickstart": {
        "dataset": "mnist", "model": "snntorch_convnet", "neuron": "lif", "surrogate": "fast_sigmoid",
        "surrogate_alpha": 25.0, "encoder": "direct", "loss": "mse_count", "decoder": "rate", "T": 25,
        "epochs": 1, "batch_size": 128, "lr": 2e-3, "optimizer": "adam", "weight_decay": 0.0,
        "schedule": "none", "fallback_epochs": 3, "fallback_batch_size": 16, "fallback_size": 28,
        "augment": False,
    },
    # spikingjelly: flatten-linear(no bias)-LIF(tau=2), Poisson input for 100 steps, MSE between
    # the output firing rate and the one-hot label, rate decoding, Adam 1e-3, batch 128.
    "spikingjelly-lif-fc": {
        "dataset": "mnist", "model": "spikingjelly_fc", "neuron": "lif", "neuron_options": {"tau": 2.0},
        "encoder": "poisson", "loss": "mse_rate", "decoder": "rate", "T": 100, "epochs": 100,
        "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0, "schedule": "none",
        "fallback_epochs": 2, "fallback_batch_size": 16, "fallback_size": None, "augment": False,
    },
    # snetx: spiking VGG-11 with BN, ATan surrogate, DirectEncoder(4), CE on the time-mean output.
    "snetx-vgg-cifar10": {
        "dataset": "cifar10", "model": "spiking_vgg11_bn", "neuron": "lif", "surrogate": "atan",
        "encoder": "direct", "loss": "ce", "decoder": "rate", "T": 4, "epochs": 200, "batch_size": 64,
        "lr": 0.1, "optimizer": "sgd", "weight_decay": 5e-4, "schedule": "cosine", "fallback_epochs": 2,
        "fallback_size": 32, "augment": False,
    },
}  # fmt: skip

# What --loss / --decoder / --encoder accept (the tutorials' choices, by their libraries' names).
LOSSES = ("ce", "mse_count", "mse_rate", "ce_max_membrane")
DECODERS = ("rate", "max_membrane")
ENCODERS = ("direct", "poisson", "constant_current_lif", "none")


class CLIError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def _int_at_least(minimum: int, what: str) -> Any:
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def _nonnegative_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def _seed_arg(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {s!r}") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed in 0..2**63-1, got {v}")
    return v


def _device_arg(s: str) -> str:
    from spikekit.train.trainer import DEVICE_CHOICES, DEVICE_SPEC

    if not DEVICE_SPEC.fullmatch(s.strip().lower()):
        raise argparse.ArgumentTypeError(f"expected {DEVICE_CHOICES}, got {s!r}")
    return s.strip().lower()


def _kv(s: str) -> tuple[str, Any]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. tau=2.0), got {s!r}")
    k, v = s.split("=", 1)
    try:
        val = json.loads(v)
    except json.JSONDecodeError:
        val = v  # a bare word such as reset=soft
    return k.strip(), val


def _one_line_errors(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # argparse prints the whole usage before the error; the brief is one clear line.
    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    p.error = types.MethodType(error, p)  # type: ignore[method-assign]
    return p


def _add_common(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a(
        "--dataset",
        help="digits (embedded, default), mnist, fmnist, cifar10, cifar100, nmnist, dvsgesture, shd",
    )
    a("--data-dir", dest="data_dir", help="folder holding the dataset files (torchvision / tonic layout)")
    a("--download", action="store_true", default=None, help="download the dataset if absent (needs internet)")
    a("--augment", action=argparse.BooleanOptionalAction, default=None,
      help="random 1-pixel shifts of the training digits (default on for the default run)")  # fmt: skip
    a("--model", help="model name from the registry (default digits_convnet)")
    a("--neuron", help="hidden neuron: lif, if, cubalif, alif (default lif)")
    a("--neuron-opt", dest="neuron_opt", action="append", type=_kv, metavar="KEY=VALUE",
      help="neuron option, repeatable, e.g. --neuron-opt tau=2.0 --neuron-opt reset=soft")  # fmt: skip
    a("--model-opt", dest="model_opt", action="append", type=_kv, metavar="KEY=VALUE",
      help="model constructor option, repeatable, e.g. --model-opt neuron_wise=false")  # fmt: skip
    a("--surrogate", help="surrogate gradient name, e.g. atan, sigmoid, fast_sigmoid")
    a("--surrogate-alpha", dest="surrogate_alpha", type=_positive_float, help="surrogate sharpness")
    a("--encoder", choices=ENCODERS, help="input encoding (default direct)")
    a(
        "--loss",
        choices=LOSSES,
        help="ce on the time-mean readout (default), snntorch mse_count, spikingjelly mse_rate "
        "or norse ce_max_membrane",
    )
    a("--decoder", choices=DECODERS,
      help="prediction: argmax of the time-mean output (rate, default) or of max_t (max_membrane, norse)")  # fmt: skip
    a("-T", "--time-steps", dest="T", type=_positive_int, help="time steps per sample (default 4)")
    a("--epochs", type=_positive_int)
    a("--batch-size", dest="batch_size", type=_positive_int, help="global batch size (split over processes)")
    a("--lr", type=_positive_float, help="learning rate")
    a("--optimizer", choices=("adamw", "adam", "sgd"))
    a("--weight-decay", dest="weight_decay", type=_nonnegative_float, help="weight decay (>= 0)")
    a("--schedule", choices=("cosine", "none"), help="learning-rate schedule per epoch")
    a("--clip-grad", dest="clip_grad", type=_positive_float, help="clip the global gradient norm")
    amp = p.add_mutually_exclusive_group()
    amp.add_argument("--bf16", dest="precision", action="store_const", const="bf16", default=None,
                     help="bf16 autocast (CPU or GPU; no loss scaling needed)")  # fmt: skip
    amp.add_argument("--fp16", dest="precision", action="store_const", const="fp16", default=None,
                     help="fp16 autocast with a GradScaler (CPU or GPU)")  # fmt: skip
    a("--tbptt", type=_positive_int, help="truncated BPTT window in steps (default: full BPTT)")
    a("--deterministic", action="store_true", default=None, help="deterministic kernels")
    a("--seed", type=_seed_arg, help="random seed, 0..2**63-1")
    a("--out-dir", dest="out_dir",
      help="output folder (default runs/train, or the next free runs/train-N when that holds a run)")  # fmt: skip
    a("--no-plots", dest="plots", action="store_false", default=None, help="skip the PNG plots")
    a(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bar / epoch lines",
    )
    a("--device", type=_device_arg, default=None,
      help="auto (default: CUDA when available, else CPU), cpu, cuda, cuda:N or mps")  # fmt: skip
    a("--num-workers", dest="num_workers", type=_nonnegative_int,
      help="DataLoader worker processes per loader (default 0: in the main process; with workers, "
           "--augment draws in the workers and a resumed run is no longer bit-identical)")  # fmt: skip
    a(
        "--max-batches",
        dest="max_batches",
        type=_positive_int,
        help="train on at most N batches per epoch (smoke tests)",
    )


def add_parser(subparsers: Any) -> None:
    """Register ``train`` and ``sweep`` on the ``spikekit`` command's ``add_subparsers()`` object."""
    t = _one_line_errors(
        subparsers.add_parser(
            "train",
            help="train a spiking network (default: conv SNN on the embedded digits, ~1 min)",
            description="Train an SNN. With no options: digits_convnet, direct encoding, T=4, on the embedded 8x8 digits.",
        )
    )
    t.add_argument("--preset", choices=sorted(PRESETS), help="reproduce a reference tutorial's experiment")
    _add_common(t)
    t.add_argument("--resume", help="checkpoint to resume from, or 'auto' for OUT_DIR/last.pt")
    t.add_argument("--resume-override", dest="resume_override", action="store_true", default=None,
                   help="with --resume: apply options that differ from the checkpoint's run (recorded)")  # fmt: skip
    t.add_argument("--overwrite", action="store_true", default=None,
                   help="replace the run already in --out-dir (its checkpoints, metrics, tb/ and plots/)")  # fmt: skip
    t.set_defaults(func=_guarded(run_train, "spikekit train"))
    s = _one_line_errors(
        subparsers.add_parser(
            "sweep",
            help="eve-mli's comparisons (T, IF vs LIF, learnable params, surrogates) on the digits",
            description="Train one short run per configuration and write a comparison table and plot.",
        )
    )
    _add_common(s)
    s.add_argument("--only", help="comma-separated group names: timesteps,neuron,options,surrogate")
    s.set_defaults(func=_guarded(run_sweep, "spikekit sweep"))


# ----------------------------------------------------------------------------- configuration


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULTS`` (updated with ``base``), then the preset, then every option given explicitly."""
    cfg = {**DEFAULTS, **(base or {})}
    preset = getattr(args, "preset", None)
    if preset:
        cfg.update(PRESETS[preset])
        cfg["preset"] = preset
    given = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k not in ("func", "preset", "neuron_opt", "model_opt", "only", "command")
    }
    cfg["given"] = sorted(
        [*given, *(["neuron_options"] if getattr(args, "neuron_opt", None) else []),
         *(["model_options"] if getattr(args, "model_opt", None) else [])]
    )  # fmt: skip
    cfg["epochs_given"] = "epochs" in given
    cfg["batch_size_given"] = "batch_size" in given
    cfg.update(given)
    opts = dict(cfg.get("neuron_options") or {})
    opts.update(dict(getattr(args, "neuron_opt", None) or []))
    cfg["neuron_options"] = opts
    cfg["model_options"] = {**cfg.get("model_options", {}), **dict(getattr(args, "model_opt", None) or [])}
    cfg["device"] = cfg.get("device") or "auto"
    _normalise_precision(cfg)
    return cfg


def _normalise_precision(cfg: dict[str, Any]) -> None:
    # One key decides, "precision"; "bf16" stays in the recorded config, derived from it, for
    # configs and readers from before fp16 existed.
    from spikekit.train.trainer import PRECISIONS

    precision = cfg.get("precision") or "fp32"
    if precision not in PRECISIONS:
        raise CLIError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if cfg.get("bf16"):
        if precision not in ("fp32", "bf16"):
            raise CLIError(f"the config asks for both bf16 and {precision}; expected one precision")
        precision = "bf16"
    cfg["precision"], cfg["bf16"] = precision, precision == "bf16"


def _setup_device(cfg: dict[str, Any]) -> None:
    """Resolve ``cfg["device"]`` (``auto`` -> ``cuda:N``/``cpu``) and check the precision fits it.

    Raises:
        CLIError: a device this machine does not have, or a precision its torch cannot run there.
    """
    import torch

    from spikekit.train.trainer import check_precision, resolve_device

    # torchrun runs one process per GPU: the process's LOCAL_RANK picks its GPU.
    local = os.environ.get("LOCAL_RANK") if "RANK" in os.environ and "WORLD_SIZE" in os.environ else None
    try:
        cfg["device"] = resolve_device(cfg["device"], None if local is None else int(local))
    except ValueError as e:
        raise CLIError(f"--device {cfg['device']}: {e}") from None
    try:
        check_precision(cfg["precision"], torch.device(cfg["device"]).type)
    except ValueError as e:
        raise CLIError(f"--{cfg['precision']}: {e}") from None
    if cfg["device"].startswith("cuda"):
        # nccl and the default CUDA stream follow the current device, not just .to(device).
        torch.cuda.set_device(cfg["device"])


def _pin_memory(device: str) -> bool:
    # Page-locked batches only help a copy to a CUDA device, and cost host memory elsewhere.
    return device.startswith("cuda")


def _check(cfg: dict[str, Any]) -> None:
    import spikekit as spk
    from spikekit import data, models

    if cfg["model"] not in models.list_models():
        raise CLIError(f"unknown model {cfg['model']!r}; registered: {', '.join(models.list_models())}")
    try:
        spk.get_neuron(cfg["neuron"])
        if cfg["surrogate"] is not None:
            spk.surrogate.get(cfg["surrogate"])
    except ValueError as e:
        raise CLIError(str(e)) from None
    if cfg["dataset"] not in data.names():
        raise CLIError(f"unknown dataset {cfg['dataset']!r}; expected one of {', '.join(data.names())}")
    for k, v in (cfg.get("neuron_options") or {}).items():
        # A bare word where the neuron wants a number fails deep in torch ("invalid data type
        # 'str'"); try the option on its own neuron first and name it.
        if isinstance(v, str):
            try:
                spk.get_neuron(cfg["neuron"])(**{k: v})
            except (TypeError, ValueError, RuntimeError) as e:
                raise CLIError(
                    f"--neuron-opt {k}={v}: {cfg['neuron']} does not accept {v!r} for {k} "
                    f"(expected a number or another of its values; {str(e).splitlines()[0]})"
                ) from None


def _rank_world() -> tuple[int, int]:
    from spikekit.data import dist_info

    return dist_info()


def _load_data(cfg: dict[str, Any], say: Any) -> Any:
    from spikekit import data

    _, world = _rank_world()
    if cfg["batch_size"] % world:
        raise CLIError(f"--batch-size {cfg['batch_size']} must be divisible by the {world} processes")
    per_rank = cfg["batch_size"] // world
    try:
        return data.load(
            cfg["dataset"], data_dir=cfg["data_dir"], batch_size=per_rank, T=cfg["T"],
            download=bool(cfg["download"]), seed=cfg["seed"], augment=bool(cfg["augment"]),
            pin_memory=_pin_memory(cfg["device"]), num_workers=cfg["num_workers"],
        )  # fmt: skip
    except data.DatasetNotFoundError as e:
        if not cfg.get("preset"):
            raise CLIError(str(e)) from None
        # Presets fall back to the embedded digits so they always run, with the tutorial's own
        # network, encoder, loss and decoder; every substitution is printed.
        cfg["fallback_from"] = cfg["dataset"]
        cfg["dataset"], cfg["encoder"] = "digits", ("direct" if cfg["encoder"] == "none" else cfg["encoder"])
        if not cfg["epochs_given"]:
            cfg["epochs"] = min(cfg["epochs"], cfg.get("fallback_epochs", cfg["epochs"]))
        if not cfg.get("batch_size_given") and cfg.get("fallback_batch_size"):
            cfg["batch_size"] = int(cfg["fallback_batch_size"])
            if cfg["batch_size"] % world:
                msg = f"batch size {cfg['batch_size']} must be divisible by the {world} processes"
                raise CLIError(msg) from None
            per_rank = cfg["batch_size"] // world
        say(
            f"note: {e}\nnote: preset {cfg['preset']}: falling back to the embedded 8x8 digits ({cfg['epochs']} epochs)"
        )
        bundle = data.load(
            "digits", batch_size=per_rank, seed=cfg["seed"], augment=bool(cfg["augment"]),
            pin_memory=_pin_memory(cfg["device"]), num_workers=cfg["num_workers"],
        )  # fmt: skip
        for line in _substitutions(cfg, bundle):
            say(f"substitution: {line}")
        return bundle


_TUTORIAL_DATA = {"mnist": ("MNIST", 1, 28), "cifar10": ("CIFAR-10", 3, 32)}


def _substitutions(cfg: dict[str, Any], bundle: Any) -> list[str]:
    """What a preset's fallback run changes from its tutorial (one line each); sets ``cfg["resize"]``."""
    name, channels, side = _TUTORIAL_DATA.get(cfg["fallback_from"], (cfg["fallback_from"], None, None))
    h, w = bundle.input_size
    n_train, n_test = len(bundle.train.dataset), len(bundle.test.dataset)
    lines = [f"dataset: {name} -> the embedded digits ({n_train} train / {n_test} test images, {h}x{w})"]
    size = cfg.get("fallback_size")
    if size:
        cfg["resize"] = int(size)
        lines.append(
            f"input size: {h}x{w} -> {size}x{size} (bilinear upsampling; the tutorial's network needs "
            f"{size}x{size} inputs)"
        )
    else:
        lines.append(
            f"input size: {side}x{side} -> {h}x{w}, kept ({cfg['model']} takes any size: "
            f"{bundle.in_channels * h * w} input features instead of {(channels or 1) * (side or 0) ** 2})"
        )
    if channels is not None and channels != bundle.in_channels:
        lines.append(f"channels: {channels} -> {bundle.in_channels} (grey digits)")
    if cfg["epochs"] != PRESETS[cfg["preset"]]["epochs"]:
        lines.append(f"epochs: {PRESETS[cfg['preset']]['epochs']} -> {cfg['epochs']}")
    if cfg["batch_size"] != PRESETS[cfg["preset"]]["batch_size"]:
        per_epoch = -(-n_train // cfg["batch_size"])
        lines.append(
            f"batch size: {PRESETS[cfg['preset']]['batch_size']} -> {cfg['batch_size']} "
            f"({per_epoch} updates per epoch on the digits)"
        )
    return lines


def _Encode(name: str, resize: int | None, normalize: Sequence[float] | None = None) -> Any:
    """The run's encoder (see :class:`spikekit.train.load.Encode`; kept here for callers of the old name)."""
    from spikekit.train.load import Encode

    return Encode(name, resize, normalize)


def _spec(cfg: dict[str, Any], bundle: Any) -> dict[str, Any]:
    """The run's model description (:func:`spikekit.train.load.model_spec`) for ``cfg`` on ``bundle``."""
    from spikekit.train.load import model_spec

    resize = cfg.get("resize")
    size = (resize, resize) if resize else bundle.input_size
    return model_spec(
        cfg,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        input_size=size,
        temporal=bundle.temporal,
    )


def _build(cfg: dict[str, Any], bundle: Any, say: Any) -> Any:
    """The run's classifier, built from its model description (as :func:`spikekit.load_model` rebuilds it)."""
    from spikekit.train.load import build_classifier

    try:
        return build_classifier(_spec(cfg, bundle))
    except ValueError as e:
        raise CLIError(str(e).splitlines()[0]) from None


def _optimizer(cfg: dict[str, Any], params: Any) -> tuple[Any, Any]:
    import torch

    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(params, cfg["lr"], momentum=0.9, weight_decay=cfg["weight_decay"])
    elif cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(params, cfg["lr"], weight_decay=cfg["weight_decay"])
    else:
        opt = torch.optim.AdamW(params, cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["epochs"])
        if cfg["schedule"] == "cosine"
        else None
    )
    return opt, sched


def _cosine(opt: Any, cfg: dict[str, Any], done: int) -> Any:
    """A cosine schedule over ``cfg["epochs"]`` from ``cfg["lr"]``, fast-forwarded ``done`` epochs.

    Stepping from the start reproduces an uninterrupted run's (recursive) learning rates exactly;
    a resumed run with more epochs gets the schedule of the longer run, not the old one's end (0).
    """
    import warnings

    import torch

    for g in opt.param_groups:
        g["lr"] = g["initial_lr"] = cfg["lr"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["epochs"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": on purpose
        for _ in range(done):
            sched.step()
    return sched


def _init_distributed(device: str) -> bool:
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return False
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    return True


# What a resume must not change silently: each differs only with --resume-override (recorded).
RESUME_KEYS = (
    "dataset", "model", "neuron", "neuron_options", "model_options", "surrogate", "surrogate_alpha",
    "encoder", "loss", "decoder", "T", "batch_size", "lr", "optimizer", "weight_decay", "schedule",
    "clip_grad", "tbptt", "seed", "augment", "max_batches",
)  # fmt: skip
# What a run writes into its folder (removed by --overwrite; nothing else there is touched).
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "tb", "plots")


def _run_entries(out: str) -> list[str]:
    """What ``out`` holds besides the lock and temp files (a non-empty list: a run is there)."""
    from fnmatch import fnmatch

    from spikekit.train.checkpoint import TEMP_PATTERNS, RunLock

    if not os.path.isdir(out):
        return []
    return sorted(
        e for e in os.listdir(out) if e != RunLock.NAME and not any(fnmatch(e, p) for p in TEMP_PATTERNS)
    )


def _default_out_dir(cfg: dict[str, Any]) -> str | None:
    # Without --out-dir, a second run never lands on the first: runs/train, then runs/train-2,
    # -3, ... (the first free one). --resume auto without --out-dir continues the newest of them.
    # Returns the note saying so, printed once every option has been checked (a run refused for
    # bad input prints nothing but its error).
    if "out_dir" in cfg.get("given", ["out_dir"]) or cfg.get("overwrite"):
        return None
    base = cfg["out_dir"]
    candidates = [base] + [f"{base}-{n}" for n in range(2, 10_000)]
    if cfg.get("resume") == "auto":
        have = [c for c in candidates[:1] + [c for c in candidates[1:] if os.path.isdir(c)]
                if os.path.isfile(os.path.join(c, "last.pt"))]  # fmt: skip
        if have:
            cfg["out_dir"] = max(have, key=lambda c: os.path.getmtime(os.path.join(c, "last.pt")))
        return None
    if cfg.get("resume"):
        return None
    for c in candidates:
        if not _run_entries(c):
            cfg["out_dir"] = c
            if c != base:
                return f"note: {base} already holds a run; writing to {c} (give --out-dir or --overwrite to choose)"
            return None
    return None


def _prepare_out_dir(cfg: dict[str, Any], say: Any) -> tuple[Any, list[str]]:
    """Check, lock and tidy the output folder before anything trains.

    Returns the held lock and, with ``--overwrite``, the earlier run's entries to remove:
    :func:`_clear_run` removes them once everything else has been checked, so a run refused
    for bad input never deletes anything.

    Raises:
        CLIError: the path is a file, it cannot be created or written, another live run holds
            it, or it holds a run and neither ``--resume`` nor ``--overwrite`` was given.
    """
    from spikekit.train.checkpoint import RunLock, RunLockError, remove_temp_files

    out = cfg["out_dir"]
    if cfg.get("resume") and cfg.get("overwrite"):
        raise CLIError(
            "--resume continues the run in --out-dir and --overwrite replaces it; give one of them"
        )
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out-dir {out} is a file, expected a folder (or a path that does not exist yet)")
    lock = RunLock(out)
    try:
        lock.acquire()
    except RunLockError as e:
        raise CLIError(str(e)) from None
    except OSError as e:
        raise CLIError(f"--out-dir {out} cannot be created or written: {e.strerror or e}") from None
    try:
        if lock.stale is not None:
            s = lock.stale
            say(f"note: took over a stale lock in {out} (pid {s.get('pid')} on {s.get('host')} is gone)")
        removed = remove_temp_files(out)
        if removed:
            say(f"note: removed {len(removed)} temp file(s) an earlier killed run left in {out}")
        entries = _run_entries(out)
        if entries and not cfg.get("resume") and not cfg.get("overwrite"):
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise CLIError(
                f"--out-dir {out} already holds a run ({shown}); give --resume auto to continue it, "
                f"--overwrite to replace it, or another --out-dir"
            )
    except BaseException:
        lock.release()
        raise
    return lock, ([n for n in RUN_FILES if n in entries] if cfg.get("overwrite") else [])


def _clear_run(out: str, names: Sequence[str], say: Any) -> None:
    """Remove the earlier run's ``names`` from ``out`` (``--overwrite``, after every check passed)."""
    import shutil

    for name in names:
        p = os.path.join(out, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    if names:
        say(f"note: --overwrite: removed the earlier run's {', '.join(names)}")


def _probe_out_dir(out: str, state: dict[str, Any]) -> None:
    """Write a checkpoint-sized file into ``out`` and check the disk has room for a few more.

    Raises:
        CLIError: not writable, or less free space than four checkpoints (last.pt, best.pt and
            the temp copy of each save, plus logs).
    """
    import shutil
    import tempfile

    import torch

    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-probe-", suffix=".pt", dir=out)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            size = os.path.getsize(tmp)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError as e:
        raise CLIError(f"--out-dir {out} is not writable: {e.strerror or e}") from None
    free = shutil.disk_usage(out).free
    need = 4 * size + (1 << 20)
    if free < need:
        raise CLIError(
            f"--out-dir {out}: only {free / 2**20:.1f} MiB free; a checkpoint takes {size / 2**20:.1f} MiB "
            f"and a run needs about {need / 2**20:.1f} MiB"
        )


def _resume_config(cfg: dict[str, Any], say: Any) -> dict[str, Any] | None:
    """Load the ``--resume`` checkpoint and reconcile the run's configuration with it.

    Options not given on the command line take the checkpoint's values; given ones that differ
    are refused (each named) unless ``--resume-override`` applies them, which is recorded in
    ``cfg["resume_overrides"]``. Returns the checkpoint (``None`` without ``--resume``).
    """
    from spikekit.train.checkpoint import CheckpointError, load_checkpoint

    if not cfg.get("resume"):
        return None
    path = os.path.join(cfg["out_dir"], "last.pt") if cfg["resume"] == "auto" else cfg["resume"]
    cfg["resume_path"] = path
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise CLIError(f"--resume: {e}") from None
    if ckpt.get("format") != "spikekit-train/1":
        raise CLIError(f"--resume {path}: not a spikekit training checkpoint (format {ckpt.get('format')!r})")
    old = ckpt.get("config") or {}
    given = set(cfg.get("given", []))
    diffs: dict[str, list[Any]] = {}
    for k in RESUME_KEYS:
        if k not in old:
            continue
        if k in given:
            if _plain(cfg.get(k)) != _plain(old[k]):
                diffs[k] = [old[k], cfg.get(k)]
        else:
            cfg[k] = old[k]
    for k in ("resize", "normalize", "fallback_from"):
        if k in old and k not in given:
            cfg[k] = old[k]
    if "epochs" not in given and "epochs" in old:
        cfg["epochs"] = old["epochs"]
    if diffs and not cfg.get("resume_override"):
        listed = "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diffs.items())
        raise CLIError(
            f"--resume {path}: this run differs from the checkpoint's ({listed}); drop those options to "
            f"continue the same run, or add --resume-override to apply them from here on (recorded)"
        )
    overrides = list(old.get("resume_overrides") or [])
    if diffs:
        at = {"epoch": int(ckpt.get("epoch", 0)), "batch": int(ckpt.get("batch_idx", 0))}
        overrides.append({**at, "changes": diffs})
        say("note: --resume-override: " + "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diffs.items()))
    cfg["resume_overrides"] = overrides
    done = int(ckpt.get("epoch", 0))
    if done >= cfg["epochs"]:
        raise CLIError(
            f"--resume {path}: the checkpoint has already trained {done} of {cfg['epochs']} epochs; "
            f"give --epochs N with N > {done} to train further"
        )
    return ckpt


def _plain(v: Any) -> Any:
    from spikekit.train.load import plain_data

    try:
        return plain_data(v)
    except TypeError:
        return repr(v)


def train_once(cfg: dict[str, Any], *, say: Any = print) -> dict[str, Any]:
    """Run one training from a resolved config; returns the trainer's info dict plus paths.

    Everything that can be checked is checked before the first batch: the options, the output
    folder (locked, writable, room for checkpoints, not holding another run unless ``--resume``
    or ``--overwrite``), and a ``--resume`` checkpoint against this run's options.

    Raises:
        CLIError: bad configuration, missing data, an unusable output folder or checkpoint.
        NonFiniteError: the loss or the weights became non-finite (nothing non-finite saved).
    """
    _normalise_precision(cfg)
    _setup_device(cfg)  # idempotent; resolves "auto" in configs that skipped run_train / run_sweep
    rank, _ = _rank_world()
    lock, notes, old_run = None, [], []
    if rank == 0 and cfg.get("out_dir") is not None:
        notes = [n for n in [_default_out_dir(cfg)] if n]
        lock, old_run = _prepare_out_dir(cfg, say)
    try:
        return _train_locked(cfg, say, notes, old_run)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(
    cfg: dict[str, Any], say: Any, notes: Sequence[str] = (), old_run: Sequence[str] = ()
) -> dict[str, Any]:
    import torch

    from spikekit.train.trainer import Trainer, describe_device, seed_everything

    ckpt = _resume_config(cfg, say)
    _check(cfg)
    rank, world = _rank_world()
    seed_everything(cfg["seed"], cfg["deterministic"])
    bundle = _load_data(cfg, say)
    clf = _build(cfg, bundle, say).to(cfg["device"])
    say(f"device: {describe_device(cfg['device'])}")
    if world > 1:
        # Same initial weights everywhere (DDP also broadcasts rank 0's), but each rank then needs
        # its own dropout masks / Poisson spikes / shifts, else the ranks' randomness is correlated.
        torch.manual_seed(cfg["seed"] + 7919 * rank)
    opt, sched = _optimizer(cfg, clf.parameters())
    out = cfg["out_dir"]
    spec = _spec(cfg, bundle)
    trainer = Trainer(
        clf, opt, bundle.train, bundle.test, scheduler=sched, clip_grad=cfg["clip_grad"], precision=cfg["precision"],
        tbptt=cfg["tbptt"], out_dir=out, progress=bool(cfg["progress"]), config=_plain_config(cfg),
        device=cfg["device"], max_batches=cfg["max_batches"], model_spec=spec,
    )  # fmt: skip
    if ckpt is not None:
        path = cfg["resume_path"]
        changed = (
            {k for o in cfg["resume_overrides"][-1:] for k in o["changes"]}
            if cfg["resume_overrides"]
            else set()
        )
        if "optimizer" in changed and ckpt.get("epoch") is not None:
            # Another optimiser cannot take the old one's state: it starts fresh (recorded).
            ckpt = {
                **ckpt,
                "optimizer": opt.state_dict(),
                "optimizer_class": type(opt).__name__,
                "scheduler": None,
            }
        try:
            trainer.load_state_dict(ckpt)
        except (ValueError, RuntimeError, KeyError) as e:
            raise CLIError(f"--resume {path}: {' '.join(str(e).split())}") from None
        for g in opt.param_groups:
            g["weight_decay"] = cfg["weight_decay"]
        if cfg["schedule"] == "cosine":
            trainer.scheduler = _cosine(opt, cfg, trainer.epoch)
        else:
            trainer.scheduler = None
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] = cfg["lr"]
        trainer._saved = (
            path if os.path.abspath(os.path.dirname(path)) == os.path.abspath(out or "") else None
        )
        say(f"resumed from {path} at epoch {trainer.epoch} (batch {trainer.batch_idx})")
        for note in [*_resume_notes(cfg, ckpt), *_spec_notes(spec, ckpt)]:
            say(note)
    if rank == 0 and out is not None:
        _clear_run(out, old_run, say)
        _probe_out_dir(out, trainer.state_dict())
    for note in notes:
        say(note)
    if rank == 0 and cfg["progress"]:
        say(
            f"training {cfg['model']} ({cfg['neuron']}) on {cfg['dataset']}: T={cfg['T']}, encoder={clf_encoder(cfg, bundle)}, "
            f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, lr {cfg['lr']}, seed {cfg['seed']}"
        )
    with _quiet_after_stop(trainer):
        info = trainer.fit(cfg["epochs"])
    info["out_dir"] = out
    info["paths"] = {}
    if rank == 0 and out is not None and not info["interrupted"]:
        info["paths"] = {
            "metrics": os.path.join(out, "metrics.csv"), "tensorboard": os.path.join(out, "tb"),
            "last": os.path.join(out, "last.pt"), "best": os.path.join(out, "best.pt"),
        }  # fmt: skip
        import spikekit as spk

        # The first test batch, encoded as training saw it: the energy estimate averages over it
        # and the plots show its first sample. Forked RNG: nothing here moves the run's streams.
        with torch.random.fork_rng(devices=[cfg["device"]] if cfg["device"].startswith("cuda") else []):
            x, y = next(iter(bundle.test))
            with torch.no_grad():
                xs = clf.encode(x.to(cfg["device"])) if not bundle.temporal else x.to(cfg["device"])
            info["energy"] = spk.energy(clf.model, xs)
            if cfg["plots"]:
                from spikekit import viz

                plots = viz.run_plots(
                    clf.model, xs[:, :1], info["history"], os.path.join(out, "plots"), target=int(y[0])
                )
                info["paths"].update(plots)
    return info


@contextlib.contextmanager
def _quiet_after_stop(trainer: Any) -> Iterator[None]:
    """Once a signal has stopped ``trainer``, further SIGINT/SIGTERM are ignored until the process exits.

    The trainer handles signals during ``fit`` and restores the handlers it found when it
    returns; these are what it finds. A second Ctrl-C a few ms after the first could otherwise
    land after ``fit`` (the checkpoint already saved) and kill the winding-down process with a
    traceback and the wrong exit code. Before any stop, they act as usual (KeyboardInterrupt,
    exit 143). After an interrupted run both signals are ignored (``SIG_IGN``) for good: the
    process is about to exit, and Python's shutdown resets its own handlers to the default
    (which would kill it with -2) but leaves ignored signals ignored.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if trainer.stop_signal is not None:
            return  # the run is already stopping (its checkpoint is or will be saved)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h if trainer.stop_signal is None else signal.SIG_IGN)


def _resume_notes(cfg: dict[str, Any], ckpt: dict[str, Any]) -> list[str]:
    # The run's --device and precision flags decide, never the checkpoint's: a run written on a
    # GPU resumes on a CPU-only machine (and the reverse) and says what changed.
    old = ckpt.get("config") or {}
    notes = []
    was = old.get("device")
    if was and str(was).split(":")[0] != cfg["device"].split(":")[0]:
        notes.append(
            f"note: the checkpoint was written on {was}; resuming on {cfg['device']} as --device says "
            f"(its {str(was).split(':')[0]} random stream does not carry over, so the rest of the run "
            f"is not bit-identical to an uninterrupted one)"
        )
    prec = ckpt.get("precision") or old.get("precision") or ("bf16" if old.get("bf16") else None)
    if prec and prec != cfg["precision"]:
        notes.append(
            f"note: the checkpoint trained in {prec}; continuing in {cfg['precision']} as the flags say"
        )
    return notes


def _plain_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The whole configuration as plain data for the checkpoint (nested options kept, tuples as lists).

    A value that is not plain data (from a Python caller) is left out rather than failing the run.
    """
    from spikekit.train.load import plain_data

    out = {}
    for k, v in cfg.items():
        if k in ("given", "resume_path"):
            continue
        try:
            out[k] = plain_data(v, k)
        except TypeError:
            continue
    return out


def _spec_notes(spec: dict[str, Any], ckpt: dict[str, Any]) -> list[str]:
    # A resumed run rebuilds its model from the flags given now; where that describes another
    # model than the checkpoint's, say so (the checkpoint's parameter values are what train on;
    # other neuron options have already failed the load).
    old = ckpt.get("model_spec")
    if not isinstance(old, dict) or "unrecordable" in old or "unrecordable" in spec:
        return []
    keys = [k for k in spec if k != "format" and old.get(k) != spec.get(k)]
    return [f"note: the checkpoint's {k} was {old.get(k)!r}; this run says {spec.get(k)!r}" for k in keys]


def clf_encoder(cfg: dict[str, Any], bundle: Any) -> str:
    if bundle.temporal:
        return "none (event frames)"
    return cfg["encoder"] + (f" (upsampled to {cfg['resize']}x{cfg['resize']})" if cfg.get("resize") else "")


def run_train(args: argparse.Namespace) -> int:
    """``spikekit train``: returns the exit code.

    0 done; 1 the output folder failed mid-run (disk full, removed); 2 bad input (options,
    data, output folder, checkpoint), found before training; 3 non-finite loss or weights
    (the last good checkpoint kept); 130 stopped by Ctrl-C, 143 by SIGTERM (checkpoint saved).
    """
    cfg = resolve_config(args)
    _setup_device(cfg)
    did_init = _init_distributed(cfg["device"])
    try:
        rank, world = _rank_world()
        say = print if rank == 0 else (lambda *a, **k: None)
        from spikekit.train.trainer import NonFiniteError

        try:
            info = train_once(cfg, say=say)
        except NonFiniteError as e:
            print(f"spikekit train: error: {e}", file=sys.stderr)
            return 3
        except OSError as e:
            where = e.filename or cfg.get("out_dir")
            print(f"spikekit train: error: writing {where} failed: {e.strerror or e}", file=sys.stderr)
            return 1
        if did_init:
            # gloo's worker threads release the last collective's tensors after wait() has
            # returned, and need the GIL for it. A rank that raced on into interpreter
            # finalisation aborted there ("terminate called without an active exception",
            # 10 of 50 two-rank runs on 2 cores). The barrier waits with the GIL released
            # until every rank is done, which lets those threads finish first. Not in
            # `finally`: a rank that failed alone would leave the others waiting here.
            import torch.distributed as dist

            dist.barrier()
        code = (143 if info.get("signal") == "SIGTERM" else 130) if info["interrupted"] else 0
        if rank == 0:
            if info["interrupted"]:
                print(
                    f"spikekit train: stopped by {info.get('signal') or 'an interrupt'}; continue with "
                    f"--resume auto --out-dir {info['out_dir']}",
                    file=sys.stderr,
                )
                return code
            say(
                f"\ndone: test accuracy {info['test_acc'] * 100:.2f}% (best {info['best_acc'] * 100:.2f}%) "
                f"after {info['epoch']} epochs in {info['time']:.1f} s on {world} process(es)"
            )
            for k, p in info["paths"].items():
                say(f"  {k:16s} {p}")
            if info.get("energy") is not None:
                n = info["energy"].samples
                say(f"estimated per test sample (spk.energy over {n} samples of the first test batch):")
                for line in info["energy"].lines():
                    say(f"  {line}")
        return code
    finally:
        if did_init:
            import torch.distributed as dist

            dist.destroy_process_group()


# ----------------------------------------------------------------------------- sweep

# eve-mli's tutorial: its MNIST conv net, IF neurons, sigmoid surrogate, Poisson input, T=5.
SWEEP_BASE: dict[str, Any] = {
    "model": "eve_mnist", "neuron": "if", "surrogate": "sigmoid", "encoder": "poisson", "T": 5, "epochs": 8,
    "lr": 1e-2, "optimizer": "adam", "weight_decay": 0.0, "schedule": "none", "out_dir": "runs/sweep", "augment": False,
}  # fmt: skip

SWEEP_GROUPS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "timesteps": [(f"IF T={t}", {"T": t}) for t in (1, 2, 5, 10)],
    "neuron": [("IF", {"neuron": "if"}), ("LIF", {"neuron": "lif"})],
    "options": [
        ("learnable threshold", {"neuron_options": {"learn": ["v_th"]}}),  # per neuron (eve's default)
        ("learnable reset", {"neuron_options": {"learn": ["v_reset"]}}),
        ("time-independent", {"neuron_options": {"time_dependent": False}}),
        # "Neuron share" only differs from per-neuron once something is learnt: the threshold here.
        ("neuron share", {"neuron_options": {"learn": ["v_th"]}, "model_options": {"neuron_wise": False}}),
    ],
    "surrogate": [
        (s, {"surrogate": s})
        for s in ("PiecewiseQuadratic", "SoftSign", "ATan", "NonzeroSignLogAbs", "Erf", "PiecewiseLeakyReLU")
    ],
}


def run_sweep(args: argparse.Namespace) -> int:
    """``spikekit sweep``: one short run per configuration, one table (markdown + CSV) and a plot."""
    from spikekit.train.logger import write_csv
    from spikekit.train.trainer import describe_device

    base = resolve_config(args, SWEEP_BASE)
    _setup_device(base)
    out = base["out_dir"]
    groups = list(SWEEP_GROUPS)
    if args.only:
        groups = [g.strip() for g in args.only.split(",")]
        bad = [g for g in groups if g not in SWEEP_GROUPS]
        if bad:
            raise CLIError(f"unknown sweep group(s) {', '.join(bad)}; expected {', '.join(SWEEP_GROUPS)}")
    print(f"device: {describe_device(base['device'])}", flush=True)
    rows, curves = [], {}
    for g in groups:
        for name, change in SWEEP_GROUPS[g]:
            cfg = dict(base)
            cfg.update(change)
            cfg["neuron_options"] = {**base["neuron_options"], **change.get("neuron_options", {})}
            cfg["model_options"] = {**base["model_options"], **change.get("model_options", {})}
            cfg["out_dir"] = os.path.join(out, "runs", name.replace(" ", "_").replace("=", ""))
            cfg["plots"], cfg["progress"] = False, False
            # The sweep owns runs/sweep: each rerun replaces its configurations' runs.
            cfg["given"], cfg["overwrite"] = [*base.get("given", []), "out_dir"], True
            t0 = time.perf_counter()
            info = train_once(cfg, say=lambda *a, **k: None)
            dt = time.perf_counter() - t0
            curves[name] = [r["test_acc"] for r in info["history"]]
            rows.append(
                {
                    "group": g,
                    "config": name,
                    "test_acc": round(info["test_acc"], 4),
                    "best_acc": round(info["best_acc"], 4),
                    "seconds": round(dt, 1),
                }
            )
            print(f"{g:10s} {name:28s} test acc {info['test_acc'] * 100:6.2f}%  ({dt:.0f} s)", flush=True)
    os.makedirs(out, exist_ok=True)
    csv_path = write_csv(rows, os.path.join(out, "sweep.csv"))
    md = ["| group | configuration | test acc (%) | best (%) | time (s) |", "| --- | --- | --- | --- | --- |"]
    md += [
        f"| {r['group']} | {r['config']} | {r['test_acc'] * 100:.2f} | {r['best_acc'] * 100:.2f} | {r['seconds']} |"
        for r in rows
    ]
    md_path = os.path.join(out, "sweep.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    from spikekit import viz

    png = viz.plot_sweep(curves, os.path.join(out, "sweep.png"))
    print("\n".join(md))
    print(f"\ntable: {md_path}\ncsv:   {csv_path}\nplot:  {png}")
    return 0


# ----------------------------------------------------------------------------- entry


def _guarded(fn: Any, prog: str) -> Any:
    """Wrap a command so bad input is one line on stderr and exit code 2 (no traceback)."""

    def run(args: argparse.Namespace) -> int:
        from spikekit.data import DatasetNotFoundError

        try:
            return int(fn(args))
        except (CLIError, DatasetNotFoundError) as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130

    return run


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed ``train``/``sweep`` command (the ``func`` set by :func:`add_parser`); returns the exit code."""
    return int(args.func(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m spikekit.train.cli {train,sweep} ...``; returns the exit code."""
    p = _one_line_errors(argparse.ArgumentParser(prog="spikekit"))
    sub = p.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return dispatch(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
