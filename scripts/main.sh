#!/usr/bin/env bash
# The main job: set up .venv and train a spiking network on the embedded data.
# Extra arguments are passed to the command, e.g. `bash scripts/main.sh --epochs 2`.
source "$(dirname "$0")/_venv.sh" train
exec spikeforge demo "$@"
