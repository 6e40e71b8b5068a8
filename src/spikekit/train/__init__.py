"""Training: classifier/trainer split, one-call BPTT epoch, checkpoints, metrics logging, CLI.

Imports stay light: tqdm, tensorboard and matplotlib load only when a run uses them.
"""

from spikekit.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from spikekit.train.load import build_classifier, load_classifier, load_model, model_spec
from spikekit.train.logger import MetricsLogger, write_csv
from spikekit.train.trainer import (
    Classifier,
    NonFiniteError,
    Trainer,
    bptt_epoch,
    get_encoder,
    rate_cross_entropy,
    seed_everything,
)

__all__ = [
    "Classifier",
    "Trainer",
    "NonFiniteError",
    "bptt_epoch",
    "get_encoder",
    "rate_cross_entropy",
    "seed_everything",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "MetricsLogger",
    "write_csv",
    "load_model",
    "load_classifier",
    "build_classifier",
    "model_spec",
]
