"""Layers over time: time-folding, normalisation and dropout over time, recurrence, pooling,
residual blocks and readouts. Inputs are time-first ``[T, B, *features]``."""

from spikekit.layers.dropout import SequenceDropout
from spikekit.layers.norm import BNTT2d, TdBatchNorm2d
from spikekit.layers.readout import LILinear
from spikekit.layers.recurrent import Recurrent, RecurrentState
from spikekit.layers.residual import CONNECT, Residual
from spikekit.layers.time_distributed import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Flatten,
    MaxPool2d,
    TimeDistributed,
)

__all__ = [
    "CONNECT",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BNTT2d",
    "Flatten",
    "LILinear",
    "MaxPool2d",
    "Recurrent",
    "RecurrentState",
    "Residual",
    "SequenceDropout",
    "TdBatchNorm2d",
    "TimeDistributed",
]
