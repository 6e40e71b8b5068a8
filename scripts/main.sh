#!/usr/bin/env bash
# The main job: set up .venv, then `spikekit train`: a conv SNN on the embedded 8x8 digits.
# Extra arguments are passed to the command, e.g. `bash scripts/main.sh --epochs 2`.
source "$(dirname "$0")/_venv.sh" train
exec spikekit train "$@"
